//! Sleeping and waking across processes without polling, and without a thundering herd.
//!
//! A waiter spins briefly (adaptively, and only while few others spin), then sleeps in the kernel
//! on a 32-bit futex word in the segment (`WaitWord::seq`), and is woken by the operation it
//! waits for. The protocol is an eventcount: "announce, re-check, sleep", which cannot lose a
//! wake-up, with wakers that wake only as many sleepers as they made changes available.
//!
//! * waiter ([`announce`], [`sleep`], [`retire`]): `sleepers += 1` (SeqCst) and a SeqCst fence,
//!   read `seq`, re-check the queue; if it still cannot go on, `futex_wait(seq, value read)`;
//!   then `sleepers -= 1`, unless a wake-up chose it (its waker did that), and try again.
//! * waker ([`notify`]): make its change visible (the ring's Release store), then a SeqCst fence,
//!   then read `sleepers`; only if it is non-zero: `seq += 1` and `futex_wake(n)`, where `n` is
//!   the number of messages (or free slots) it made available: 1 for a put or a get, the run's
//!   length for a batch; then `sleepers -= woken`, so that wakers after it do not call the
//!   kernel for waiters already woken that have not run yet ([`wake`]). A waker whose call
//!   found the kernel's queue empty leaves a mark (`quiet`: that `seq`, and `clears`, the count
//!   of tickets waiters read); while it holds, the waiters still counted announced before that
//!   bump and cannot sleep, and wakers skip the call ([`wake`]). Shutdown, recovery and
//!   `join` wake everyone ([`notify_all`]).
//!
//! Why nothing is lost:
//!
//! 1. Either the waiter's re-check sees the waker's change, or the waker sees the waiter's
//!    announcement: the two SeqCst fences order the store-then-load pairs of both sides.
//! 2. A waker that sees `sleepers != 0` bumps `seq` before it wakes. A waiter that read `seq`
//!    before the bump either is already queued in the kernel (the futex checks the word and
//!    queues atomically), or its `futex_wait` finds the word changed and returns at once, to
//!    re-check. So after every bump, either every announced waiter re-checks, or at least one
//!    queued sleeper is woken (`futex_wake(1)` wakes one if any is queued): one waiter per
//!    change made available is awake to take it.
//! 3. The hand-over: a waiter chosen by a wake-up (`futex_wait` returned because of a
//!    `FUTEX_WAKE`) that then leaves without taking what it was woken for (its deadline ran out,
//!    its caller's wait slice ended for a Ctrl-C check, the message was too long for its
//!    buffer, the queue shut down...) passes the wake-up on with `notify(1)`: whoever else
//!    sleeps gets it. A chosen waiter that re-checks and finds nothing left was beaten to it by
//!    an awake caller, which took the change: nothing to pass on.
//!
//! 4. The chain of gets: a put whose message sits behind one that no get has claimed yet
//!    (`FULL`) or that is still being written (`WRITING`) wakes nobody
//!    ([`notify_unless_behind`]); every get, after its claim, wakes one sleeper if messages
//!    are still waiting ([`chain`], [`after_take`]). The claim of that earlier message comes
//!    after the put's look at its slot, so (SeqCst fences on both sides) the claimer's chain
//!    sees the later message and the sleepers that missed it; a publisher of a `WRITING`
//!    predecessor wakes or leaves it to the chain in turn. A producer that runs ahead of the
//!    consumers (awake, or woken and not yet running) thus makes no system call per message,
//!    and a backlog wakes consumers one by one, each woken by one that found more than it took.
//!
//! Wakers make a system call only when someone sleeps; a put never wakes more than one
//! consumer, so N idle consumers cost a stream of messages one wake-up each, not N.
//!
//! Spinning: a waiter first re-tries for up to [`SPIN_TIME`] without sleeping, because a partner
//! process that is running answers within microseconds while a futex round trip costs tens of
//! them. What keeps spinning from hurting is that at most half the CPUs' worth of waiters spin
//! on one side at once (`WaitWord::spinners`); the others sleep at once, so more processes than
//! cores do not burn each other's time slices, and wakers count on the spinners instead of
//! waking sleepers. (A per-handle spin that shrank after waits that had to sleep was tried and
//! measured: no topology got faster, and a cross-process ping-pong whose two sides had slept
//! once each kept spinning shorter than the other's wake-up took, sleeping again and again: its
//! 99th percentile went from ~3 µs to 25-80 µs.)
//!
//! Futexes are used in their shared (not `PRIVATE`) form, because the word lives in a
//! `MAP_SHARED` mapping that other processes map at other addresses. Under `--cfg loom` the
//! futex is a model (a mutex, a condition variable and a queue of waiters) so that
//! `core/tests/loom.rs` checks the protocol functions that ship.

