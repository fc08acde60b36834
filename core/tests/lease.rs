//! Acknowledged delivery (`Queue::create_redeliver`): leases, acknowledgement, redelivery after a
//! close or a death, the lease bound, and `join`. One binary, since two tests fork.
#![cfg(not(loom))]

use fastqueue::{Queue, Status};
use std::time::Duration;

const NOW: Option<Duration> = Some(Duration::ZERO);
const SOON: Option<Duration> = Some(Duration::from_secs(5));
const REDELIVERED: usize = 18;
const LEASED: usize = 19;
const ABANDONED: usize = 20;
const TASKS_DONE: usize = 9;
const UNFINISHED: usize = 10;

struct Name(String);
impl Drop for Name {
    fn drop(&mut self) {
        let _ = Queue::unlink(&self.0);
    }
}

fn name(tag: &str) -> Name {
    Name(format!("fq-rtest-lease-{tag}-{}", std::process::id()))
}

fn get(q: &Queue, t: Option<Duration>) -> Result<Vec<u8>, Status> {
    let mut buf = vec![0u8; q.max_msg() as usize];
    let n = q.get(&mut buf, t)?;
    buf.truncate(n);
    Ok(buf)
}

fn fork_and_die(f: impl FnOnce()) {
    // SAFETY: the child only calls our library and leaves with _exit, skipping every
    // destructor, as SIGKILL would.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        f();
        // SAFETY: ends the child at once: no Drop runs, the liveness lock goes with the fd.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status));
}

#[test]
fn a_closed_handles_leases_come_back_first_and_in_order() {
    let n = name("close");
    let q = Queue::create_redeliver(&n.0, 16, 4, 0o600, 0).unwrap();
    assert!(q.redeliver());
    assert_eq!(q.lease_count(), 4);
    let other = Queue::open(&n.0).unwrap();
    assert!(other.redeliver(), "the option is stored in the segment");
    for m in [b"a", b"b", b"c", b"d"] {
        q.put(m, NOW).unwrap();
    }
    assert_eq!(get(&other, NOW).unwrap(), b"a");
    assert_eq!(get(&other, NOW).unwrap(), b"b");
    // Leases take no ring slot: producers have the whole capacity again.
    q.put(b"e", NOW).unwrap();
    q.put(b"f", NOW).unwrap();
    assert_eq!(q.stats()[LEASED], 2);
    other.task_done(1).unwrap(); // acknowledges "a", the handle's oldest lease
    drop(other); // "b" goes back
    assert_eq!(get(&q, NOW).unwrap(), b"b", "redelivered before new ones");
    assert_eq!(q.stats()[REDELIVERED], 1);
    assert_eq!(get(&q, NOW).unwrap(), b"c");
    q.task_done(2).unwrap();
    assert_eq!(
        q.task_done(1),
        Err(Status::Invalid),
        "no lease left to acknowledge"
    );
    assert_eq!(q.stats()[TASKS_DONE], 3);
    assert_eq!(q.stats()[UNFINISHED], 3);
    for m in [b"d", b"e", b"f"] {
        assert_eq!(get(&q, NOW).unwrap(), m);
    }
    assert_eq!(q.join(NOW), Err(Status::Timeout));
    q.task_done(3).unwrap();
    q.join(NOW).unwrap();
    assert_eq!(q.stats()[ABANDONED], 0);
}

#[test]
fn gets_beyond_the_lease_bound_wait_for_an_acknowledgement() {
    let n = name("bound");
    let q = Queue::create_redeliver(&n.0, 8, 4, 0o600, 2).unwrap();
    for m in [b"1", b"2", b"3"] {
        q.put(m, NOW).unwrap();
    }
    get(&q, NOW).unwrap();
    get(&q, NOW).unwrap();
    assert_eq!(get(&q, Some(Duration::from_millis(50))), Err(Status::Empty));
    q.task_done(1).unwrap();
    assert_eq!(get(&q, NOW).unwrap(), b"3");
}

#[test]
fn zero_copy_reads_and_batches_lease_too() {
    let n = name("batch");
    let q = Queue::create_redeliver(&n.0, 8, 8, 0o600, 0).unwrap();
    for i in 0..5u8 {
        q.put(&[i], NOW).unwrap();
    }
    let mut needed = 0;
    let c = q.claim_read(u64::MAX, NOW, &mut needed).unwrap();
    // SAFETY: the payload of a held lease is valid for its length until task_done.
    let first = unsafe { *q.payload(c.pos) };
    assert_eq!(first, 0);
    q.release_read(c.pos).unwrap();
    let mut buf = [0u8; 64];
    let mut lens = [0u64; 8];
    let mut count = 0;
    q.get_many(&mut buf, &mut lens, NOW, &mut count).unwrap();
    assert_eq!(count, 4);
    assert_eq!(&buf[..4], &[1, 2, 3, 4]);
    assert_eq!(q.leased(), 5);
    assert_eq!(q.stats()[LEASED], 5);
    q.task_done(5).unwrap();
    q.join(NOW).unwrap();
}

