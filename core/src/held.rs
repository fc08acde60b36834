//! The receive buffer's *held word* of `fq_take`: a caller-owned `i64` beside a receive buffer
//! that says whether the buffer holds a message the library handed over and the caller has not
//! yet consumed, so that an interrupt landing between the take and the caller's use of the
//! message (a Python signal handler raising on the way back from the call) cannot lose it.
//!
//! Values of the word (all transitions are one CAS or store on it):
//!
//! * [`FREE`] (`-1`): the buffer holds nothing of the queue's; a take may use it.
//! * [`IN_CALL`] (`i64::MIN`): an `fq_take` is using the buffer (it may be waiting).
//! * `n ≥ 0`: the last take put a message of `n` bytes in the buffer and its caller is
//!   consuming it; the caller stores `FREE` once it has (and, if it is interrupted first,
//!   marks it kept). Further takes into this buffer are refused (`Status::Busy`).
//! * `-(n + 2)` (`≤ -2`): a kept message of `n` bytes: the caller was interrupted before it
//!   consumed it. The next take into this buffer hands that message over again (the word
//!   becomes `n`) and takes nothing from the queue.
//!
//! The word lives in the caller's memory, not in the segment: it is the caller's record of what
//! it holds, and no other process reads it.

use std::sync::atomic::{AtomicI64, Ordering};

/// The buffer holds nothing.
pub const FREE: i64 = -1;
/// A take is using the buffer.
pub const IN_CALL: i64 = i64::MIN;

/// What a take may do with its buffer, decided by claiming the word.
pub enum Claim {
    /// The buffer is claimed (the word is [`IN_CALL`]): take into it, then [`settle`].
    Take,
    /// The buffer keeps a message of this many bytes: hand it over again (the word is now its
    /// length, as after a take).
    Kept(u64),
    /// Someone else's take or message is in the buffer: take nothing.
    Busy,
}

/// Claims the buffer whose held word is `word`.
pub fn claim(word: &AtomicI64) -> Claim {
    // ORDERING: Acquire/AcqRel pair with the Release stores of the caller's thread (or another
    // thread of its process) that last set the word, so that the buffer's bytes written before
    // are seen; the CAS makes one take the buffer's only user.
    let v = word.load(Ordering::Acquire);
    if v == FREE {
        if word
            .compare_exchange(FREE, IN_CALL, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Claim::Take;
        }
        return Claim::Busy;
    }
    if v != IN_CALL && v <= -2 {
        let n = -(v + 2);
        if word
            .compare_exchange(v, n, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Claim::Kept(n as u64);
        }
    }
    Claim::Busy
}

/// Ends a claimed take: the buffer now holds a message of `len` bytes (`Some`), or nothing.
pub fn settle(word: &AtomicI64, len: Option<u64>) {
    // ORDERING: Release pairs with the Acquire of the next `claim` (and the caller's reads of
    // the word): the message's bytes are in the buffer before the word says so.
    word.store(len.map_or(FREE, |n| n as i64), Ordering::Release);
}

/// Claims a free buffer only (a kept or busy one is left as it is): true if the word went from
/// [`FREE`] to [`IN_CALL`].
pub fn claim_free(word: &AtomicI64) -> bool {
    // ORDERING: as in `claim`.
    word.compare_exchange(FREE, IN_CALL, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Ends a claimed call that put a message of `len` bytes in the buffer as *kept*: the next
/// take hands it over.
pub fn settle_kept(word: &AtomicI64, len: u64) {
    // ORDERING: as in `settle`.
    word.store(-(len as i64) - 2, Ordering::Release);
}

/// The held word at `p`, if `p` is non-NULL and aligned for an atomic.
///
/// # Safety
/// A non-NULL, aligned `p` points to an `i64` that stays valid for `'a` and that only these
/// calls and their caller change (never at the same time as a call).
pub unsafe fn word<'a>(p: *mut i64) -> Option<&'a AtomicI64> {
    if p.is_null() || (p as usize) % core::mem::align_of::<AtomicI64>() != 0 {
        return None;
    }
    // SAFETY: non-NULL and aligned for AtomicI64, which has the size and bit validity of
    // i64; valid for 'a per the contract.
    Some(unsafe { &*p.cast::<AtomicI64>() })
}