use crate::layout::WaitWord;
use crate::sync::{fence, Ordering};
use std::time::Duration;

#[cfg(not(loom))]
use crate::ring::Blocked;
#[cfg(not(loom))]
use std::time::Instant;

#[cfg(not(loom))]
mod futex {
    use crate::sync::AtomicU32;
    use std::time::Duration;

    /// Sleeps on `word` while it holds `expected`, for at most `timeout` (`None`: no limit).
    /// Returns true if a `FUTEX_WAKE` woke it (it was chosen), false on a timeout, a signal or
    /// a changed word. Callers re-check their condition either way.
    pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
        wait_why(word, expected, timeout) == Woke::Chosen
    }

    /// [`wait`], telling a signal (`EINTR`) apart from the other ways a sleep ends.
    pub fn wait_why(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Woke {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(core::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of the call;
        // FUTEX_WAIT only reads it; `ts_ptr` is NULL or points to a timespec that outlives the
        // call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                core::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            Woke::Chosen
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            Woke::Signal
        } else {
            Woke::Other
        }
    }

    /// How a sleep ended.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Woke {
        /// A `FUTEX_WAKE` chose this sleeper.
        Chosen,
        /// A signal handler ran (`EINTR`): the caller may leave to let its program act on it.
        Signal,
        /// A timeout, or the word had changed.
        Other,
    }

    /// Wakes at most `n` processes sleeping on `word`; returns how many it woke.
    pub fn wake(word: &AtomicU32, n: u32) -> u32 {
        let n = n.min(i32::MAX as u32) as i32;
        // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE does not touch memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                n,
                core::ptr::null::<libc::timespec>(),
                core::ptr::null::<u32>(),
                0u32,
            )
        };
        r.max(0) as u32
    }
}

#[cfg(loom)]
mod futex {
    //! A model of the futex for loom: one queue of waiters behind a mutex, the word checked
    //! under the mutex as the kernel checks it under its bucket lock. A wait with a timeout
    //! gives up at a point of loom's choosing (it yields once), so the models explore a wake-up
    //! that races a timeout.
    use crate::sync::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};
    use std::time::Duration;

    struct Waiter {
        word: usize,
        id: u64,
        woken: bool,
    }

    #[derive(Default)]
    struct Queue {
        waiters: Vec<Waiter>,
        next_id: u64,
    }

    struct Model {
        queue: Mutex<Queue>,
        cond: Condvar,
    }

    loom::lazy_static! {
        static ref MODEL: Model = Model { queue: Mutex::new(Queue::default()), cond: Condvar::new() };
    }

    fn take(q: &mut Queue, id: u64) -> bool {
        let i = q.waiters.iter().position(|w| w.id == id).expect("queued");
        q.waiters.remove(i).woken
    }

    /// See the real `wait`.
    pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
        let mut q = MODEL.queue.lock().unwrap();
        // ORDERING: Relaxed, under the mutex: a waker bumps the word before it takes the mutex.
        if word.load(Ordering::Relaxed) != expected {
            return false;
        }
        let id = q.next_id;
        q.next_id += 1;
        q.waiters.push(Waiter {
            word: word as *const AtomicU32 as usize,
            id,
            woken: false,
        });
        if timeout.is_some() {
            drop(q);
            loom::thread::yield_now();
            let mut q = MODEL.queue.lock().unwrap();
            return take(&mut q, id);
        }
        loop {
            if q.waiters.iter().any(|w| w.id == id && w.woken) {
                return take(&mut q, id);
            }
            q = MODEL.cond.wait(q).unwrap();
        }
    }

    /// See the real `wake`.
    pub fn wake(word: &AtomicU32, n: u32) -> u32 {
        let mut q = MODEL.queue.lock().unwrap();
        let addr = word as *const AtomicU32 as usize;
        let mut woke = 0;
        for w in q.waiters.iter_mut() {
            if woke < n && w.word == addr && !w.woken {
                w.woken = true;
                woke += 1;
            }
        }
        drop(q);
        MODEL.cond.notify_all();
        woke
    }
}

