//! The shared-memory segment layout, and validation of a mapped segment.
//!
//! A segment is pointer-free and self-describing. All integers are fixed-width and native-endian
//! (a segment never leaves its machine), so 32-bit and 64-bit, C and Rust openers agree:
//!
//! ```text
//! offset 0                    Header (HEADER_SIZE bytes, 128-byte lines)
//!   line 0  description: magic, layout version, sizes, offsets   (immutable once magic is set)
//!   line 1  tail  — the enqueue counter                          (written by producers)
//!   line 2  head  — the dequeue counter                          (written by consumers)
//!   line 3  consumers' wait word: futex sequence + sleeper count
//!   line 4  producers' wait word: futex sequence + sleeper count
//!   line 5  slow-path statistics (full/empty hits, recoveries, skipped and lost messages)
//!   line 6  control: shutdown state, task_done counter, join() wait word
//! participants_offset         MAX_PARTICIPANTS × Participant (8 bytes each)
//! slots_offset                capacity × slot_stride: each slot is a SlotHeader (16 bytes: state
//!                             word, message length) followed by max_msg payload bytes, rounded
//!                             up to a multiple of 64 so that payloads stay 16-byte aligned and
//!                             small slots do not share cache lines more than necessary
//!                             (pooled layout: a 64-byte SlotHeader + SlotBuffer line per slot)
//! pool_offset                 pooled layout only: (capacity + leases) × buf_stride payload
//!                             buffers, page-aligned, each max_msg rounded up to a page (layout 5:
//!                             a redeliver queue's lease entries own `leases` of them)
//! ledger_offset               MAX_PARTICIPANTS × Ledger (32 bytes each): messages each
//!                             participant took and marked done (layout 4)
//! lease_offset                redeliver queues only (layout 4): the lease table (see `lease`),
//!                             a LeaseControl line and `leases` × lease_stride entries (pooled
//!                             layout, 5: each a LeaseHeader and a SlotBuffer, 64 bytes)
//! total_size
//! ```
//!
//! # Two layouts: inline and pooled
//!
//! Small messages live *inline*, right after their slot header: one cache line carries a state
//! word and its message. Large messages (`max_msg` ≥ [`POOL_MIN_MSG`], 2 ≤ capacity ≤
//! [`POOL_MAX_CAPACITY`]) live in a *pool* of `capacity` buffers, and each slot names the buffer
//! it currently owns ([`SlotBuffer::buf`]; the indices are always a permutation of the pool).
//! A producer that claims a slot first swaps its buffer with the one a consumer released last,
//! which is still in the caches, so that a queue of 8 × 8 MiB moves its messages through one
//! warm buffer instead of cycling 64 MiB through memory (see `ring`, "Warm buffers").
//!
//! Every field of line 0 is derived from `(max_msg, capacity)` by [`Geometry::new`]; an opener
//! recomputes the geometry with checked arithmetic and requires every stored field to match, so a
//! truncated, foreign or corrupted segment is refused before any offset from it is used.

use crate::sync::{AtomicU32, AtomicU64};
use crate::Status;

/// `b"FASTQUE1"` read as a little-endian u64: the value of [`Header::magic`] once the segment is
/// ready. Written last by the creator, with release ordering.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FASTQUE1");

/// The version of this layout. Any change to the header, the slot layout or the meaning of a
/// state word bumps it; a library refuses segments of any other version.
pub const LAYOUT_VERSION: u32 = 5;

/// The largest value of a description's `layout_version` read as a version of some fastqueue
/// (`Version`); a larger one is a corrupt segment (`BadSegment`).
pub const MAX_PLAUSIBLE_VERSION: u32 = 0xFFFF;

/// Size of a cache line pair: counters written by different sides sit this far apart (adjacent
/// line prefetch on x86-64 pulls lines in pairs; aarch64 big cores use 128-byte lines).
pub const LINE: usize = 128;

/// Entries in the participant table (owner ids in slot state words are indices into it).
pub const MAX_PARTICIPANTS: u32 = 1024;

