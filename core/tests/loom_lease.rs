//! Loom model of the lease protocol (`core/src/lease.rs`), on the code that ships (the `sync`
//! shim swaps std's atomics for loom's): a getter killed after each step of a leased get is
//! recovered (acting as it, as the holder of its liveness lock does) while a live getter takes
//! messages and redeliveries and acknowledges them; every message ends acknowledged exactly
//! once, none is lost. A mutant (the slot released before the lease holds the message) must
//! lose a message, and loom must find it. The same in the pooled layout (large messages), where
//! a get hands the slot's pool buffer over to its entry instead of copying: killed at each step
//! of the hand-over, nothing is lost or duplicated and the buffer indices of the slots and the
//! entries stay a permutation of the pool; a mutant (the slot given the entry's buffer before
//! the entry records the hand-over) loses a message, and loom finds it.
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_lease` (`just loom`).
#![cfg(loom)]

use fastqueue::layout::{SlotBuffer, SlotHeader};
use fastqueue::lease::{
    LeaseControl, LeaseHeader, Leases, Mutant, Order, LEASE_HEADER_SIZE, NO_POSITION,
};
use fastqueue::ring::Ring;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::Arc;
use std::alloc::Layout;

const MAX_MSG: u64 = 8;
const DEAD: u32 = 1;
const LIVE: u32 = 2;

/// A ring (inline layout) and a lease table of loom atomics in raw allocations.
struct Mem {
    tail: AtomicU64,
    head: AtomicU64,
    slots: *mut u8,
    slots_layout: Layout,
    stride: usize,
    capacity: u64,
    ctl: LeaseControl,
    entries: *mut u8,
    entries_layout: Layout,
    lease_stride: usize,
    leases: u32,
    /// Pooled layout: capacity + leases buffers of MAX_MSG bytes (null: inline).
    pool: *mut u8,
    pool_layout: Layout,
}

// SAFETY: the raw memory is only reached through the ring and the lease table.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    fn new(capacity: u64, leases: u32) -> Arc<Mem> {
        Self::with_layout(capacity, leases, false)
    }

    /// `pooled`: slots and entries name buffers of a pool (slot i buffer i, entry j buffer
    /// capacity + j) instead of holding payloads.
    fn with_layout(capacity: u64, leases: u32, pooled: bool) -> Arc<Mem> {
        let extra = if pooled {
            std::mem::size_of::<SlotBuffer>()
        } else {
            MAX_MSG as usize
        };
        let stride = (std::mem::size_of::<SlotHeader>() + extra).next_multiple_of(8);
        let slots_layout = Layout::from_size_align(stride * capacity as usize, 8).unwrap();
        // SAFETY: non-zero size.
        let slots = unsafe { std::alloc::alloc_zeroed(slots_layout) };
        for i in 0..capacity as usize {
            // SAFETY: slot i lies inside the allocation, 8-aligned.
            unsafe {
                slots
                    .add(i * stride)
                    .cast::<SlotHeader>()
                    .write(SlotHeader {
                        state: AtomicU64::new(0),
                        len: AtomicU64::new(0),
                    });
                if pooled {
                    slots
                        .add(i * stride + std::mem::size_of::<SlotHeader>())
                        .cast::<SlotBuffer>()
                        .write(SlotBuffer {
                            buf: AtomicU64::new(i as u64),
                            swap: AtomicU64::new(0),
                        });
                }
            };
        }
        let lease_stride = (LEASE_HEADER_SIZE as usize + extra).next_multiple_of(8);
        let entries_layout = Layout::from_size_align(lease_stride * leases as usize, 8).unwrap();
        // SAFETY: non-zero size.
        let entries = unsafe { std::alloc::alloc_zeroed(entries_layout) };
        for i in 0..leases as usize {
            // SAFETY: entry i lies inside the allocation, 8-aligned.
            unsafe {
                entries
                    .add(i * lease_stride)
                    .cast::<LeaseHeader>()
                    .write(LeaseHeader {
                        state: AtomicU64::new(0),
                        pos: AtomicU64::new(0),
                        len: AtomicU64::new(0),
                        _reserved: 0,
                    });
                if pooled {
                    (*entries.add(i * lease_stride).cast::<LeaseHeader>())
                        .pos
                        .store(NO_POSITION, Ordering::Relaxed);
                    entries
                        .add(i * lease_stride + LEASE_HEADER_SIZE as usize)
                        .cast::<SlotBuffer>()
                        .write(SlotBuffer {
                            buf: AtomicU64::new(capacity + i as u64),
                            swap: AtomicU64::new(0),
                        });
                }
            };
        }
        let buffers = if pooled {
            capacity as usize + leases as usize
        } else {
            1
        };
        let pool_layout = Layout::from_size_align(buffers * MAX_MSG as usize, 8).unwrap();
        let pool = if pooled {
            // SAFETY: non-zero size.
            unsafe { std::alloc::alloc_zeroed(pool_layout) }
        } else {
            std::ptr::null_mut()
        };
        Arc::new(Mem {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            slots,
            slots_layout,
            stride,
            capacity,
            ctl: LeaseControl {
                returned: AtomicU64::new(0),
                redelivered: AtomicU64::new(0),
                waiters: AtomicU32::new(0),
                _reserved: 0,
            },
            entries,
            entries_layout,
            lease_stride,
            leases,
            pool,
            pool_layout,
        })
    }

    fn ring(&self) -> Ring<'_> {
        // SAFETY: `capacity` slots of `stride` bytes, each a SlotHeader and MAX_MSG bytes (or,
        // pooled, a SlotBuffer naming one of capacity + leases buffers of MAX_MSG bytes).
        unsafe {
            let r = Ring::new(
                &self.tail,
                &self.head,
                self.slots,
                self.stride,
                self.capacity,
                MAX_MSG,
            );
            if self.pool.is_null() {
                r
            } else {
                r.with_pool(self.pool, MAX_MSG as usize)
                    .with_buffers(self.capacity + u64::from(self.leases))
            }
        }
    }

    fn leases(&self) -> Leases<'_> {
        // SAFETY: `leases` entries of `lease_stride` bytes, each a LeaseHeader and MAX_MSG bytes
        // (or, pooled, a SlotBuffer; the indices a permutation of the pool with the slots').
        unsafe {
            let l = Leases::new(&self.ctl, self.entries, self.lease_stride, self.leases);
            if self.pool.is_null() {
                l
            } else {
                l.with_pool(
                    self.pool,
                    MAX_MSG as usize,
                    self.capacity + u64::from(self.leases),
                )
            }
        }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            std::alloc::dealloc(self.slots, self.slots_layout);
            std::alloc::dealloc(self.entries, self.entries_layout);
            if !self.pool.is_null() {
                std::alloc::dealloc(self.pool, self.pool_layout);
            }
        }
    }
}

/// One leased get by `me` that stops (dies) after `die_at` steps (0: before anything; 1: after
/// reserving an entry; 2: after claiming the slot; 3: after copying; 4: after holding the entry
/// (the mutant: after releasing the slot); 5: never): returns the message it holds, if any.
/// Pooled (`m.pool` set), the move has three steps: 3: after the entry recorded the hand-over
/// (the mutant: after the slot got the entry's buffer); 4: after the entry took the slot's
/// buffer; 5: after the slot got the entry's; 6: after holding; 7: never.
fn get(m: &Mem, me: u32, die_at: u32, mutant: Mutant) -> Option<u8> {
    let l = m.leases();
    if die_at == 0 {
        return None;
    }
    if let Ok(i) = l.take_returned(me, 0, MAX_MSG) {
        // SAFETY: entry i is HELD by us.
        return Some(unsafe { *l.payload(i) });
    }
    let i = l.reserve(me, 0)?;
    if die_at == 1 {
        return None;
    }
    let pooled = !m.pool.is_null();
    // The steps' order in time (`take_from_ring` numbers them by meaning).
    let rank = |n: u32| match (pooled, n) {
        (false, n) => n,
        (true, 1) => 1,
        (true, 4) => 2,
        (true, 5) => 3,
        (true, 2) => 4,
        (true, _) => 5,
    };
    let mut skipped = 0;
    match l.take_from_ring(
        &m.ring(),
        i,
        me,
        (0, MAX_MSG),
        &mut skipped,
        |n| rank(n) + 1 < die_at,
        mutant,
    ) {
        // SAFETY: entry i is HELD by us.
        Ok(Some(_)) => Some(unsafe { *l.payload(i) }),
        Ok(None) => None,
        Err(_) => {
            l.unreserve(i, me);
            None
        }
    }
}

/// Acknowledges every entry `me` holds; returns how many.
fn ack_all(m: &Mem, me: u32) -> u64 {
    let l = m.leases();
    (0..l.count()).filter(|&i| l.ack(i, me)).count() as u64
}

/// The dead getter's recovery, as `Queue::recover_as` does it: step a, then b and c.
fn recover(m: &Mem) {
    let l = m.leases();
    l.recover_reads(&m.ring(), DEAD, |_| true);
    l.give_back(DEAD);
}

/// Puts messages 1..=n, then the dead getter takes one and dies after `die_at` steps; its
/// recovery races a live getter that takes what it can and acknowledges it. Then the live
/// getter drains the rest. Every message is acknowledged exactly once (Σ generations = n) and
/// received by the live getter exactly once, unless the dead getter had acknowledged it (never
/// here: it dies first).
fn model(die_at: u32, hold_first: bool) {
    let mutant = if hold_first {
        Mutant::None
    } else {
        Mutant::ReleaseBeforeHold
    };
    model_layout(die_at, mutant, false);
}

/// [`model`] in either layout, with either protocol. Pooled, the buffer indices of the slots
/// and entries must also end a permutation of the pool.
fn model_layout(die_at: u32, mutant: Mutant, pooled: bool) {
    loom::model(move || {
        let m = Mem::with_layout(2, 2, pooled);
        let ring = m.ring();
        ring.try_put(LIVE, &[1]).unwrap();
        ring.try_put(LIVE, &[2]).unwrap();
        drop(ring);
        let _ = get(&m, DEAD, die_at, mutant);
        let m2 = m.clone();
        let r = loom::thread::spawn(move || recover(&m2));
        let mut got = Vec::new();
        got.extend(get(&m, LIVE, 7, Mutant::None));
        ack_all(&m, LIVE);
        r.join().unwrap();
        while let Some(x) = get(&m, LIVE, 7, Mutant::None) {
            got.push(x);
            ack_all(&m, LIVE);
        }
        got.sort_unstable();
        assert_eq!(
            got,
            vec![1, 2],
            "a message was lost or duplicated (die_at {die_at})"
        );
        assert_eq!(m.leases().acks(), 2);
        if pooled {
            assert!(
                m.leases().buffers_permute(&m.ring()),
                "two owners of one buffer (die_at {die_at})"
            );
        }
    });
}

#[test]
fn dead_before_reserving() {
    model(0, true);
}

#[test]
fn dead_after_reserving() {
    model(1, true);
}

#[test]
fn dead_after_claiming_the_slot() {
    model(2, true);
}

#[test]
fn dead_after_copying() {
    model(3, true);
}

#[test]
fn dead_after_holding_before_releasing_the_slot() {
    model(4, true);
}

#[test]
fn dead_after_a_whole_get() {
    model(5, true);
}

/// A live holder's acknowledgement races a recoverer returning another holder's lease and a
/// getter taking redeliveries: no entry is taken twice, every message acknowledged once.
#[test]
fn acknowledgements_race_returns_and_redeliveries() {
    loom::model(|| {
        let m = Mem::new(2, 2);
        let ring = m.ring();
        ring.try_put(LIVE, &[1]).unwrap();
        ring.try_put(LIVE, &[2]).unwrap();
        drop(ring);
        assert_eq!(get(&m, DEAD, 7, Mutant::None), Some(1));
        assert_eq!(get(&m, 3, 7, Mutant::None), Some(2));
        let m2 = m.clone();
        let acker = loom::thread::spawn(move || ack_all(&m2, 3));
        let m3 = m.clone();
        let r = loom::thread::spawn(move || recover(&m3));
        let mut got = Vec::new();
        got.extend(get(&m, LIVE, 7, Mutant::None));
        assert_eq!(acker.join().unwrap(), 1);
        r.join().unwrap();
        got.extend(get(&m, LIVE, 7, Mutant::None));
        assert_eq!(
            got,
            vec![1],
            "only the dead getter's message comes back, once"
        );
        assert_eq!(ack_all(&m, LIVE), 1);
        assert_eq!(m.leases().acks(), 2);
    });
}

/// The mutant: releasing the ring slot before the lease holds the message. A getter that dies
/// between the two leaves the message nowhere: loom finds the interleaving and the model's
/// exactly-once assertion fails.
#[test]
#[should_panic(expected = "a message was lost")]
fn mutant_release_before_hold_loses_a_message() {
    model(4, false);
}

#[test]
fn pooled_dead_before_reserving() {
    model_layout(0, Mutant::None, true);
}

#[test]
fn pooled_dead_after_reserving() {
    model_layout(1, Mutant::None, true);
}

#[test]
fn pooled_dead_after_claiming_the_slot() {
    model_layout(2, Mutant::None, true);
}

#[test]
fn pooled_dead_after_recording_the_hand_over() {
    model_layout(3, Mutant::None, true);
}

#[test]
fn pooled_dead_in_the_middle_of_the_swap() {
    model_layout(4, Mutant::None, true);
}

#[test]
fn pooled_dead_after_the_swap() {
    model_layout(5, Mutant::None, true);
}

#[test]
fn pooled_dead_after_holding_before_releasing_the_slot() {
    model_layout(6, Mutant::None, true);
}

#[test]
fn pooled_dead_after_a_whole_get() {
    model_layout(7, Mutant::None, true);
}

/// Pooled: a recoverer killed at each step of finishing a dead getter's hand-over (after the
/// record, after the entry took the slot's buffer, after the hold) leaves a state the next
/// recoverer finishes, racing a live getter: nothing lost or duplicated, the buffers still a
/// permutation of the pool. For a getter dead at each step of its hand-over.
#[test]
fn pooled_recoverer_killed_at_each_step_is_finished_by_the_next() {
    for die_at in 2..=6 {
        for stop in 1..=3 {
            loom::model(move || {
                let m = Mem::with_layout(2, 2, true);
                let ring = m.ring();
                ring.try_put(LIVE, &[1]).unwrap();
                ring.try_put(LIVE, &[2]).unwrap();
                drop(ring);
                let _ = get(&m, DEAD, die_at, Mutant::None);
                // The first recoverer dies after `stop` steps (acting as DEAD, as its lock's
                // next holder does after it).
                m.leases().recover_reads(&m.ring(), DEAD, |n| n < stop);
                let m2 = m.clone();
                let r = loom::thread::spawn(move || recover(&m2));
                let mut got = Vec::new();
                got.extend(get(&m, LIVE, 7, Mutant::None));
                ack_all(&m, LIVE);
                r.join().unwrap();
                while let Some(x) = get(&m, LIVE, 7, Mutant::None) {
                    got.push(x);
                    ack_all(&m, LIVE);
                }
                got.sort_unstable();
                assert_eq!(
                    got,
                    vec![1, 2],
                    "a message was lost or duplicated (die_at {die_at}, stop {stop})"
                );
                assert_eq!(m.leases().acks(), 2);
                assert!(m.leases().buffers_permute(&m.ring()));
            });
        }
    }
}

/// The pooled mutant: the slot is given the entry's buffer before the entry records the
/// hand-over. A getter that dies in between leaves the slot and the entry owning the same
/// buffer and the message's buffer owned by nobody: recovery cannot tell, the message is lost
/// (the live getter receives the other buffer's stale bytes), and loom finds it.
#[test]
#[should_panic(expected = "a message was lost")]
fn pooled_mutant_slot_before_record_loses_a_message() {
    model_layout(3, Mutant::SlotBeforeRecord, true);
}

/// A handle's lease order (`lease::Order`, the per-handle list `task_done` pops) used by two
/// threads at once, each pushing the entry it leased and then acknowledging one: every entry
/// is popped exactly once, and a pop never sees a cell whose push has not finished.
#[test]
fn a_handles_order_pops_each_entry_once_across_threads() {
    loom::model(|| {
        let o = Arc::new(Order::new(2));
        let popped = Arc::new(loom::sync::Mutex::new(Vec::new()));
        let ts: Vec<_> = [7u32, 9]
            .into_iter()
            .map(|entry| {
                let (o, popped) = (o.clone(), popped.clone());
                loom::thread::spawn(move || {
                    o.push(entry);
                    // The other thread may have popped ours: then its own is here, or still
                    // being pushed (then the pop finds fewer, and we try again).
                    while !o.pop(1, |i| popped.lock().unwrap().push(i)) {
                        loom::thread::yield_now();
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        let mut got = popped.lock().unwrap().clone();
        got.sort_unstable();
        assert_eq!(got, vec![7, 9]);
        assert!(o.is_empty());
        assert!(!o.pop(1, |_| unreachable!()));
    });
}