/// A waiter's announcement ([`announce`]): the value of `seq` it read before re-checking, and
/// whether a wake-up chose it since (then the waker ended the announcement: see [`wake`]).
#[must_use = "a ticket must be retired"]
pub struct Ticket(u32, bool);

/// Announces that the caller is about to re-check and may sleep on `w`. Re-check the queue
/// after this, then [`sleep`] if it still cannot go on, then [`retire`] either way.
#[inline]
pub fn announce(w: &WaitWord) -> Ticket {
    // ORDERING: SeqCst increment and fence pair with the waker's SeqCst fence in `notify`:
    // either the re-check that follows sees the waker's change, or the waker sees us.
    w.sleepers.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    // ORDERING: Acquire pairs with the waker's Release increment of `seq`: a waiter that read
    // the new value has its `clears` increment below ordered after that waker's read of
    // `clears` (which came before its bump), so the waker's mark does not count it.
    let t = w.seq.load(Ordering::Acquire);
    // ORDERING: the mark of this ticket (see `wake`): SeqCst increment, then a SeqCst fence
    // before the re-check, pairing with the fence before a waker's look at `clears`: either
    // the waker reads the new count (and makes its call), or our re-check sees its change.
    w.clears.fetch_add(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    Ticket(t, false)
}

/// Sleeps on `w` unless a waker bumped `seq` since `t` was taken, for at most `timeout`.
/// Returns true if this waiter was chosen by a wake-up: if it then leaves without taking what
/// it waited for, it must pass the wake-up on ([`notify`] with 1). A chosen waiter's
/// announcement was ended by its waker (the ticket records it; [`retire`] then leaves the count).
#[inline]
pub fn sleep(w: &WaitWord, t: &mut Ticket, timeout: Option<Duration>) -> bool {
    // ORDERING: Relaxed: statistics only.
    w.sleeps.fetch_add(1, Ordering::Relaxed);
    t.1 = futex::wait(&w.seq, t.0, timeout);
    t.1
}

/// [`sleep`] that also tells whether a signal ended the sleep: `(chosen, signal)`.
#[cfg(not(loom))]
#[inline]
fn sleep_why(w: &WaitWord, t: &mut Ticket, timeout: Option<Duration>) -> (bool, bool) {
    // ORDERING: Relaxed: statistics only.
    w.sleeps.fetch_add(1, Ordering::Relaxed);
    let why = futex::wait_why(&w.seq, t.0, timeout);
    t.1 = why == futex::Woke::Chosen;
    (t.1, why == futex::Woke::Signal)
}

/// Ends an announcement, unless a wake-up chose this waiter: its waker ended it then ([`wake`]).
#[inline]
pub fn retire(w: &WaitWord, t: Ticket) {
    if t.1 {
        return;
    }
    // ORDERING: Relaxed: the count is only read by wakers deciding whether to make a system
    // call; a stale non-zero costs one needless call, never a lost wake-up.
    w.sleepers.fetch_sub(1, Ordering::Relaxed);
}

/// Wakes at most `n` sleepers of `w`, if there are any: call after making `n` changes (messages,
/// free slots) visible with the ring's Release stores. A waiter spinning on `w` takes a change
/// without a wake-up: with `s` spinners registered, only `n - s` sleepers are woken (a spinner
/// looks again after it stops spinning, see [`stop_spinning`]).
#[inline]
pub fn notify(w: &WaitWord, n: u32) {
    if let Some(spinning) = sleepers_beside(w) {
        if n > spinning {
            wake(w, n - spinning);
        }
    }
}

/// [`notify`] of one message by a put that may leave it to the chain of gets (see [`chain`]):
/// if `behind()` (asked only when someone sleeps and no spinner is registered) says that the
/// position before the message still holds one that no get has claimed (`FULL`) or that its
/// producer is still writing (`WRITING`), no sleeper is woken. Whoever claims that earlier
/// message next calls [`chain`] and so sees this one (its claim comes after our look at the
/// slot: the SeqCst fences order the rest), and whoever publishes it (if `WRITING`) wakes or
/// leaves it to the chain in turn. So a producer that runs ahead of an awake consumer, or of
/// one it woke that has not run yet, makes no system call per message: the consumers wake one
/// another as they find more than they took.
#[inline]
pub fn notify_unless_behind(w: &WaitWord, behind: impl FnOnce() -> bool) {
    if let Some(spinning) = sleepers_beside(w) {
        if spinning == 0 && !behind() {
            wake(w, 1);
        }
    }
}

/// The chain of gets (for [`notify_unless_behind`]): called after every claim of a message,
/// once the claim is made. If someone sleeps, no spinner is registered and `ready()` (asked
/// only then) says a message is waiting, wakes one sleeper: the woken one, after its own claim,
/// does the same, so a backlog left to the chain wakes as many consumers as it keeps busy.
#[inline]
pub fn chain(w: &WaitWord, ready: impl FnOnce() -> u32) {
    if let Some(spinning) = sleepers_beside(w) {
        if spinning == 0 && ready() != 0 {
            wake(w, 1);
        }
    }
}

/// A get's wake-ups after it took `n` messages and freed their slots: [`notify_room`] on
/// `room` (the producers' word) and [`chain`] on `getters`, behind one SeqCst fence.
#[inline]
pub fn after_take(
    room: &WaitWord,
    n: u32,
    low: u32,
    free: impl FnOnce() -> u32,
    getters: &WaitWord,
    ready: impl FnOnce() -> u32,
) {
    // ORDERING: one SeqCst fence for both halves: it orders the claims and the frees before
    // the loads of both words' counts (as `sleepers_beside` does for one).
    fence(Ordering::SeqCst);
    room_after_fence(room, n, low, free);
    // ORDERING: Relaxed: ordered by the fence above.
    if getters.sleepers.load(Ordering::Relaxed) != 0
        // ORDERING: as above.
        && getters.spinners.load(Ordering::Relaxed) == 0
        && ready() != 0
    {
        wake(getters, 1);
    }
}

/// The waker's half of the protocol, after its change was made visible: `None` if nobody
/// sleeps on `w` (then no system call is due), else how many spinners wakers may count on.
#[inline]
fn sleepers_beside(w: &WaitWord) -> Option<u32> {
    // ORDERING: SeqCst fence orders our earlier ring store before the loads of `sleepers` and
    // `spinners`, pairing with the waiter's SeqCst fence in `announce` or `stop_spinning`.
    fence(Ordering::SeqCst);
    // ORDERING: Relaxed: ordered by the fence above.
    if w.sleepers.load(Ordering::Relaxed) == 0 {
        return None;
    }
    // ORDERING: Relaxed: ordered by the fence above.
    Some(w.spinners.load(Ordering::Relaxed))
}

/// [`notify`] for waiters that want room rather than one slot (producers on a full ring):
/// sleepers are woken only once `free()` (asked only when someone sleeps and no spinner is
/// enough) reaches `low`, and then as many as there are free slots, in one system call. A
/// consumer draining a full ring thus wakes the producers once per `low` messages instead of
/// once per message, so that the producers do not take turns sleeping and waking for every
/// slot. What is deferred is bounded: a sleeper looks again when its caller's wait slice or its
/// deadline ends ([`block_on`] makes a last attempt at the deadline), and after
/// `IDLE_RECHECK` at the latest.
#[inline]
pub fn notify_room(w: &WaitWord, n: u32, low: u32, free: impl FnOnce() -> u32) {
    // ORDERING: see `sleepers_beside`.
    fence(Ordering::SeqCst);
    room_after_fence(w, n, low, free);
}

/// [`notify_room`] after its fence.
#[inline]
fn room_after_fence(w: &WaitWord, n: u32, low: u32, free: impl FnOnce() -> u32) {
    // ORDERING: Relaxed: ordered by the caller's SeqCst fence.
    if w.sleepers.load(Ordering::Relaxed) == 0 {
        return;
    }
    // ORDERING: as above.
    let spinning = w.spinners.load(Ordering::Relaxed);
    if n > spinning {
        let free = free();
        if free >= low || starving(w) {
            wake(w, free - spinning.min(free));
        }
    }
}

/// How long a waiter may stay blocked while others of its side get through before it counts as
/// starving (see `WaitWord::starving`). Long enough that a pool running flat out (where
/// sleepers routinely wait while awake callers keep the ring full) stays in its fast mode
/// nearly all the time; short enough that no waiter waits ~100 ms (a wait slice) for its turn.
pub const STARVE_AFTER: Duration = Duration::from_millis(40);

/// How often a starving waiter renews its mark; the mark lapses two of these after the last
/// renewal, so the fair mode ends soon after the starving waiter got through.
pub const STARVE_RENEW: Duration = Duration::from_millis(4);

/// CLOCK_MONOTONIC in milliseconds, wrapping, never 0: comparable across processes.
#[cfg(not(loom))]
fn now_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to write; CLOCK_MONOTONIC exists on
    // every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let ms = (ts.tv_sec as u64).wrapping_mul(1000) + ts.tv_nsec as u64 / 1_000_000;
    (ms as u32).max(1)
}

