//! The atomics the ring uses: std's in normal builds, loom's under `--cfg loom`, so the loom model
//! checks exactly the code that ships.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// A hint to the CPU that the caller is spinning (loom: a yield to the model's scheduler).
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
