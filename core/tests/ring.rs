//! The ring on heap memory: capacities 1, 2, 3 and 1000, FIFO, full/empty, wrap-around, zero-length
//! messages, abandoned and recovered slots, and multi-threaded MPMC with exactly-once and
//! per-producer-order checks; each in the inline and the pooled layout (warm buffers), plus the
//! pooled layout's own cases: buffer reuse, a producer dying at every step of a swap, corrupted
//! buffer indices.
#![cfg(not(loom))]

use fastqueue::layout::{Geometry, SlotBuffer, SLOT_ALIGN, SLOT_HEADER_SIZE};
use fastqueue::ring::{unpack, GetError, PutError, Ring, READING, SWAPPING, WRITING};
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
    /// Pooled layout: the buffers (empty for the inline layout).
    pool: Vec<u64>,
    buf_stride: usize,
}

/// The two layouts every general test runs on.
const LAYOUTS: [bool; 2] = [false, true];

impl Mem {
    fn new(max_msg: u64, capacity: u64) -> Arc<Mem> {
        Self::with_layout(max_msg, capacity, false)
    }

    /// A ring in the pooled layout if `pooled` and capacity ≥ 2 (a pool needs a partner to swap
    /// with), whatever `max_msg`: segments pool large messages only, tests pool small ones too.
    fn with_layout(max_msg: u64, capacity: u64, pooled: bool) -> Arc<Mem> {
        let pooled = pooled && capacity >= 2;
        let g = Geometry::new(max_msg, capacity).unwrap();
        let stride = if pooled { SLOT_ALIGN } else { g.slot_stride };
        let words = (stride * capacity / 8) as usize;
        let mut slots = vec![0; words];
        let buf_stride = max_msg.next_multiple_of(8) as usize;
        if pooled {
            for i in 0..capacity {
                slots[((i * stride + SLOT_HEADER_SIZE) / 8) as usize] = i; // SlotBuffer::buf
            }
        }
        let pool = if pooled {
            vec![0; buf_stride * capacity as usize / 8]
        } else {
            Vec::new()
        };
        Arc::new(Mem {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            slots,
            stride: stride as usize,
            capacity,
            max_msg,
            pool,
            buf_stride,
        })
    }