/// Whether a waiter of `w` found itself starving recently (within two [`STARVE_RENEW`]s: a
/// starving waiter renews the mark that often while it stays blocked).
#[cfg(not(loom))]
fn starving(w: &WaitWord) -> bool {
    // ORDERING: Relaxed: a fairness hint; any recent value will do.
    let t = w.starving.load(Ordering::Relaxed);
    t != 0 && now_ms().wrapping_sub(t) <= 2 * STARVE_RENEW.as_millis() as u32
}

#[cfg(loom)]
fn starving(_: &WaitWord) -> bool {
    false
}

/// Marks `w` as having a starving waiter now.
#[cfg(not(loom))]
fn mark_starving(w: &WaitWord) {
    // ORDERING: Relaxed: as in `starving`.
    w.starving.store(now_ms(), Ordering::Relaxed);
}

/// Wakes every sleeper of `w`: for changes that concern every waiter (shutdown, recovery,
/// the end of `join`).
#[inline]
pub fn notify_all(w: &WaitWord) {
    if sleepers_beside(w).is_some() {
        wake(w, u32::MAX);
    }
}

/// Registers a spinner on `w` if fewer than `max` spin there now. While registered, wakers
/// count on it instead of waking a sleeper ([`notify`]); it must end with [`stop_spinning`].
#[inline]
pub fn start_spinning(w: &WaitWord, max: u32) -> bool {
    if starving(w) {
        return false;
    }
    // ORDERING: Relaxed: a waker that reads the new count relies on `stop_spinning`'s fence,
    // not on this store; one that reads the old count wakes a sleeper as usual.
    w.spinners
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Ends a spinner's registration. The caller must then look at the ring once more (a re-check
/// before sleeping, or [`hand_on`] after taking something): a waker that counted on this
/// spinner may have published a change that no attempt of the spin saw.
#[inline]
pub fn stop_spinning(w: &WaitWord) {
    // ORDERING: Relaxed, then a SeqCst fence pairing with the waker's fence in `notify`: either
    // the waker read the decremented count (and woke a sleeper), or our look after this fence
    // sees its change. Saturating, so that a corrupted count cannot wrap.
    let _ = w
        .spinners
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    fence(Ordering::SeqCst);
}

/// After a waiter that spun stopped and took what it waited for (or gave up): wakers may have
/// counted on it for changes it did not take, instead of waking a sleeper; wake sleepers for
/// what is still available. `more` tells how much that is (0: none); it is only asked when
/// someone sleeps. Call after [`stop_spinning`].
#[inline]
pub fn hand_on(w: &WaitWord, more: impl FnOnce() -> u32) {
    // ORDERING: Relaxed: ordered by `stop_spinning`'s fence. A sleeper that announces after
    // this load re-checks and sees what we would have woken it for.
    if w.sleepers.load(Ordering::Relaxed) != 0 {
        notify(w, more());
    }
}

/// Clears the spinner count: for a waiter that found a change waiting after a sleep that no
/// wake-up ended, i.e. a spinner died (SIGKILL) while registered and wakers still count on it.
/// Live spinners then merely look like none: wakers wake sleepers, as without spinners.
#[inline]
pub fn clear_spinners(w: &WaitWord) {
    // ORDERING: Relaxed: a hint (see `stop_spinning`).
    w.spinners.store(0, Ordering::Relaxed);
}

/// Bumps `seq` and wakes at most `n` sleepers; ends the announcements of those it woke.
///
/// A woken waiter stays announced until it runs, which on a machine with more runnable
/// processes than cores can take milliseconds: every waker meanwhile read `sleepers != 0` and
/// made a `FUTEX_WAKE` that woke nobody (8 → 8 on 2 cores: 1.08 calls per message, 2 % of them
/// waking anyone). So the waker takes the woken out of the count at once: the kernel reports
/// exactly the waiters whose `futex_wait` returns 0 (chosen), and a chosen waiter's [`retire`]
/// leaves the count alone. Each announcement is thus ended once, by its waiter or by the waker
/// that chose it; the count never drops below the waiters that can still be asleep, so a waker
/// that reads 0 leaves nobody asleep (no lost wake-up: `loom_wait`).
///
/// Wakes for waiters that cannot sleep: a waiter counted in `sleepers` that announced and has
/// not reached its `futex_wait` (preempted in that window) stays counted after a waker bumped
/// `seq`, and every waker after it called `FUTEX_WAKE` for nobody (8 → 8 on 2 cores: 444 k of
/// 478 k calls per 1M messages, on the producers' word). Such a waiter's ticket is older than
/// `seq`: its `futex_wait` returns at once. So a waker whose `FUTEX_WAKE` woke fewer than it
/// asked (the kernel's queue is empty) records the mark `(seq it bumped to, clears it read
/// before the bump)` in `quiet`; `clears` counts the tickets waiters read (`announce`). While
/// `seq` and `clears` still hold the mark's values, every counted waiter holds an older ticket
/// (or its re-check sees the change: the fences), nobody is in the kernel's queue, and a waker
/// skips its bump and its call. Each new ticket changes `clears` and ends the skipping. (A
/// false match needs `clears` to wrap around 2^32 announcements with no bump between; a sleep
/// lasts `IDLE_RECHECK` at most, so even that would delay a sleeper, not lose it.)
#[cold]
fn wake(w: &WaitWord, n: u32) {
    // ORDERING: Relaxed: every caller made a SeqCst fence after its ring store (`notify`,
    // `notify_room`, `after_take`); it pairs with the fence after a waiter's `clears` increment
    // in `announce` (either we read that increment, or that waiter's re-check sees our change).
    let s = w.seq.load(Ordering::Relaxed);
    // ORDERING: Relaxed: as above; read before our bump (the Release below orders it first).
    let k = w.clears.load(Ordering::Relaxed);
    // ORDERING: Relaxed: the mark is a value compared whole; a stale one names an older `seq`.
    if w.quiet.load(Ordering::Relaxed) == mark(s, k) {
        // Quiet: nobody can be asleep, and nobody can go to sleep without first reading a new
        // ticket (which changes `clears`, or whose re-check sees our change).
        return;
    }
    // ORDERING: Release: a waiter that reads the new seq (Acquire, in `announce`) also sees our
    // ring store, and its `clears` increment comes after our read of `clears` above.
    let c = w.seq.fetch_add(1, Ordering::Release).wrapping_add(1);
    let woken = futex::wake(&w.seq, n);
    if woken < n {
        // The kernel's queue is empty now; the waiters counted in `k` read a ticket older than
        // `c` and cannot sleep on it any more (their futex_wait returns at once).
        // ORDERING: Relaxed: see the load above.
        w.quiet.store(mark(c, k), Ordering::Relaxed);
    }
    if woken != 0 {
        // ORDERING: Relaxed, as `retire`'s decrement, which it stands in for: the woken
        // waiters were counted by their SeqCst increments, and a waker that reads the count
        // before this store makes one needless call, never misses a sleeper.
        w.sleepers.fetch_sub(woken, Ordering::Relaxed);
        // ORDERING: Relaxed: statistics only.
        w.woken.fetch_add(u64::from(woken), Ordering::Relaxed);
    }
}

/// The value of `WaitWord::quiet` for `seq` = `s` and `clears` = `k` (see [`wake`]).
#[inline]
fn mark(s: u32, k: u32) -> u64 {
    (u64::from(s) << 32) | u64::from(k)
}

/// The outcome of one attempt inside [`block_on`].
#[cfg(not(loom))]
pub enum Attempt<T> {
    /// The operation succeeded: it took what the wait was for.
    Done(T),
    /// The wait ends without taking anything (an error, a shutdown, a message that does not
    /// fit): a wake-up this waiter was chosen for is passed on.
    Leave(T),
    /// It could not proceed; the ring says where and why.
    Blocked(Blocked),
}

/// The longest a waiter spins before it sleeps. A futex wake-up costs tens of microseconds on
/// a loaded virtual machine, while a partner process that is running answers within a few;
/// 20 µs of spinning catches such a partner without a system call, and bounds what an idle
/// waiter burns each time it (re-)enters a wait: Python re-enters every wait slice, so a
/// consumer idle for 2 s in 100 ms slices spins at most 20 × 20 µs = 0.4 ms.
pub const SPIN_TIME: Duration = Duration::from_micros(20);

/// How many waiters may spin on one side at once: half the CPUs this process may run on, at
/// least one.
#[cfg(not(loom))]
pub fn max_spinners() -> u32 {
    static MAX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus / 2).clamp(1, u32::MAX as usize) as u32
    })
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