/// Bytes of per-slot header before the payload.
pub const SLOT_HEADER_SIZE: u64 = 16;

/// Slots are padded to a multiple of this.
pub const SLOT_ALIGN: u64 = 64;

/// Largest accepted capacity (messages). Bounded so that a lap (position / capacity) keeps enough
/// bits in a state word for wrap-around to be practically impossible (see `ring`).
pub const MAX_CAPACITY: u64 = 1 << 32;

/// Smallest `max_msg` for which a queue uses the pooled layout (bytes).
pub const POOL_MIN_MSG: u64 = 64 * 1024;

/// Largest capacity of a pooled queue: a `SWAPPING` state word names its partner slot in the
/// 16-bit owner field.
pub const POOL_MAX_CAPACITY: u64 = 1 << 16;

/// Pool buffers are aligned to, and padded to a multiple of, this many bytes (a page).
pub const POOL_ALIGN: u64 = 4096;

/// Largest accepted message size (bytes): 1 TiB, far beyond any real segment, small enough that
/// every size computation stays far from u64 overflow.
pub const MAX_MSG: u64 = 1 << 40;

/// A line of padding, so that what follows starts on its own 128-byte line.
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// One side's wait word: waiters sleep on `seq` with a futex; wakers bump it and wake as many
/// sleepers as they made changes available (see `wait`'s module docs for the protocol).
#[repr(C)]
pub struct WaitWord {
    /// Futex word. Invariant: incremented (wrapping) by every waker that saw `sleepers > 0`,
    /// before its wake system call; sleepers sleep only while it still holds the value they read
    /// before re-checking the queue.
    pub seq: AtomicU32,
    /// Number of callers between announcing they will sleep and returning, less those a wake-up
    /// chose (their waker takes them out: `wait::wake`). Invariant: a waker makes a system call
    /// only when it reads a non-zero value here.
    pub sleepers: AtomicU32,
    /// Number of waiters spinning (awake, re-trying) on this side right now. It caps how many
    /// waiters spin at once, and wakers count on a registered spinner instead of waking a
    /// sleeper (`wait`'s module docs say why that loses nothing). A stale count (a spinner that
    /// died) only delays wake-ups until a sleeper finds an unsignalled change and clears it.
    pub spinners: AtomicU32,
    /// When a waiter of this side last found itself starving (blocked longer than
    /// `wait::STARVE_AFTER` while others of its side got through): CLOCK_MONOTONIC in
    /// milliseconds, wrapping; 0 never. While recent, nobody starts spinning here and room is
    /// handed to sleepers slot by slot, so that sleepers get their turn (a fairness hint; it
    /// expires by itself).
    pub starving: AtomicU32,
    /// Waiters woken by wakers' system calls (the count `FUTEX_WAKE` returned), ever: a
    /// statistic (`FQ_STAT_*_WOKEN`) that shows whether wakers wake one waiter per change.
    pub woken: AtomicU64,
    /// Times a waiter went to sleep in the kernel, ever (a statistic, `FQ_STAT_*_SLEEPS`).
    pub sleeps: AtomicU64,
    /// Announcements that read `seq` (wrapping): each waiter adds 1 after reading its ticket.
    pub clears: AtomicU32,
    /// `seq << 32 | clears` as a waker saw them when its `FUTEX_WAKE` found the kernel's queue
    /// emptied: while both still hold these values, nobody can sleep (see `wait::wake`).
    pub quiet: AtomicU64,
}

impl Default for WaitWord {
    /// A wait word as a fresh segment holds it: every field zero (for tests and models, whose
    /// words live outside a segment).
    fn default() -> Self {
        WaitWord {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            spinners: AtomicU32::new(0),
            starving: AtomicU32::new(0),
            woken: AtomicU64::new(0),
            sleeps: AtomicU64::new(0),
            clears: AtomicU32::new(0),
            quiet: AtomicU64::new(0),
        }
    }
}

