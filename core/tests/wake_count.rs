//! The count of sleepers with a real futex (`wait.rs`): a waker takes the waiter it woke out of
//! `sleepers` itself, before that waiter runs again, so that wakers after it make no system call
//! for a waiter that is already woken (`wait::wake`); a waiter that no wake-up chose ends its
//! announcement itself. The loom models (`loom_wait.rs`) check that no wake-up is lost this way.
#![cfg(not(loom))]

use fastqueue::layout::WaitWord;
use fastqueue::sync::{AtomicU64, Ordering};
use fastqueue::wait::{announce, notify, retire, sleep};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether thread `tid` of this process is blocked in the futex system call now.
fn in_futex(tid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .is_ok_and(|s| s.split_whitespace().next() == Some(&libc::SYS_futex.to_string()))
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_waker_takes_the_waiter_it_woke_out_of_the_count() {
    let w = Arc::new(WaitWord::default());
    // Held while the waker looks at the count: the woken waiter cannot retire before that.
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let tid = Arc::new(AtomicU64::new(0));
    let sleeper = {
        let (w, gate, tid) = (w.clone(), gate.clone(), tid.clone());
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid.store(unsafe { libc::gettid() } as u64, Ordering::Relaxed);
            let mut t = announce(&w);
            let chosen = sleep(&w, &mut t, Some(Duration::from_secs(60)));
            let _g = gate.lock().unwrap();
            retire(&w, t);
            chosen
        })
    };
    until("the sleeper asleep in the kernel", || {
        let t = tid.load(Ordering::Relaxed);
        t != 0 && w.sleepers.load(Ordering::Relaxed) == 1 && in_futex(t as i64)
    });
    notify(&w, 1);
    // The sleeper was woken and has not retired (the gate): its waker ended its announcement.
    assert_eq!(w.sleepers.load(Ordering::Relaxed), 0);
    assert_eq!(w.woken.load(Ordering::Relaxed), 1);
    drop(held);
    assert!(
        sleeper.join().unwrap(),
        "the sleeper was chosen by the wake-up"
    );
    // Its own retire left the count alone.
    assert_eq!(w.sleepers.load(Ordering::Relaxed), 0);
}

#[test]
fn a_waiter_no_wake_up_chose_ends_its_announcement_itself() {
    let w = WaitWord::default();
    let mut t = announce(&w);
    assert_eq!(w.sleepers.load(Ordering::Relaxed), 1);
    // Its sleep ends by its timeout: nobody chose it.
    assert!(!sleep(&w, &mut t, Some(Duration::from_millis(5))));
    retire(&w, t);
    assert_eq!(w.sleepers.load(Ordering::Relaxed), 0);
    // A waker then sees nobody and makes no call.
    notify(&w, 1);
    assert_eq!(w.woken.load(Ordering::Relaxed), 0);
    assert_eq!(w.seq.load(Ordering::Relaxed), 0);
}

/// A waker whose `FUTEX_WAKE` woke nobody leaves a mark (`seq`, `clears`): a waiter announced
/// before that bump cannot sleep on the value it read, so the next waker makes no call and
/// leaves `seq` alone, until a waiter reads a new ticket.
#[test]
fn a_waker_skips_the_call_for_a_waiter_that_cannot_sleep() {
    let w = WaitWord::default();
    // Announced, and not asleep yet (as a producer preempted before its futex_wait).
    let mut t = announce(&w);
    notify(&w, 1);
    assert_eq!(
        w.seq.load(Ordering::Relaxed),
        1,
        "the first waker bumps seq"
    );
    assert_eq!(w.woken.load(Ordering::Relaxed), 0);
    notify(&w, 1);
    assert_eq!(
        w.seq.load(Ordering::Relaxed),
        1,
        "the second waker skipped its call: the announced waiter read seq before the bump"
    );
    // The stale waiter's sleep returns at once (seq moved): it re-checks.
    assert!(!sleep(&w, &mut t, Some(Duration::from_secs(60))));
    retire(&w, t);
    // A new announcement reads the new seq and may sleep on it: wakers call again.
    let t = announce(&w);
    notify(&w, 1);
    assert_eq!(
        w.seq.load(Ordering::Relaxed),
        2,
        "a waker after a new ticket calls"
    );
    retire(&w, t);
    assert_eq!(w.sleepers.load(Ordering::Relaxed), 0);
}