    /// Pooled layout: the buffer index of every slot, in slot order.
    fn buffers(&self) -> Vec<u64> {
        (0..self.capacity as usize)
            .map(|i| {
                self.buffer_slot(i)
                    .buf
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .collect()
    }

    fn buffer_slot(&self, i: usize) -> &SlotBuffer {
        // SAFETY: a SlotBuffer follows each slot header inside the slots (pooled layout).
        unsafe {
            &*(self
                .slots
                .as_ptr()
                .cast::<u8>()
                .add(i * self.stride + SLOT_HEADER_SIZE as usize)
                as *const SlotBuffer)
        }
    }

    fn set_buffer(&self, i: usize, buf: u64) {
        self.buffer_slot(i)
            .buf
            .store(buf, std::sync::atomic::Ordering::Relaxed);
    }

    /// The state word of slot `i`.
    fn ring_state(&self, i: usize) -> u64 {
        // SAFETY: slot i starts with its state word, 8-aligned, inside the slots.
        let w = unsafe {
            &*(self.slots.as_ptr().cast::<u8>().add(i * self.stride) as *const AtomicU64)
        };
        w.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pooled layout: whether the buffer indices are a permutation of the pool.
    fn buffers_are_a_permutation(&self) -> bool {
        let mut b = self.buffers();
        b.sort_unstable();
        b == (0..self.capacity).collect::<Vec<_>>()
    }

    fn ring(&self) -> Ring<'_> {
        // SAFETY: `slots` holds capacity slots of `stride` bytes, 8-aligned, zeroed (EMPTY of
        // lap 0); all access goes through the ring. The Vec is only written through the ring's
        // raw pointer, never through a Rust reference.
        let r = unsafe {
            Ring::new(
                &self.tail,
                &self.head,
                self.slots.as_ptr() as *mut u8,
                self.stride,
                self.capacity,
                self.max_msg,
            )
        };
        if self.pool.is_empty() {
            return r;
        }
        // SAFETY: `pool` holds capacity buffers of buf_stride ≥ max_msg bytes, disjoint from the
        // slots, reached only through the ring; each 64-byte slot holds a SlotHeader and a
        // SlotBuffer whose indices start as the identity permutation; 2 ≤ capacity.
        unsafe { r.with_pool(self.pool.as_ptr() as *mut u8, self.buf_stride) }
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
    for (cap, pooled) in [1u64, 2, 3, 1000]
        .into_iter()
        .flat_map(|c| LAYOUTS.map(|p| (c, p)))
    {
        let m = Mem::with_layout(16, cap, pooled);
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
    for (cap, pooled) in [1u64, 2, 3, 7, 1000]
        .into_iter()
        .flat_map(|c| LAYOUTS.map(|p| (c, p)))
    {
        let m = Mem::with_layout(8, cap, pooled);
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
        assert!(!pooled || cap == 1 || m.buffers_are_a_permutation());
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
        !r.recover(b.pos, b.state, 3, |_| false),
        "a live owner keeps its slot"
    );
    assert!(r.recover(b.pos, b.state, 3, |k| k == 7));
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
    assert!(r.recover(b.pos, b.state, 3, |k| k == 9));
    assert!(put(&r, 1, b"z") && put(&r, 1, b"w"));
    assert_eq!(get(&r, 2).unwrap(), b"z");
    assert_eq!(get(&r, 2).unwrap(), b"w");
    assert_eq!(r.recover_all(9), (0, 0));
}

fn mpmc(cap: u64, producers: u32, consumers: u32, per_producer: u64) {
    for pooled in LAYOUTS {
        mpmc_in(
            Mem::with_layout(16, cap, pooled),
            producers,
            consumers,
            per_producer,
        );
    }
}

fn mpmc_in(m: Arc<Mem>, producers: u32, consumers: u32, per_producer: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let total = u64::from(producers) * per_producer;
    std::thread::scope(|s| {
        for p in 0..producers {
            let m = &m;
            s.spawn(move || {
                let r = m.ring();
                for seq in 0..per_producer {
                    let mut msg = [seq as u8; 16];
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
                            assert!(v[12..].iter().all(|&b| b == seq as u8), "torn payload");
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
    assert!(m.pool.is_empty() || m.buffers_are_a_permutation());
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

/// Pooled layout: in a put+get loop, every put writes into the buffer the previous get read
/// (the warm one), wherever the ring's positions are.
#[test]
fn pooled_puts_reuse_the_buffer_the_last_get_read() {
    for cap in [2u64, 3, 8] {
        let m = Mem::with_layout(64, cap, true);
        let r = m.ring();
        let mut last = None;
        for i in 0..5 * cap {
            let pos = r.try_claim_write(1).unwrap();
            let p = r.payload(pos);
            if let Some(q) = last {
                assert_eq!(p, q, "cap {cap}, put {i} wrote into a cold buffer");
            }
            assert!(r.publish(pos, 0, 1));
            let mut freed = 0;
            let c = r.try_claim_read(2, 64, &mut freed).unwrap();
            assert_eq!(r.payload(c.pos), p);
            assert!(r.release(c.pos, 2));
            last = Some(p);
            assert!(m.buffers_are_a_permutation());
        }
        // With messages queued, the buffers they sit in are never taken.
        for i in 0..cap {
            assert!(put(&r, 1, &[i as u8; 64]));
        }
        for i in 0..cap {
            assert_eq!(get(&r, 2).unwrap(), [i as u8; 64]);
        }
        assert!(m.buffers_are_a_permutation());
    }
}

/// Pooled layout: a producer dies after each step of its swap; recovery (through the claim, or
/// through the `SWAPPING` slot a put runs into) leaves the buffers a permutation, and every
/// message queued around it is delivered intact.
#[test]
fn pooled_producer_dying_at_every_step_of_a_swap_is_recovered() {
    for steps in 0..=5 {
        for via_swapping_slot in [false, true] {
            let cap = 4;
            let m = Mem::with_layout(32, cap, true);
            let r = m.ring();
            assert!(put(&r, 1, b"first"));
            assert_eq!(get(&r, 2).unwrap(), b"first");
            // Producer 7 claims position 1 and dies in its swap with slot 0.
            let pos = r.try_claim_write_dying(7, steps).unwrap();
            assert_eq!(pos, 1);
            let s0 = unpack(m.ring_state(0)).1;
            assert_eq!(s0 == SWAPPING, (2..=4).contains(&steps), "steps {steps}");
            // Live producers fill the ring behind it: positions 2, 3 and, once slot 0 is
            // free again, 4.
            assert!(put(&r, 1, &[2; 32]) && put(&r, 1, &[3; 32]));
            if s0 == SWAPPING && via_swapping_slot {
                let Err(PutError::Full(b)) = r.try_claim_write(1) else {
                    panic!("a SWAPPING slot at the tail is busy")
                };
                assert_eq!((b.pos, unpack(b.state).1), (4, SWAPPING));
                assert!(b.held() && b.owner().is_none());
                assert!(
                    !r.recover(b.pos, b.state, 3, |_| false),
                    "the swapper lives"
                );
                assert!(r.recover(b.pos, b.state, 3, |k| k == 7));
            } else {
                let mut freed = 0;
                let Err(GetError::Empty(b)) = r.try_claim_read(2, 32, &mut freed) else {
                    panic!("expected empty")
                };
                assert_eq!((b.pos, b.owner()), (1, Some(7)));
                assert!(r.recover(b.pos, b.state, 3, |k| k == 7));
            }
            assert!(m.buffers_are_a_permutation(), "steps {steps}");
            assert!(put(&r, 1, &[4; 32]));
            assert!(!put(&r, 1, b"no room"));
            for v in [2u8, 3, 4] {
                assert_eq!(get(&r, 2).unwrap(), [v; 32], "steps {steps}");
            }
            assert_eq!(get(&r, 2), None);
            assert!(m.buffers_are_a_permutation());
            assert_eq!(r.recover_all(7), (0, 0));
        }
    }
}

/// Pooled layout: a buffer index outside the pool is reported as corruption, never followed.
#[test]
fn pooled_corrupt_buffer_index_is_reported() {
    let m = Mem::with_layout(16, 3, true);
    let r = m.ring();
    assert!(put(&r, 1, b"x"));
    m.set_buffer(0, 1 << 40);
    let mut freed = 0;
    assert_eq!(r.try_claim_read(2, 16, &mut freed), Err(GetError::Corrupt));
}