/// Counters of slow-path events, kept in the segment for every process to read.
#[repr(C)]
pub struct Stats {
    /// Times a put found the queue full (counted once per call that had to wait or failed).
    pub full_hits: AtomicU64,
    /// Times a get found the queue empty (counted once per call that had to wait or failed).
    pub empty_hits: AtomicU64,
    /// Slots taken back from processes that died inside a put or get.
    pub recoveries: AtomicU64,
    /// Participant-table entries of dead processes reused by new openers.
    pub reclaimed_participants: AtomicU64,
    /// Abandoned slots (aborted zero-copy writes, dead writers) that gets skipped. Each
    /// abandoned position is skipped exactly once (by one CAS), so it is counted exactly once.
    pub skipped: AtomicU64,
    /// Messages that died with their consumer (recovered `READING` slots).
    pub lost: AtomicU64,
}

/// Queue-wide control state.
#[repr(C)]
pub struct Control {
    /// [`SHUTDOWN_NONE`], [`SHUTDOWN_GRACEFUL`] or [`SHUTDOWN_IMMEDIATE`]. Invariant: only ever
    /// increases.
    pub shutdown: AtomicU32,
    /// 1 once some handle used `task_done` or `join` (layout 4; 0 before): from then on gets
    /// count what each participant takes in its [`Ledger`], so that a dead consumer's messages
    /// can count as done. Queues nobody joins pay one load of this line (which gets read for
    /// `shutdown` anyway) instead of a counter per get. Invariant: only goes 0 → 1.
    pub tracking: AtomicU32,
    /// Number of `task_done` calls. Invariant: never above `tail - skipped - lost`, so the
    /// number of unfinished tasks, `tail - skipped - lost - tasks_done`, never underflows.
    pub tasks_done: AtomicU64,
    /// `join()` callers sleep here until no task is unfinished.
    pub join: WaitWord,
    /// Messages that dead participants took and never marked done, counted as done (layout 4;
    /// see [`Ledger`]). Invariant: only grows, by the recovery of a dead participant's ledger.
    pub abandoned: AtomicU64,
}

/// The queue is open.
pub const SHUTDOWN_NONE: u32 = 0;
/// Puts fail; gets drain what is left, then fail.
pub const SHUTDOWN_GRACEFUL: u32 = 1;
/// Puts and gets fail; what was left was discarded.
pub const SHUTDOWN_IMMEDIATE: u32 = 2;

/// The segment header. Lines 1–5 are written concurrently; line 0 never changes once `magic`
/// holds [`MAGIC`].
#[repr(C)]
pub struct Header {
    /// Line 0: the description of the segment.
    pub desc: Line<Description>,
    /// Enqueue counter: the position the next put claims. Invariant: monotonically increasing;
    /// every position below it has a slot claimed by a producer for that position's lap.
    pub tail: Line<AtomicU64>,
    /// Dequeue counter: the position the next get claims. Invariant: monotonically increasing,
    /// never above `tail`; every position below it was claimed by a consumer (or skipped).
    pub head: Line<AtomicU64>,
    /// Consumers sleep here while the queue is empty; producers wake them.
    pub not_empty: Line<WaitWord>,
    /// Producers sleep here while the queue is full; consumers wake them.
    pub not_full: Line<WaitWord>,
    /// Slow-path statistics.
    pub stats: Line<Stats>,
    /// Shutdown state and joinable-queue accounting.
    pub control: Line<Control>,
}