/// Runs `attempt` until it is done (or leaves) or `deadline` passes: first spinning (if fewer
/// than [`max_spinners`] spin on `w`), then sleeping on `w` between attempts. When an attempt is
/// blocked by a slot that another process holds, `on_stuck` is called (at most every
/// [`STUCK_CHECK`]) so the caller can check whether that process died and free the slot; it
/// returns true if it freed something. `more` tells how many changes of the kind waited for
/// are available now (0: none); a waiter that spun calls it on its way out ([`hand_on`]).
/// Returns `Err(blocker)` with the last blocker on timeout. A waiter chosen by a wake-up that
/// leaves without being done passes the wake-up on. When a signal ends a sleep (`EINTR`) and
/// the attempt after it is still blocked, `on_signal` says whether to leave now, and with what
/// (the way out is that of a timeout: nothing taken, wake-ups passed on); `None` sleeps on.
#[cfg(not(loom))]
pub fn block_on<T>(
    w: &WaitWord,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Attempt<T>,
    mut more: impl FnMut() -> u32,
    mut progress: impl FnMut() -> Option<u64>,
    mut on_stuck: impl FnMut(Blocked) -> bool,
    mut on_signal: impl FnMut() -> Option<T>,
) -> Result<T, Blocked> {
    let start = Instant::now();
    let mut last = None;
    // Set once this call stopped spinning and until it looks at the ring again: wakers may have
    // counted on it as a spinner, so a way out before that look hands on what is available.
    let mut owe = false;
    if start_spinning(w, max_spinners()) {
        let spin_until = deadline.map_or(start + SPIN_TIME, |d| d.min(start + SPIN_TIME));
        let mut spins = 0u32;
        loop {
            match attempt() {
                Attempt::Done(v) | Attempt::Leave(v) => {
                    stop_spinning(w);
                    hand_on(w, &mut more);
                    return Ok(v);
                }
                Attempt::Blocked(b) => {
                    spins += 1;
                    if spins % 8 == 0 && Instant::now() >= spin_until {
                        last = Some(b);
                        break;
                    }
                }
            }
            for _ in 0..4 {
                crate::sync::spin_hint();
            }
        }
        stop_spinning(w);
        owe = true;
    }
    let mut last = match last {
        Some(b) => b,
        None => match attempt() {
            Attempt::Done(v) | Attempt::Leave(v) => return Ok(v),
            Attempt::Blocked(b) => b,
        },
    };
    // Whether the last sleep ended with a wake-up meant for this waiter that it has not yet
    // used (taken what it was woken for, or found that someone else took it).
    let mut chosen = false;
    // Whether the last sleep ran its full time with no wake-up: a change found waiting after
    // it was never signalled (see `clear_spinners`).
    let mut napped = false;
    let mut next_check = Instant::now() + STUCK_CHECK;
    // Fairness: where the others of this side were when this waiter started sleeping (None:
    // not tracked for this wait), and whether it has found itself starving since.
    let mut seen = progress();
    let mut starved = false;
    let starve_at = start + STARVE_AFTER;
    // The way out of a wait that is not done: pass on a wake-up this waiter was chosen for,
    // hand on what a spinner may have been counted on for.
    let leave = |chosen: bool, owe: bool, more: &mut dyn FnMut() -> u32| {
        if chosen {
            notify(w, 1);
        }
        if owe {
            hand_on(w, more);
        }
    };
    // An attempt that ended the wait: the value to return, after the way out it owes.
    let settle =
        |outcome: Attempt<T>, chosen: bool, owe: bool, more: &mut dyn FnMut() -> u32| match outcome
        {
            Attempt::Done(v) => {
                leave(false, owe, more);
                Ok(v)
            }
            Attempt::Leave(v) => {
                leave(chosen, owe, more);
                Ok(v)
            }
            Attempt::Blocked(b) => Err(b),
        };
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            // A last look: a change whose wake-up was deferred (`notify_room`) still counts.
            match settle(attempt(), chosen, owe, &mut more) {
                Ok(v) => return Ok(v),
                Err(b) => last = b,
            }
            leave(chosen, owe, &mut more);
            if !owe && napped && more() != 0 {
                clear_spinners(w);
            }
            return Err(last);
        }
        if last.held() && now >= next_check {
            next_check = now + STUCK_CHECK;
            if on_stuck(last) {
                match settle(attempt(), chosen, owe, &mut more) {
                    Ok(v) => return Ok(v),
                    Err(b) => {
                        last = b;
                        owe = false;
                    }
                }
                continue;
            }
        }
        if seen.is_some() && now >= starve_at {
            // Blocked a while: if others of this side got through meanwhile, this waiter is
            // starving (awake callers keep taking what it waits for): say so, and renew it.
            let at = progress();
            if at != seen {
                starved = true;
                seen = at;
                mark_starving(w);
            }
        }
        let mut ticket = announce(w);
        let outcome = attempt();
        if let Attempt::Blocked(b) = outcome {
            last = b;
            owe = false;
            let now = Instant::now();
            let mut bound = if last.held() {
                next_check.saturating_duration_since(now)
            } else {
                IDLE_RECHECK
            };
            if seen.is_some() {
                // Look at the others' progress when STARVE_AFTER has passed, and while
                // starving, often enough to keep the mark fresh.
                bound = bound.min(if now < starve_at {
                    starve_at - now
                } else if starved {
                    STARVE_RENEW
                } else {
                    bound
                });
            }
            let nap = deadline.map_or(bound, |d| d.saturating_duration_since(now).min(bound));
            // A waiter woken before and beaten to it now has nothing of its own to pass on.
            let (woken, signal) = sleep_why(w, &mut ticket, Some(nap));
            chosen = woken;
            napped = !chosen && !signal && now.elapsed() >= nap;
            retire(w, ticket);
            if signal {
                // A signal handler ran: leave without another look if the caller wants to act
                // on it (nothing taken; a sleeper ended by a signal was not chosen by a
                // wake-up, so it has none to pass on).
                if let Some(v) = on_signal() {
                    leave(chosen, owe, &mut more);
                    return Ok(v);
                }
            }
            continue;
        } else if napped {
            clear_spinners(w);
        }
        retire(w, ticket);
        if let Ok(v) = settle(outcome, chosen, owe, &mut more) {
            return Ok(v);
        }
    }
}

/// Sleeps on `w` until `ready()` returns true or `deadline` passes (then returns false). The
/// same announce / re-check / sleep protocol as [`block_on`], without the spinning: used for
/// rare waits such as `join`, whose wakers call [`notify_all`] after changing what `ready`
/// reads. `idle` runs every [`IDLE_RECHECK`] of sleep (join uses it to recover slots of dead
/// processes, whose messages would otherwise stay unfinished).
#[cfg(not(loom))]
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
        let mut ticket = announce(w);
        let asleep = !ready();
        if asleep {
            let bound = deadline.map_or(IDLE_RECHECK, |d| {
                d.saturating_duration_since(now).min(IDLE_RECHECK)
            });
            let _ = sleep(w, &mut ticket, Some(bound));
        }
        retire(w, ticket);
        if asleep {
            idle();
        }
    }
}
