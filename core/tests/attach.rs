//! Attaching costs O(1) liveness-lock system calls on average, not one per participant already
//! attached (a binary of its own: the count is per process, and no other test may attach
//! meanwhile).
#![cfg(not(loom))]

use fastqueue::{shm, Queue};

#[test]
fn attaching_probes_a_few_locks_not_one_per_participant() {
    let name = format!("fq-rtest-attach-{}", std::process::id());
    struct Unlink<'a>(&'a str);
    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            let _ = Queue::unlink(self.0);
        }
    }
    let _unlink = Unlink(&name);
    let first = Queue::create(&name, 8, 4, 0o600).unwrap();
    // 600 handles (file descriptors stay below the usual limit of 1024).
    let mut handles = vec![first];
    for _ in 0..599 {
        handles.push(Queue::open(&name).unwrap());
    }
    let mut worst = 0;
    for _ in 0..20 {
        let before = shm::lock_calls();
        handles.push(Queue::open(&name).unwrap());
        worst = worst.max(shm::lock_calls() - before);
    }
    assert!(
        worst <= 4,
        "an attach made {worst} lock calls with 600+ participants attached"
    );
    // Entries of closed handles are found again (the table does not leak).
    handles.truncate(10);
    for _ in 0..1000 {
        handles.push(Queue::open(&name).unwrap());
        handles.pop();
    }
}
