//! The ring on heap memory: capacities 1, 2, 3 and 1000, FIFO, full/empty, wrap-around, zero-length
//! messages, abandoned and recovered slots, and multi-threaded MPMC with exactly-once and
//! per-producer-order checks.
#![cfg(not(loom))]

use fastqueue::layout::Geometry;
use fastqueue::ring::{unpack, GetError, PutError, Ring, READING, WRITING};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Heap memory laid out like a segment's counters and slots.
struct Mem {
    tail: AtomicU64,
    head: AtomicU64,
    slots: Vec<u64>,
    stride: usize,
    capacity: u64,
    max_msg: u64,
}

impl Mem {
    fn new(max_msg: u64, capacity: u64) -> Arc<Mem> {
        let g = Geometry::new(max_msg, capacity).unwrap();
        let words = (g.slot_stride * capacity / 8) as usize;
        Arc::new(Mem {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            slots: vec![0; words],
            stride: g.slot_stride as usize,
            capacity,
            max_msg,
        })
    }

    fn ring(&self) -> Ring<'_> {
        // SAFETY: `slots` holds capacity slots of `stride` bytes, 8-aligned, zeroed (EMPTY of
        // lap 0); all access goes through the ring. The Vec is only written through the ring's
        // raw pointer, never through a Rust reference.
        unsafe {
            Ring::new(
                &self.tail,
                &self.head,
                self.slots.as_ptr() as *mut u8,
                self.stride,
                self.capacity,
                self.max_msg,
            )
        }
    }
}

fn put(r: &Ring<'_>, me: u32, data: &[u8]) -> bool {
    match r.try_put(me, data) {
        Ok(()) => true,
        Err(PutError::Full(_)) => false,
        Err(PutError::Corrupt) => panic!("corrupt"),
    }
}

