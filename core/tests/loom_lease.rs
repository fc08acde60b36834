//! Loom model of the lease protocol (`core/src/lease.rs`), on the code that ships (the `sync`
//! shim swaps std's atomics for loom's): a getter killed after each step of a leased get is
//! recovered (acting as it, as the holder of its liveness lock does) while a live getter takes
//! messages and redeliveries and acknowledges them; every message ends acknowledged exactly
//! once, none is lost. A mutant (the slot released before the lease holds the message) must
//! lose a message, and loom must find it.
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_lease` (`just loom`).
#![cfg(loom)]

use fastqueue::layout::SlotHeader;
use fastqueue::lease::{LeaseControl, LeaseHeader, Leases, Order, LEASE_HEADER_SIZE};
use fastqueue::ring::Ring;
use loom::sync::atomic::{AtomicU32, AtomicU64};
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
}

// SAFETY: the raw memory is only reached through the ring and the lease table.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    fn new(capacity: u64, leases: u32) -> Arc<Mem> {
        let stride = (std::mem::size_of::<SlotHeader>() + MAX_MSG as usize).next_multiple_of(8);
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
                    })
            };
        }
        let lease_stride = (LEASE_HEADER_SIZE + MAX_MSG) as usize;
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
                    })
            };
        }
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
        })
    }

    fn ring(&self) -> Ring<'_> {
        // SAFETY: `capacity` slots of `stride` bytes, each a SlotHeader and MAX_MSG bytes.
        unsafe {
            Ring::new(
                &self.tail,
                &self.head,
                self.slots,
                self.stride,
                self.capacity,
                MAX_MSG,
            )
        }
    }

    fn leases(&self) -> Leases<'_> {
        // SAFETY: `leases` entries of `lease_stride` bytes, each a LeaseHeader and MAX_MSG bytes.
        unsafe { Leases::new(&self.ctl, self.entries, self.lease_stride, self.leases) }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            std::alloc::dealloc(self.slots, self.slots_layout);
            std::alloc::dealloc(self.entries, self.entries_layout);
        }
    }
}

/// One leased get by `me` that stops (dies) after `die_at` steps (0: before anything; 1: after
/// reserving an entry; 2: after claiming the slot; 3: after copying; 4: after holding the entry
/// (the mutant: after releasing the slot); 5: never): returns the message it holds, if any.
fn get(m: &Mem, me: u32, die_at: u32, hold_first: bool) -> Option<u8> {
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
    let mut skipped = 0;
    match l.take_from_ring(
        &m.ring(),
        i,
        me,
        (0, MAX_MSG),
        &mut skipped,
        |n| n + 1 < die_at,
        hold_first,
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
    l.recover_reads(&m.ring(), DEAD, || {});
    l.give_back(DEAD);
}

/// Puts messages 1..=n, then the dead getter takes one and dies after `die_at` steps; its
/// recovery races a live getter that takes what it can and acknowledges it. Then the live
/// getter drains the rest. Every message is acknowledged exactly once (Σ generations = n) and
/// received by the live getter exactly once, unless the dead getter had acknowledged it (never
/// here: it dies first).
fn model(die_at: u32, hold_first: bool) {
    loom::model(move || {
        let m = Mem::new(2, 2);
        let ring = m.ring();
        ring.try_put(LIVE, &[1]).unwrap();
        ring.try_put(LIVE, &[2]).unwrap();
        drop(ring);
        let _ = get(&m, DEAD, die_at, hold_first);
        let m2 = m.clone();
        let r = loom::thread::spawn(move || recover(&m2));
        let mut got = Vec::new();
        got.extend(get(&m, LIVE, 5, true));
        ack_all(&m, LIVE);
        r.join().unwrap();
        while let Some(x) = get(&m, LIVE, 5, true) {
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
        assert_eq!(get(&m, DEAD, 5, true), Some(1));
        assert_eq!(get(&m, 3, 5, true), Some(2));
        let m2 = m.clone();
        let acker = loom::thread::spawn(move || ack_all(&m2, 3));
        let m3 = m.clone();
        let r = loom::thread::spawn(move || recover(&m3));
        let mut got = Vec::new();
        got.extend(get(&m, LIVE, 5, true));
        assert_eq!(acker.join().unwrap(), 1);
        r.join().unwrap();
        got.extend(get(&m, LIVE, 5, true));
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