#[test]
fn large_messages_in_the_pooled_layout_are_leased_and_redelivered() {
    let n = name("pool");
    let q = Queue::create_redeliver(&n.0, 1 << 20, 2, 0o600, 0).unwrap();
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    q.put(&big, NOW).unwrap();
    q.put(&big[..10], NOW).unwrap();
    let other = Queue::open(&n.0).unwrap();
    assert_eq!(get(&other, NOW).unwrap(), big);
    drop(other);
    assert_eq!(get(&q, NOW).unwrap(), big);
    assert_eq!(get(&q, NOW).unwrap(), &big[..10]);
}

/// The pooled layout hands each message's buffer over to its lease instead of copying it:
/// through many laps with every buffer of the pool holding a message (a full ring and every
/// lease held), leases given back by a closing handle and by a dead one and delivered again,
/// every message keeps its own bytes (two owners of one buffer would overwrite one of them) and
/// the buffer indices of the slots and entries stay a permutation of the pool.
#[test]
fn pooled_leases_hand_buffers_over_and_keep_them_a_permutation() {
    let n = name("handover");
    let size = 64 * 1024;
    let q = Queue::create_redeliver(&n.0, size as u64, 3, 0o600, 2).unwrap();
    assert_eq!(q.pool_is_a_permutation(), Some(true));
    let msg = |k: u32| -> Vec<u8> {
        let len = if k % 3 == 0 { size } else { 1000 + k as usize };
        (0..len)
            .map(|i| (i as u32 ^ k.wrapping_mul(2_654_435_761)) as u8)
            .collect()
    };
    let mut next = 0u32;
    let mut put = |q: &Queue| {
        q.put(&msg(next), NOW).unwrap();
        next += 1;
        next - 1
    };
    for lap in 0..12 {
        let ring: Vec<u32> = (0..3).map(|_| put(&q)).collect();
        let other = Queue::open(&n.0).unwrap();
        assert_eq!(get(&other, NOW).unwrap(), msg(ring[0]));
        assert_eq!(get(&other, NOW).unwrap(), msg(ring[1]));
        // Every buffer of the pool now holds a message: 2 leased, 3 in the ring.
        let more = [put(&q), put(&q)];
        assert_eq!(q.pool_is_a_permutation(), Some(true), "lap {lap}");
        let dead = lap % 2 == 1;
        if dead {
            let nm = n.0.clone();
            // A getter that dies holding a third lease (the bound is 2: it waits for one).
            fork_and_die(move || {
                let c = Queue::open(&nm).unwrap();
                assert_eq!(get(&c, NOW), Err(Status::Empty), "no free lease");
            });
        }
        drop(other); // both leases come back, and are delivered first, oldest first
        for k in [ring[0], ring[1], ring[2], more[0], more[1]] {
            assert_eq!(get(&q, NOW).unwrap(), msg(k), "lap {lap}, message {k}");
            q.task_done(1).unwrap();
        }
        assert_eq!(get(&q, NOW), Err(Status::Empty));
        assert_eq!(q.pool_is_a_permutation(), Some(true), "lap {lap}");
    }
    // A getter that dies holding its lease: the message comes back, in its own bytes.
    let k = put(&q);
    let nm = n.0.clone();
    fork_and_die(move || {
        let c = Queue::open(&nm).unwrap();
        get(&c, NOW).unwrap();
    });
    let k2 = put(&q);
    assert_eq!(get(&q, SOON).unwrap(), msg(k), "redelivered");
    assert_eq!(get(&q, NOW).unwrap(), msg(k2));
    q.task_done(2).unwrap();
    q.join(NOW).unwrap();
    assert_eq!(q.pool_is_a_permutation(), Some(true));
    assert_eq!(q.stats()[REDELIVERED], 12 * 2 + 1);
    assert_eq!(q.stats()[8], 0, "nothing lost");
}