/// Line 0 of the header: every size an opener needs, fixed-width.
#[repr(C)]
pub struct Description {
    /// [`MAGIC`] once the segment is fully initialised (release store, written last); 0 before.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`] of the library that created the segment.
    pub layout_version: u32,
    /// `size_of::<Header>()` as the creator saw it.
    pub header_size: u32,
    /// Number of slots (messages the queue holds), ≥ 1, ≤ [`MAX_CAPACITY`].
    pub capacity: u64,
    /// Largest message in bytes, ≥ 1, ≤ [`MAX_MSG`].
    pub max_msg: u64,
    /// Distance between consecutive slots in bytes.
    pub slot_stride: u64,
    /// Offset of the participant table from the start of the segment.
    pub participants_offset: u64,
    /// Offset of slot 0 from the start of the segment.
    pub slots_offset: u64,
    /// Size of the whole segment in bytes.
    pub total_size: u64,
    /// Number of participant-table entries ([`MAX_PARTICIPANTS`]).
    pub max_participants: u32,
    /// Process id of the creator (informational only).
    pub creator_pid: u32,
    /// Offset of the buffer pool from the start of the segment; 0 for the inline layout.
    pub pool_offset: u64,
    /// Distance between pool buffers in bytes; 0 for the inline layout.
    pub buf_stride: u64,
    /// Creation flags: [`FLAG_REDELIVER`] or 0 (layout 4).
    pub flags: u32,
    /// Padding; zero.
    pub _reserved: u32,
    /// Number of lease entries (redeliver queues; 0 otherwise).
    pub leases: u64,
    /// Offset of the lease table (its `LeaseControl` line); 0 without leases.
    pub lease_offset: u64,
    /// Distance between lease entries in bytes; 0 without leases.
    pub lease_stride: u64,
}

/// Creation flag: acknowledged delivery (see `lease`): gets lease what they take until it is
/// acknowledged, and a dead or closing holder's leases are delivered again.
pub const FLAG_REDELIVER: u32 = 1;

/// Largest number of lease entries: `lease::Leases` counts them in a `u32` (and a lease token
/// keeps the entry index in 32 bits).
pub const MAX_LEASES: u64 = u32::MAX as u64;

/// Bytes per participant in the ledger: two participants share a 64-byte line (a segment keeps
/// 32 KiB of ledger; participants take entries at random, so busy neighbours are rare).
pub const LEDGER_STRIDE: u64 = 32;

/// One participant's count of messages taken and marked done (queues without redeliver), so
/// that the messages a dead participant took and never marked done count as done for `join`.
#[repr(C)]
pub struct Ledger {
    /// Messages this participant took (counted while it held their read claim; see
    /// `Queue::release_read`).
    pub taken: AtomicU64,
    /// `task_done` calls this participant made.
    pub done: AtomicU64,
    /// Of the messages it took, how many recovery counted as done after it died or closed
    /// without marking them done. Invariant: only grows, through one CAS per settlement.
    pub forgiven: AtomicU64,
}

/// One participant-table entry: a process attached to the queue. Its index is the owner id
/// recorded in the slot state words it claims.
#[repr(C)]
pub struct Participant {
    /// [`PARTICIPANT_FREE`], [`PARTICIPANT_CLAIMING`] or [`PARTICIPANT_USED`]. Invariant: an entry
    /// goes back to use only once no slot state word names its index.
    pub state: AtomicU32,
    /// Process id of the owner (informational; liveness is decided by the OS lock, never by pid).
    pub pid: AtomicU32,
}

/// Participant entry is free.
pub const PARTICIPANT_FREE: u32 = 0;
/// Participant entry is being taken by an opener.
pub const PARTICIPANT_CLAIMING: u32 = 1;
/// Participant entry belongs to a (live or dead) process.
pub const PARTICIPANT_USED: u32 = 2;

/// The per-slot header that precedes each payload.
#[repr(C)]
pub struct SlotHeader {
    /// The slot state word `(lap, phase, owner)`; see `ring` for the encoding and transitions.
    pub state: AtomicU64,
    /// Length of the message in the slot. Written by the producer that owns the slot before it
    /// publishes `FULL`; read by consumers after they observe `FULL`.
    pub len: AtomicU64,
}

/// Pooled layout: what follows a slot's [`SlotHeader`] instead of an inline payload.
#[repr(C)]
pub struct SlotBuffer {
    /// Index of the pool buffer this slot owns (< capacity + leases). Invariant: the slots'
    /// indices (and a redeliver queue's lease entries', which use this record too) are a
    /// permutation of the pool. Changed only by a producer holding the slot's write claim while
    /// it swaps buffers with a `SWAPPING` slot (see `ring`), or by a leased get holding the
    /// slot's read claim while it hands the slot's buffer to its entry (see `lease`).
    pub buf: AtomicU64,
    /// The swap record of the slot's write claim: the slot's own buffer index before the swap,
    /// written before the swap begins (the other slot's `SWAPPING` word names this slot), so
    /// that the recovery of a producer that died in the middle of a swap can finish it.
    pub swap: AtomicU64,
}

