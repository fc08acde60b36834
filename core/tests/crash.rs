//! A process that dies inside a put or a get does not wedge the queue: a waiter finds the slot's
//! owner dead (its liveness lock is gone) and moves the slot forward. One test per binary file,
//! because it forks.
#![cfg(not(loom))]

use fastqueue::{Queue, Status};
use std::time::Duration;

fn fork_and_die(f: impl FnOnce()) {
    // SAFETY: the child only calls our library (no locks held across the fork by this
    // single-test binary's main thread) and leaves with _exit, skipping every destructor.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        f();
        // SAFETY: ends the child at once, like SIGKILL would: no Drop runs.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
}

#[test]
fn dead_writer_and_dead_reader_are_recovered_by_waiters() {
    let name = format!("fq-rtest-crash-{}", std::process::id());
    let q = Queue::create(&name, 16, 2, 0o600).unwrap();
    let n = name.clone();
    // The child claims a slot and dies before publishing it.
    fork_and_die(move || {
        let c = Queue::open(&n).unwrap();
        c.claim_write(Some(Duration::ZERO)).unwrap();
    });
    q.put(b"survivor", Some(Duration::ZERO)).unwrap();
    let mut buf = [0u8; 16];
    // The get waits on the dead writer's slot, finds it dead, skips it, and gets the survivor.
    let k = q.get(&mut buf, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(&buf[..k], b"survivor");
    // The child takes a message and dies while reading it; the queue is full behind it.
    q.put(b"a", None).unwrap();
    let n = name.clone();
    fork_and_die(move || {
        let c = Queue::open(&n).unwrap();
        let mut needed = 0;
        c.claim_read(u64::MAX, Some(Duration::ZERO), &mut needed)
            .unwrap();
    });
    q.put(b"b", None).unwrap();
    q.put(b"c", Some(Duration::from_secs(5))).unwrap();
    let k = q.get(&mut buf, Some(Duration::ZERO)).unwrap();
    assert_eq!(&buf[..k], b"b");
    let k = q.get(&mut buf, Some(Duration::ZERO)).unwrap();
    assert_eq!(&buf[..k], b"c");
    assert_eq!(q.get(&mut buf, Some(Duration::ZERO)), Err(Status::Empty));
    assert_eq!(q.stats()[4], 2, "two recoveries counted");

    // A producer asleep on a full queue with no deadline: a consumer claims the message it waits
    // behind and dies. No wake-up ever comes for that; the sleeper's idle re-check finds the
    // dead claim and recovers it.
    let q1 = Queue::create(&format!("{name}-1"), 16, 1, 0o600).unwrap();
    q1.put(b"held", None).unwrap();
    let n = format!("{name}-1");
    // SAFETY: as in fork_and_die.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        std::thread::sleep(Duration::from_millis(200));
        let c = Queue::open(&n).unwrap();
        let mut needed = 0;
        c.claim_read(u64::MAX, None, &mut needed).unwrap();
        // SAFETY: ends the child at once, like SIGKILL would.
        unsafe { libc::_exit(0) };
    }
    q1.put(b"next", None).unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let k = q1.get(&mut buf, Some(Duration::ZERO)).unwrap();
    assert_eq!(&buf[..k], b"next");
    assert_eq!(q1.stats()[8], 1, "the held message is counted as lost");
    Queue::unlink(&name).unwrap();
    Queue::unlink(&format!("{name}-1")).unwrap();

    // The pooled layout (large messages): the child's write claim swapped buffers before it
    // died; a waiting get takes the claim over (RECLAIMING), finishes nothing (the swap was
    // complete), abandons it, and the buffers still give every message its own memory.
    let big = 64 * 1024;
    let n = format!("{name}-2");
    let q2 = Queue::create(&n, big, 3, 0o600).unwrap();
    let mut buf = vec![0u8; big as usize];
    q2.put(&[1; 1000], None).unwrap();
    q2.get(&mut buf, None).unwrap();
    let n2 = n.clone();
    fork_and_die(move || {
        let c = Queue::open(&n2).unwrap();
        c.claim_write(Some(Duration::ZERO)).unwrap();
    });
    q2.put(&[2; 65536], None).unwrap();
    q2.put(&[3; 500], None).unwrap();
    let k = q2.get(&mut buf, Some(Duration::from_secs(5))).unwrap();
    assert!(k == 65536 && buf[..k].iter().all(|&b| b == 2));
    q2.put(&[4; 65536], Some(Duration::from_secs(5))).unwrap();
    for (v, len) in [(3u8, 500), (4, 65536)] {
        let k = q2.get(&mut buf, Some(Duration::ZERO)).unwrap();
        assert!(k == len && buf[..k].iter().all(|&b| b == v), "message {v}");
    }
    assert_eq!(q2.stats()[4], 1, "one recovery counted");
    Queue::unlink(&n).unwrap();
}
