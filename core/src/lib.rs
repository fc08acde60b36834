//! fastqueue: a bounded multi-producer / multi-consumer queue of byte messages in a named POSIX
//! shared-memory segment, for processes on one machine.
//!
//! Rooms, and the one way data flows through them:
//!
//! * [`layout`] — the `#[repr(C)]` segment header and slot layout, and validation of a mapping.
//! * [`ring`] — the lock-free MPMC ring: every slot-state transition and every ordering choice.
//! * [`lease`] — acknowledged delivery: the lease table of a redeliver queue and its protocol.
//! * [`wait`] — sleeping and waking across processes (futex on Linux).
//! * [`shm`] — creating, opening, mapping and unlinking segments; per-process liveness locks.
//! * `memlimit` — how much memory a new segment may take without waking the OOM killer.
//! * [`queue`] — the safe Rust API that ties a mapping, the ring and the waits together.
//! * [`gate`] — the calls in flight on a handle, so that closing waits for them.
//! * [`held`] — the held word of `fq_take`'s receive buffer (nothing lost to an interrupt).
//! * [`ffi`] — the flat C ABI (`fq_*`), documented in `include/fastqueue.h`.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod sync;

pub mod layout;
pub mod lease;
pub mod ring;

#[cfg(not(loom))]
pub mod ffi;
#[cfg(not(loom))]
pub mod gate;
#[cfg(not(loom))]
pub mod held;
#[cfg(not(loom))]
pub(crate) mod memlimit;
#[cfg(not(loom))]
pub mod queue;
#[cfg(not(loom))]
pub mod shm;
pub mod wait;

mod status;
pub use status::Status;

#[cfg(not(loom))]
pub use queue::Queue;