/// Bytes of header before the participant table.
pub const HEADER_SIZE: usize = core::mem::size_of::<Header>();

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<Line<AtomicU64>>() == LINE);
    assert!(core::mem::align_of::<Header>() == LINE);
    assert!(core::mem::size_of::<Description>() <= LINE);
    assert!(HEADER_SIZE == 7 * LINE);
    assert!(core::mem::size_of::<SlotHeader>() as u64 == SLOT_HEADER_SIZE);
    assert!(SLOT_HEADER_SIZE as usize + core::mem::size_of::<SlotBuffer>() <= SLOT_ALIGN as usize);
    assert!(core::mem::size_of::<Participant>() == 8);
    assert!(core::mem::size_of::<WaitWord>() == 48);
    assert!(core::mem::size_of::<Control>() <= LINE);
    assert!(core::mem::size_of::<Ledger>() as u64 <= LEDGER_STRIDE);
    assert!(SLOT_ALIGN % 16 == 0 && SLOT_HEADER_SIZE % 16 == 0);
};

/// Every size and offset of a segment, derived from `(max_msg, capacity)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots.
    pub capacity: u64,
    /// Largest message in bytes.
    pub max_msg: u64,
    /// Distance between slots.
    pub slot_stride: u64,
    /// Offset of the participant table.
    pub participants_offset: u64,
    /// Offset of slot 0.
    pub slots_offset: u64,
    /// Offset of the buffer pool; 0 for the inline layout.
    pub pool_offset: u64,
    /// Distance between pool buffers; 0 for the inline layout.
    pub buf_stride: u64,
    /// Offset of the participants' ledger.
    pub ledger_offset: u64,
    /// Number of lease entries (0: no acknowledged delivery).
    pub leases: u64,
    /// Offset of the lease table; 0 without leases.
    pub lease_offset: u64,
    /// Distance between lease entries; 0 without leases.
    pub lease_stride: u64,
    /// Size of the segment.
    pub total_size: u64,
}

impl Geometry {
    /// Whether a queue of these sizes uses the pooled layout.
    pub fn pooled(max_msg: u64, capacity: u64) -> bool {
        max_msg >= POOL_MIN_MSG && (2..=POOL_MAX_CAPACITY).contains(&capacity)
    }

    /// Pooled layout: number of pool buffers, `capacity + leases` (0 for the inline layout).
    pub fn pool_buffers(&self) -> u64 {
        // (Without a branch: a leased get asks on every call.)
        (self.capacity + self.leases) * u64::from(self.pool_offset != 0)
    }

    /// Computes the geometry for a queue of `capacity` messages of up to `max_msg` bytes, with
    /// checked arithmetic. `Invalid` for zero or too-large sizes.
    pub fn new(max_msg: u64, capacity: u64) -> Result<Geometry, Status> {
        Self::with_leases(max_msg, capacity, 0)
    }

