//! Sleeping and waking across processes without polling.
//!
//! A waiter spins briefly (bounded), then sleeps in the kernel on a 32-bit futex word in the
//! segment (`WaitWord::seq`), and is woken by the operation it waits for. The protocol is the
//! classic "announce, re-check, sleep" that cannot lose a wake-up:
//!
//! * waiter: `sleepers += 1` (SeqCst), read `seq`, re-check the queue; if it still cannot go on,
//!   `futex_wait(seq, value read)`; `sleepers -= 1`.
//! * waker: make its change visible (the ring's Release store), then a SeqCst fence, then read
//!   `sleepers`; only if it is non-zero: `seq += 1` and `futex_wake(all)`.
//!
//! Either the waiter's re-check sees the waker's change, or the waker sees the waiter's
//! announcement (the two SeqCst operations are totally ordered), and a `seq` bump between the
//! waiter's read and its sleep makes the futex call return at once. So a waker makes a system
//! call only when someone sleeps, and no one sleeps through the change it waits for.
//!
//! Wakers wake every sleeper rather than one: a woken waiter whose own deadline also expired
//! would otherwise swallow the only wake-up while another waiter could have used it.
//!
//! Futexes are used in their shared (not `PRIVATE`) form, because the word lives in a
//! `MAP_SHARED` mapping that other processes map at other addresses.

use crate::layout::WaitWord;
use crate::ring::Blocked;
use crate::sync::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter spins (re-trying its operation between short CPU pauses) before it
/// announces itself and sleeps in the kernel. A futex wake-up costs tens of microseconds on a
/// loaded virtual machine, while a partner process that is running answers within a few; 20 µs of
/// spinning catches such a partner without a system call, and bounds what an idle waiter burns
/// each time it (re-)enters a wait: Python re-enters every wait slice, so a consumer idle for 2 s
/// in 100 ms slices spins at most 20 × 20 µs = 0.4 ms.
pub const SPIN_TIME: Duration = Duration::from_micros(20);

/// Sleeps on `word` while it holds `expected`, for at most `timeout` (`None`: no limit).
/// Returns on a wake-up, a signal, a changed word or the timeout; callers re-check their
/// condition either way.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call; FUTEX_WAIT
    // only reads it; `ts_ptr` is NULL or points to a timespec that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            core::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE does not touch memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            core::ptr::null::<libc::timespec>(),
            core::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes the sleepers of `w`, if there are any. Call after the change they wait for was made
/// visible (a Release store in the ring).
#[inline]
pub fn notify(w: &WaitWord) {
    // ORDERING: SeqCst fence orders our earlier ring store before the load of `sleepers`,
    // pairing with the waiter's SeqCst increment and fence (see the module docs).
    fence(Ordering::SeqCst);
    // ORDERING: Relaxed: ordered by the fence above.
    if w.sleepers.load(Ordering::Relaxed) != 0 {
        // ORDERING: Release: a waiter that sees the new seq also sees our ring store.
        w.seq.fetch_add(1, Ordering::Release);
        futex_wake_all(&w.seq);
    }
}

/// The outcome of one attempt inside [`block_on`].
pub enum Attempt<T> {
    /// The operation succeeded.
    Done(T),
    /// It could not proceed; the ring says where and why.
    Blocked(Blocked),
}

/// How often a sleeping waiter whose slot is held by another process (`WRITING`/`READING`)
/// checks whether that process died.
pub const STUCK_CHECK: Duration = Duration::from_millis(20);

/// The longest a waiter blocked on a plain full or empty ring (a slot with no owner) sleeps
/// before it looks again. Every change it waits for wakes it at once; this bound only covers the
/// one change that sends no wake-up: the slot it waits on was claimed meanwhile by a process
/// that then died (a consumer dying inside its get while producers sleep on a full ring, or a
/// producer dying inside its put while consumers sleep on an empty one). Four wake-ups a second
/// cost a sleeper a few microseconds of CPU per second; recovery then follows within about
/// `IDLE_RECHECK + STUCK_CHECK`.
pub const IDLE_RECHECK: Duration = Duration::from_millis(250);

/// Runs `attempt` until it succeeds or `deadline` passes: first spinning, then sleeping on `w`
/// between attempts. When an attempt is blocked by a slot that another process holds,
/// `on_stuck` is called (at most every [`STUCK_CHECK`]) so the caller can check whether that
/// process died and free the slot; it returns true if it freed something.
/// Returns `Err(blocker)` with the last blocker on timeout.
pub fn block_on<T>(
    w: &WaitWord,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Attempt<T>,
    mut on_stuck: impl FnMut(Blocked) -> bool,
) -> Result<T, Blocked> {
    let start = Instant::now();
    let spin_until = deadline.map_or(start + SPIN_TIME, |d| d.min(start + SPIN_TIME));
    let mut spins = 0u32;
    let mut last = loop {
        match attempt() {
            Attempt::Done(v) => return Ok(v),
            Attempt::Blocked(b) => {
                spins += 1;
                if spins % 8 == 0 && Instant::now() >= spin_until {
                    break b;
                }
            }
        }
        for _ in 0..4 {
            crate::sync::spin_hint();
        }
    };
    let mut next_check = Instant::now() + STUCK_CHECK;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(last);
        }
        if last.held() && now >= next_check {
            next_check = now + STUCK_CHECK;
            if on_stuck(last) {
                match attempt() {
                    Attempt::Done(v) => return Ok(v),
                    Attempt::Blocked(b) => last = b,
                }
                continue;
            }
        }
        // ORDERING: SeqCst increment pairs with the waker's SeqCst fence (module docs).
        w.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // ORDERING: Acquire pairs with the waker's Release increment.
        let seq = w.seq.load(Ordering::Acquire);
        let outcome = attempt();
        if let Attempt::Blocked(b) = outcome {
            last = b;
            let now = Instant::now();
            let bound = if last.held() {
                next_check.saturating_duration_since(now)
            } else {
                IDLE_RECHECK
            };
            let sleep = deadline.map_or(bound, |d| d.saturating_duration_since(now).min(bound));
            futex_wait(&w.seq, seq, Some(sleep));
        }
        // ORDERING: Relaxed: the count is only read by wakers deciding whether to wake.
        w.sleepers.fetch_sub(1, Ordering::Relaxed);
        if let Attempt::Done(v) = outcome {
            return Ok(v);
        }
    }
}

/// Sleeps on `w` until `ready()` returns true or `deadline` passes (then returns false). The
/// same announce / re-check / sleep protocol as [`block_on`], without the spinning: used for
/// rare waits such as `join`, whose wakers call [`notify`] after changing what `ready` reads.
/// `idle` runs every [`IDLE_RECHECK`] of sleep (join uses it to recover slots of dead processes,
/// whose messages would otherwise stay unfinished).
pub fn wait_until(
    w: &WaitWord,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> bool,
    mut idle: impl FnMut(),
) -> bool {
    loop {
        if ready() {
            return true;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        // ORDERING: SeqCst increment pairs with the waker's SeqCst fence (module docs).
        w.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // ORDERING: Acquire pairs with the waker's Release increment.
        let seq = w.seq.load(Ordering::Acquire);
        let sleep = !ready();
        if sleep {
            let bound = deadline.map_or(IDLE_RECHECK, |d| {
                d.saturating_duration_since(now).min(IDLE_RECHECK)
            });
            futex_wait(&w.seq, seq, Some(bound));
        }
        // ORDERING: Relaxed: the count is only read by wakers deciding whether to wake.
        w.sleepers.fetch_sub(1, Ordering::Relaxed);
        if sleep {
            idle();
        }
    }
}
