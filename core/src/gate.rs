//! The calls waiting on one handle, so that `fq_close` may run while other threads are blocked
//! in calls on the same handle (the ordinary way a C program shuts a worker down).
//!
//! One word per handle: bit 63 says the handle is closing, the low bits count the calls that
//! wait on the handle. Every call first checks the bit ([`Gate::is_closing`], a plain load); a
//! call that has to wait (sleep on a wait word, or spin for room) enters (count + 1) and, if the
//! handle is closing, leaves at once with `Closed`; while it waits it re-checks
//! [`Gate::is_closing`] whenever it looks at the ring again, so the closer's wake-up sends it
//! home. The closer sets the bit, wakes the waiters if any call is counted, and frees the handle
//! only once the count is back to zero: no waiting call is ever inside an unmapped segment.
//!
//! Calls that do not wait are not counted: they pay no atomic read-modify-write on every call
//! (a C put+get pair measured 62 ns uncounted against 85 ns counted). Such a call overlapping
//! `fq_close`, like any call that *starts* after `fq_close` began and a second `fq_close`, uses
//! freed memory: undefined behaviour, as the header says. (It cannot be made safe by counting
//! it: the same thread's next call would start after the close anyway.)

use std::sync::atomic::{AtomicU64, Ordering};

/// Bit of [`Gate::word`] set once the handle is closing.
const CLOSING: u64 = 1 << 63;

/// Calls in flight on one handle, and whether it is closing.
#[derive(Default)]
pub struct Gate {
    /// Invariant: bit 63 is [`CLOSING`] (never cleared once set); the low bits count the calls
    /// between [`Gate::enter`] and [`Gate::exit`].
    word: AtomicU64,
}

impl Gate {
    /// Registers a call; `false` (and nothing registered) if the handle is closing.
    #[inline]
    pub fn enter(&self) -> bool {
        // ORDERING: SeqCst pairs with the SeqCst fetch_or in `close`: either the closer sees
        // this call counted (and waits for it), or this call sees CLOSING (and leaves).
        let was = self.word.fetch_add(1, Ordering::SeqCst);
        if was & CLOSING != 0 {
            self.exit();
            return false;
        }
        true
    }

    /// Ends a call registered by [`Gate::enter`].
    #[inline]
    pub fn exit(&self) {
        // ORDERING: Release: everything the call did with the segment happens before the
        // closer's Acquire load in `drained` sees the count drop, so before the unmapping.
        self.word.fetch_sub(1, Ordering::Release);
    }

    /// Marks the handle closing: later and blocked calls return `Closed`.
    pub fn close(&self) {
        // ORDERING: SeqCst: see `enter`; also ordered before the closer's wake-ups, whose
        // SeqCst sleeper checks pair with the waiters' announcements (see `wait`), so a waiter
        // either sees CLOSING when it re-checks or is asleep and woken.
        self.word.fetch_or(CLOSING, Ordering::SeqCst);
    }

    /// Whether [`Gate::close`] was called.
    #[inline]
    pub fn is_closing(&self) -> bool {
        // ORDERING: SeqCst: a waiter's re-check after announcing itself (see `close`).
        self.word.load(Ordering::SeqCst) & CLOSING != 0
    }

    /// Whether no call is in flight any more.
    pub fn drained(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `exit`.
        self.word.load(Ordering::Acquire) & !CLOSING == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_lets_no_call_in_and_drains() {
        let g = Gate::default();
        assert!(g.enter());
        g.close();
        assert!(g.is_closing());
        assert!(!g.drained());
        assert!(!g.enter());
        g.exit();
        assert!(g.drained());
    }
}