    /// [`Geometry::new`] with a lease table of `leases` entries (0: none; at most
    /// [`MAX_LEASES`]).
    pub fn with_leases(max_msg: u64, capacity: u64, leases: u64) -> Result<Geometry, Status> {
        if leases > MAX_LEASES {
            return Err(Status::Invalid);
        }
        if max_msg == 0 || capacity == 0 || max_msg > MAX_MSG || capacity > MAX_CAPACITY {
            return Err(Status::Invalid);
        }
        let pooled = Self::pooled(max_msg, capacity);
        let slot_stride = if pooled {
            SLOT_ALIGN
        } else {
            SLOT_HEADER_SIZE
                .checked_add(max_msg)
                .and_then(|n| n.checked_next_multiple_of(SLOT_ALIGN))
                .ok_or(Status::Invalid)?
        };
        let participants_offset = HEADER_SIZE as u64;
        let table = u64::from(MAX_PARTICIPANTS) * core::mem::size_of::<Participant>() as u64;
        let slots_offset = participants_offset
            .checked_add(table)
            .and_then(|n| n.checked_next_multiple_of(LINE as u64))
            .ok_or(Status::Invalid)?;
        let slots_end = slot_stride
            .checked_mul(capacity)
            .and_then(|n| n.checked_add(slots_offset))
            .ok_or(Status::Invalid)?;
        let (pool_offset, buf_stride, end) = if pooled {
            let buf_stride = max_msg
                .checked_next_multiple_of(POOL_ALIGN)
                .ok_or(Status::Invalid)?;
            let pool_offset = slots_end
                .checked_next_multiple_of(POOL_ALIGN)
                .ok_or(Status::Invalid)?;
            // A redeliver queue's pool also holds one buffer per lease entry (see `lease`,
            // "Pooled leases"): a get hands its slot's buffer to the entry instead of copying.
            let end = capacity
                .checked_add(leases)
                .and_then(|n| n.checked_mul(buf_stride))
                .and_then(|n| n.checked_add(pool_offset))
                .ok_or(Status::Invalid)?;
            (pool_offset, buf_stride, end)
        } else {
            (0, 0, slots_end)
        };
        let ledger_offset = end
            .checked_next_multiple_of(LINE as u64)
            .ok_or(Status::Invalid)?;
        let end = ledger_offset
            .checked_add(u64::from(MAX_PARTICIPANTS) * LEDGER_STRIDE)
            .ok_or(Status::Invalid)?;
        let (lease_offset, lease_stride, end) = if leases == 0 {
            (0, 0, end)
        } else {
            // Pooled: an entry holds a buffer index and swap record, not the payload.
            let payload = if pooled {
                core::mem::size_of::<SlotBuffer>() as u64
            } else {
                max_msg
            };
            let stride = crate::lease::LEASE_HEADER_SIZE
                .checked_add(payload)
                .and_then(|n| n.checked_next_multiple_of(SLOT_ALIGN))
                .ok_or(Status::Invalid)?;
            let at = end
                .checked_next_multiple_of(LINE as u64)
                .ok_or(Status::Invalid)?;
            let end = stride
                .checked_mul(leases)
                .and_then(|n| n.checked_add(at))
                .and_then(|n| n.checked_add(LINE as u64))
                .ok_or(Status::Invalid)?;
            (at, stride, end)
        };
        let total_size = Some(end)
            .filter(|&n| n <= isize::MAX as u64)
            .ok_or(Status::Invalid)?;
        Ok(Geometry {
            capacity,
            max_msg,
            slot_stride,
            participants_offset,
            slots_offset,
            pool_offset,
            buf_stride,
            ledger_offset,
            leases,
            lease_offset,
            lease_stride,
            total_size,
        })
    }