fn get(r: &Ring<'_>, me: u32) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; r.max_msg() as usize];
    let mut freed = 0;
    match r.try_get(me, &mut buf, &mut freed) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(GetError::Empty(_)) => None,
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn fill_drain_and_wrap_at_small_and_large_capacities() {
    for cap in [1u64, 2, 3, 1000] {
        let m = Mem::new(16, cap);
        let r = m.ring();
        for round in 0..5u64 {
            for i in 0..cap {
                let v = (round * 10_000 + i).to_le_bytes();
                assert!(put(&r, 1, &v[..(i % 9) as usize]), "cap {cap} put {i}");
            }
            assert_eq!(r.len(), cap);
            assert!(!put(&r, 1, b"x"), "cap {cap}: full ring accepted a put");
            for i in 0..cap {
                let v = (round * 10_000 + i).to_le_bytes();
                assert_eq!(get(&r, 2).unwrap(), &v[..(i % 9) as usize]);
            }
            assert_eq!(get(&r, 2), None);
            assert_eq!(r.len(), 0);
        }
    }
}

#[test]
fn interleaved_put_get_keeps_fifo_over_many_laps() {
    for cap in [1u64, 2, 3, 7, 1000] {
        let m = Mem::new(8, cap);
        let r = m.ring();
        let (mut next_put, mut next_get) = (0u64, 0u64);
        for step in 0..10_000u64 {
            if step % 3 != 2 && put(&r, 1, &next_put.to_le_bytes()) {
                next_put += 1;
            }
            if step % 2 == 0 {
                if let Some(v) = get(&r, 2) {
                    assert_eq!(v, next_get.to_le_bytes());
                    next_get += 1;
                }
            }
        }
        while let Some(v) = get(&r, 2) {
            assert_eq!(v, next_get.to_le_bytes());
            next_get += 1;
        }
        assert_eq!(next_get, next_put);
        assert!(next_put > 1000);
    }
}

#[test]
fn message_of_max_size_and_zero_length() {
    let m = Mem::new(100, 2);
    let r = m.ring();
    let big: Vec<u8> = (0..100u8).collect();
    assert!(put(&r, 1, &big));
    assert!(put(&r, 1, b""));
    assert_eq!(get(&r, 2).unwrap(), big);
    assert_eq!(get(&r, 2).unwrap(), b"");
}

#[test]
fn small_buffer_leaves_the_message_queued() {
    let m = Mem::new(32, 2);
    let r = m.ring();
    assert!(put(&r, 1, b"twelve bytes"));
    let mut small = [0u8; 4];
    let mut freed = 0;
    assert_eq!(
        r.try_get(2, &mut small, &mut freed),
        Err(GetError::Buffer(12))
    );
    assert_eq!(get(&r, 2).unwrap(), b"twelve bytes");
}

#[test]
fn abandoned_write_is_skipped_and_frees_its_slot() {
    let m = Mem::new(8, 2);
    let r = m.ring();
    let pos = r.try_claim_write(3).unwrap();
    assert!(put(&r, 1, b"after"));
    // The claimed-but-unpublished slot blocks consumers (no overtaking).
    assert_eq!(get(&r, 2), None);
    assert!(
        !r.abandon(pos, 4),
        "another owner must not abandon our claim"
    );
    assert!(r.abandon(pos, 3));
    assert_eq!(get(&r, 2).unwrap(), b"after");
    assert_eq!(get(&r, 2), None);
    // Both slots are free again.
    assert!(put(&r, 1, b"a") && put(&r, 1, b"b"));
}

#[test]
fn dead_writer_and_dead_reader_are_recovered() {
    let m = Mem::new(8, 2);
    let r = m.ring();
    // Writer 7 dies inside its put.
    let pos = r.try_claim_write(7).unwrap();
    assert!(put(&r, 1, b"two"));
    let mut freed = 0;
    let Err(GetError::Empty(b)) = r.try_claim_read(2, 8, &mut freed) else {
        panic!("expected empty")
    };
    assert_eq!(
        (b.pos, unpack(b.state).1, b.owner()),
        (pos, WRITING, Some(7))
    );
    assert!(
        !r.recover(b.pos, b.state, |_| false),
        "a live owner keeps its slot"
    );
    assert!(r.recover(b.pos, b.state, |k| k == 7));
    assert_eq!(get(&r, 2).unwrap(), b"two");
    // Reader 9 dies inside its get: the ring is full behind its slot until recovery.
    assert!(put(&r, 1, b"x") && put(&r, 1, b"y"));
    let c = r.try_claim_read(9, 8, &mut freed).unwrap();
    assert_eq!(get(&r, 2).unwrap(), b"y");
    let Err(PutError::Full(b)) = r.try_claim_write(1) else {
        panic!("expected full")
    };
    assert_eq!(
        (b.pos % 2, unpack(b.state).1, b.owner()),
        (c.pos % 2, READING, Some(9))
    );
    assert!(r.recover(b.pos, b.state, |k| k == 9));
    assert!(put(&r, 1, b"z") && put(&r, 1, b"w"));
    assert_eq!(get(&r, 2).unwrap(), b"z");
    assert_eq!(get(&r, 2).unwrap(), b"w");
    assert_eq!(r.recover_all(9), (0, 0));
}

fn mpmc(cap: u64, producers: u32, consumers: u32, per_producer: u64) {
    let m = Mem::new(16, cap);
    let done = Arc::new(AtomicU64::new(0));
    let total = u64::from(producers) * per_producer;
    std::thread::scope(|s| {
        for p in 0..producers {
            let m = &m;
            s.spawn(move || {
                let r = m.ring();
                for seq in 0..per_producer {
                    let mut msg = [0u8; 16];
                    msg[..4].copy_from_slice(&p.to_le_bytes());
                    msg[4..12].copy_from_slice(&seq.to_le_bytes());
                    let len = 12 + (seq % 5) as usize;
                    while !put(&r, p + 1, &msg[..len]) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        let mut handles = Vec::new();
        for c in 0..consumers {
            let (m, done) = (&m, &done);
            handles.push(s.spawn(move || {
                let r = m.ring();
                let mut seen: Vec<Vec<u64>> = vec![Vec::new(); producers as usize];
                while done.load(std::sync::atomic::Ordering::Relaxed) < total {
                    match get(&r, 100 + c) {
                        Some(v) => {
                            let p = u32::from_le_bytes(v[..4].try_into().unwrap());
                            let seq = u64::from_le_bytes(v[4..12].try_into().unwrap());
                            assert_eq!(v.len(), 12 + (seq % 5) as usize, "torn length");
                            assert!(v[12..].iter().all(|&b| b == 0), "torn payload");
                            seen[p as usize].push(seq);
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        None => std::thread::yield_now(),
                    }
                }
                seen
            }));
        }
        let mut all: Vec<Vec<u64>> = vec![Vec::new(); producers as usize];
        for h in handles {
            for (p, seqs) in h.join().unwrap().into_iter().enumerate() {
                assert!(
                    seqs.windows(2).all(|w| w[0] < w[1]),
                    "per-producer order broken"
                );
                all[p].extend(seqs);
            }
        }
        for seqs in &mut all {
            seqs.sort_unstable();
            assert_eq!(
                *seqs,
                (0..per_producer).collect::<Vec<_>>(),
                "lost or duplicated"
            );
        }
    });
    assert_eq!(m.ring().len(), 0);
}

#[test]
fn mpmc_exactly_once_and_in_order_capacity_1() {
    mpmc(1, 3, 3, 20_000);
}

#[test]
fn mpmc_exactly_once_and_in_order_capacity_3() {
    mpmc(3, 4, 4, 30_000);
}

#[test]
fn mpmc_exactly_once_and_in_order_capacity_1000() {
    mpmc(1000, 4, 4, 50_000);
}