#[test]
fn a_dead_getters_leases_are_delivered_again() {
    let n = name("dead");
    let q = Queue::create_redeliver(&n.0, 16, 4, 0o600, 0).unwrap();
    for m in [b"x", b"y", b"z"] {
        q.put(m, NOW).unwrap();
    }
    let nm = n.0.clone();
    fork_and_die(move || {
        let c = Queue::open(&nm).unwrap();
        assert_eq!(get(&c, NOW).unwrap(), b"x");
        assert_eq!(get(&c, NOW).unwrap(), b"y");
        c.task_done(1).unwrap(); // "x" is done; "y" dies with its lease
    });
    // A waiting get notices the dead holder and takes "y" back, before "z".
    assert_eq!(get(&q, SOON).unwrap(), b"y");
    assert_eq!(get(&q, NOW).unwrap(), b"z");
    assert_eq!(get(&q, NOW), Err(Status::Empty));
    assert_eq!(q.stats()[REDELIVERED], 1);
    q.task_done(2).unwrap();
    q.join(NOW).unwrap();
    assert_eq!(q.stats()[8], 0, "nothing lost");
}

#[test]
fn a_dead_getter_mid_read_loses_nothing_and_join_waits_for_it() {
    // The child dies holding the ring's read claim (between the claim and the lease), as the
    // zero-copy claim of a plain queue would: with redeliver the message comes back.
    let n = name("mid");
    let q = Queue::create_redeliver(&n.0, 16, 2, 0o600, 0).unwrap();
    q.put(b"m", NOW).unwrap();
    let nm = n.0.clone();
    fork_and_die(move || {
        let c = Queue::open(&nm).unwrap();
        c.claim_read(u64::MAX, NOW, &mut 0).unwrap();
    });
    assert_eq!(
        q.join(Some(Duration::from_millis(300))),
        Err(Status::Timeout)
    );
    assert_eq!(get(&q, SOON).unwrap(), b"m");
    q.task_done(1).unwrap();
    q.join(NOW).unwrap();
}

#[test]
fn without_redeliver_a_dead_getters_messages_count_as_done() {
    let n = name("plain");
    let q = Queue::create(&n.0, 16, 64, 0o600).unwrap();
    assert!(!q.redeliver());
    q.track_tasks(); // as a joinable queue does when it attaches (or the first join/task_done)
    let msgs: Vec<u8> = (0..41).collect();
    for m in &msgs {
        q.put(&[*m], NOW).unwrap();
    }
    let nm = n.0.clone();
    fork_and_die(move || {
        let c = Queue::open(&nm).unwrap();
        let mut buf = [0u8; 64];
        let mut lens = [0u64; 40];
        let mut count = 0;
        c.get_many(&mut buf, &mut lens, NOW, &mut count).unwrap();
        assert_eq!(count, 40);
    });
    assert_eq!(get(&q, NOW).unwrap(), &[40]);
    q.task_done(1).unwrap();
    q.join(SOON).unwrap();
    assert_eq!(q.stats()[ABANDONED], 40);
    assert_eq!(q.stats()[UNFINISHED], 0);
}

#[test]
fn attaching_reads_the_option_and_bad_options_are_refused() {
    let n = name("opts");
    let c = std::ffi::CString::new(n.0.clone()).unwrap();
    assert_eq!(
        Queue::create_ex(&c, 8, 2, 0o600, 2, 0).err(),
        Some(Status::Invalid)
    );
    assert_eq!(
        Queue::create_ex(&c, 8, 2, 0o600, 0, 3).err(),
        Some(Status::Invalid)
    );
    let q = Queue::create_ex(&c, 8, 2, 0o600, 1, 5).unwrap();
    assert_eq!(q.lease_count(), 5);
}

/// What a lease table reserves: inline, an entry holds the payload; pooled (large messages),
/// an entry is a 64-byte header and buffer index, and the pool holds one more buffer per
/// entry: `128 + leases × (64 + buf_stride)` bytes more than a plain queue (up to the
/// alignment of the table), about what the inline table costs, with no copy.
#[test]
fn the_lease_table_reserves_what_the_docs_say() {
    use fastqueue::layout::Geometry;
    let (small, big) = (
        Geometry::new(100, 8).unwrap(),
        Geometry::new(1 << 20, 8).unwrap(),
    );
    let s = Geometry::with_leases(100, 8, 5).unwrap();
    assert_eq!(s.lease_stride, 192); // round_up(32 + 100, 64)
    assert_eq!(s.pool_buffers(), 0);
    assert_eq!(s.total_size - small.total_size, 128 + 5 * 192);
    let b = Geometry::with_leases(1 << 20, 8, 5).unwrap();
    assert_eq!((b.lease_stride, b.pool_buffers()), (64, 13));
    assert_eq!(b.pool_offset, big.pool_offset);
    let extra = b.total_size - big.total_size;
    assert!(
        (128 + 5 * (64 + (1 << 20))..=128 + 5 * (64 + (1 << 20)) + 128).contains(&extra),
        "{extra}"
    );
}