    /// Validates the description of a mapped segment of `mapped_len` bytes against the geometry
    /// its sizes imply. Call only after `magic` was observed (acquire) as [`MAGIC`].
    pub fn validate(desc: &Description, mapped_len: u64) -> Result<Geometry, Status> {
        if desc.layout_version != LAYOUT_VERSION {
            // Layout versions are small integers counted up from 1: a larger value is garbage
            // after a valid magic, not another version (fastqueue/_diagnose.py agrees).
            return Err(
                if (1..=MAX_PLAUSIBLE_VERSION).contains(&desc.layout_version) {
                    Status::Version
                } else {
                    Status::BadSegment
                },
            );
        }
        if desc.header_size as usize != HEADER_SIZE || desc.max_participants != MAX_PARTICIPANTS {
            return Err(Status::BadSegment);
        }
        if desc.flags & !FLAG_REDELIVER != 0
            || (desc.flags & FLAG_REDELIVER != 0) != (desc.leases != 0)
        {
            return Err(Status::BadSegment);
        }
        let g = Geometry::with_leases(desc.max_msg, desc.capacity, desc.leases)
            .map_err(|_| Status::BadSegment)?;
        let stored = (
            desc.slot_stride,
            desc.participants_offset,
            desc.slots_offset,
            desc.pool_offset,
            desc.buf_stride,
            desc.total_size,
            desc.lease_offset,
            desc.lease_stride,
        );
        if stored
            != (
                g.slot_stride,
                g.participants_offset,
                g.slots_offset,
                g.pool_offset,
                g.buf_stride,
                g.total_size,
                g.lease_offset,
                g.lease_stride,
            )
            || g.total_size > mapped_len
        {
            return Err(Status::BadSegment);
        }
        Ok(g)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn geometry_rejects_zero_and_huge() {
        assert_eq!(Geometry::new(0, 1), Err(Status::Invalid));
        assert_eq!(Geometry::new(1, 0), Err(Status::Invalid));
        assert_eq!(Geometry::new(MAX_MSG + 1, 1), Err(Status::Invalid));
        assert_eq!(Geometry::new(MAX_MSG, MAX_CAPACITY), Err(Status::Invalid));
    }

    #[test]
    fn geometry_is_aligned() {
        for (m, c) in [
            (1, 1),
            (8, 3),
            (1000, 7),
            (1 << 20, 1),
            (POOL_MIN_MSG - 1, 2),
        ] {
            let g = Geometry::new(m, c).unwrap();
            assert_eq!(g.slot_stride % SLOT_ALIGN, 0);
            assert!(g.slot_stride >= m + SLOT_HEADER_SIZE);
            assert_eq!(g.slots_offset % LINE as u64, 0);
            assert_eq!(
                g.ledger_offset,
                (g.slots_offset + c * g.slot_stride).next_multiple_of(LINE as u64)
            );
            assert_eq!(
                g.total_size,
                g.ledger_offset + u64::from(MAX_PARTICIPANTS) * LEDGER_STRIDE
            );
            assert_eq!((g.pool_offset, g.buf_stride), (0, 0));
        }
    }

    #[test]
    fn large_messages_get_a_page_aligned_pool() {
        let g = Geometry::new(POOL_MIN_MSG + 1, 8).unwrap();
        assert_eq!(g.slot_stride, SLOT_ALIGN);
        assert_eq!(g.buf_stride, POOL_MIN_MSG + POOL_ALIGN);
        assert_eq!(g.pool_offset % POOL_ALIGN, 0);
        assert!(g.pool_offset >= g.slots_offset + 8 * SLOT_ALIGN);
        assert_eq!(g.ledger_offset, g.pool_offset + 8 * g.buf_stride);
        // Capacity 1 (no partner to swap with) and huge capacities stay inline.
        assert_eq!(Geometry::new(POOL_MIN_MSG, 1).unwrap().pool_offset, 0);
        assert_eq!(
            Geometry::new(POOL_MIN_MSG, POOL_MAX_CAPACITY + 1)
                .unwrap()
                .pool_offset,
            0
        );
        assert_eq!(Geometry::new(POOL_MIN_MSG - 1, 8).unwrap().pool_offset, 0);
    }

    #[test]
    fn leases_follow_the_ledger() {
        let g = Geometry::with_leases(100, 4, 3).unwrap();
        let plain = Geometry::new(100, 4).unwrap();
        assert_eq!(g.lease_offset, plain.total_size);
        assert_eq!(g.lease_stride, 192);
        assert_eq!(g.total_size, g.lease_offset + LINE as u64 + 3 * 192);
        assert_eq!(plain.lease_offset, 0);
        assert_eq!(
            Geometry::with_leases(1, 1, MAX_LEASES + 1),
            Err(Status::Invalid)
        );
        // Every valid count fits the u32 that `lease::Leases` keeps it in.
        assert_eq!(u32::try_from(MAX_LEASES).ok(), Some(u32::MAX));
        assert_eq!(Geometry::with_leases(1, 1, 1 << 32), Err(Status::Invalid));
    }
}
