//! Acknowledged delivery: the lease table of a `redeliver` queue. Every atomic operation on a
//! lease lives here.
//!
//! # What a lease is
//!
//! On a queue created with the redeliver flag, a get does not simply copy its message out of the
//! ring: it first moves the message into a *lease entry*, outside the ring, owned by the getting
//! participant, and only then gives the ring slot back. The slot is free for producers at once
//! (leases never take ring slots); the message stays in the entry until the participant
//! acknowledges it (`task_done`), which frees the entry. A participant that closes or dies with
//! entries still held gives them back: they become `RETURNED`, and the next gets (of any
//! participant) take a returned message before any new one from the ring ("redelivered").
//!
//! The table is a region after the ring (and after the pool, in the pooled layout):
//!
//! ```text
//! lease_offset   LeaseControl (one 128-byte line: returned hint, redelivered count, waiters)
//!                leases × lease_stride: each a LeaseHeader (32 bytes: state, pos, len) followed
//!                by max_msg payload bytes, rounded up to a multiple of 64 (pooled layout: by a
//!                SlotBuffer naming the entry's pool buffer, 64 bytes in all)
//! ```
//!
//! So a redeliver queue reserves `128 + leases × round_up(32 + max_msg, 64)` bytes more than a
//! plain one (by default `leases` = capacity: about twice the memory of the ring). In the pooled
//! layout (large messages, see "Pooled leases") an entry is 64 bytes (a header and a buffer
//! index) and the pool holds `leases` more buffers: `128 + leases × (64 + buf_stride)` bytes more.
//!
//! # Pooled leases: the message is handed over, not copied
//!
//! In the pooled layout a ring slot names the pool buffer that holds its message (`ring`, "Warm
//! buffers"). A redeliver queue's pool has `capacity + leases` buffers, and each lease entry
//! owns one too, through the same record as a slot ([`SlotBuffer`]: `buf`, `swap`). Invariant:
//! the buffer indices of all ring slots and all lease entries together are a permutation of the
//! pool. A get does not copy the message into the entry; in step 3 it swaps buffers with the
//! slot it claimed (entry buffer `e`, slot buffer `s`):
//!
//! 3a. Record: `entry.swap = e`, the message's length, then its position (`entry.pos`; the
//!     position binds the entry to that slot for recovery, so it is written last).
//! 3b. `entry.buf = s` (the entry owns the message).
//! 3c. `slot.buf = e` (the slot owns the spare).
//!
//! then step 4 as above. Both records are only touched by the holder of their claims (the
//! entry's `FILLING(me)`, the slot's `READING(me)`), so they need no atomics of their own; they
//! are handed over with the state words. Redelivery reads the entry's buffer; an
//! acknowledgement frees the entry, which keeps its buffer (now a spare for the next get).
//!
//! Recovery (step a, for a dead `k`'s slot `READING(k)` of position `p` that no `HELD(k)` entry
//! records): the entry is the `FILLING(k)` one whose position is `p` if any (bound: k recorded,
//! 3a; an entry's position is [`NO_POSITION`] until its first lease and its last lease's after,
//! and positions never repeat, so no other entry can match), else one bound to none of k's claimed slots (k had not recorded: it still owns its own
//! buffer, and records now). Then, each step checking whether it was done: `entry.buf ==
//! entry.swap` (3b not done): `entry.buf = slot.buf`; `slot.buf == entry.buf` (caught mid-swap,
//! 3c not done): `slot.buf = entry.swap`; then hold and release as above. A recoverer killed
//! anywhere leaves a state the next one finishes the same way. (3a before 3c matters: a slot
//! given `e` before the entry recorded anything would leave `e` owned twice and `s` by nobody,
//! which recovery cannot tell from a get that never started; the loom model's mutant does that
//! and loses the message.)
//!
//! # The entry state word
//!
//! Packed as a slot word (`ring::pack`): `(generation, phase, owner)`. Phases:
//!
//! ```text
//!  FREE(g) ──reserve──► FILLING(g, me) ──hold──► HELD(g, me) ──ack──► FREE(g + 1)
//!     ▲                      │ unreserve / owner died          │ owner closed / died
//!     └──────────────────────┘ FREE(g)                         ▼
//!                                            RETURNED(g) ──redeliver──► HELD(g, other)
//! ```
//!
//! Every transition is one CAS on the state word (or, by its living owner, one store after it
//! checked that it still owns the entry: while `me` lives nobody else moves an entry out of
//! `FILLING(me)` or `HELD(me)`), so the owner is recorded in the claim itself, as for ring slots.
//! The generation grows by one at each acknowledgement and at nothing else, so Σ generations is
//! the number of acknowledged messages ever: an acknowledgement and its count for `join` are one
//! and the same write (a process killed between an "ack" and a "count" cannot exist).
//!
//! # Get, in four steps (`Queue::claim_read` of a redeliver queue)
//!
//! 1. If the returned hint is non-zero, try to take the `RETURNED` entry of the oldest position
//!    (CAS `RETURNED(g)` → `HELD(g, me)`): done, that message is redelivered.
//! 2. Reserve an entry: CAS `FREE(g)` → `FILLING(g, me)`. None free: the get waits (the bound).
//! 3. Claim the ring's oldest message (`READING(lap, me)`, the ring's protocol); copy it into
//!    the entry with its position and length (pooled: hand its buffer over, see "Pooled
//!    leases").
//! 4. CAS `FILLING(g, me)` → `HELD(g, me)` (release), *then* release the ring slot.
//!
//! # Recovery (a dead participant k, by whoever holds k's liveness lock)
//!
//! Recovery of k runs only in a process that took k's OFD lock (so k is dead, and nobody else
//! recovers k meanwhile; a recoverer that dies drops the lock and the next one starts over):
//!
//! a. Each ring slot `READING(lap, k)`: if an entry `HELD(k)` records its position, k died
//!    between steps 4's CAS and its release: release the slot. Otherwise k died between steps
//!    3 and 4: finish k's get *as k* with one of k's `FILLING(k)` entries (there is one for
//!    each such slot: step 2 precedes step 3; pooled: the one bound to the slot, see "Pooled
//!    leases"), then release the slot. The message is not lost.
//! b. Each `HELD(g, k)` → `RETURNED(g)`, and the returned hint grows.
//! c. Each `FILLING(g, k)` → `FREE(g)`.
//!
//! Each step is idempotent from any state a dead recoverer may leave (it acted as k), so a
//! killed recoverer loses nothing and duplicates nothing. A closing participant does the same
//! for itself.
//!
//! # Ordering
//!
//! The payload, `pos` and `len` are plain (relaxed) memory owned by the entry's owner. They are
//! handed over through the state word only: the owner's `HELD` CAS is `Release`; every CAS that
//! takes an entry another participant filled (`RETURNED` → `HELD`, recovery's `HELD(k)` →
//! `RETURNED`) is `Acquire` (AcqRel where it also hands over). The returned hint carries no data.

use crate::layout::SlotBuffer;
use crate::ring::{pack, unpack, GetError, Ring, LAP_MASK, READING};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// An entry nobody holds.
pub const FREE: u64 = 0;
/// An entry reserved by a get (owner) that is moving a message into it.
pub const FILLING: u64 = 1;
/// An entry holding a message leased to its owner until acknowledged.
pub const HELD: u64 = 2;
/// An entry holding a message given back by a closed or dead owner, waiting to be redelivered.
pub const RETURNED: u64 = 3;

/// The position a pooled entry records before its first lease (a creator writes it): no ring
/// position, so recovery never takes a fresh entry for one a dead getter bound to a slot
/// ("Pooled leases"). Positions never repeat, so an acknowledged entry's old one is as safe.
pub const NO_POSITION: u64 = u64::MAX;

/// Bytes of per-entry header before the payload.
pub const LEASE_HEADER_SIZE: u64 = 32;

/// The first line of the lease region.
#[repr(C, align(128))]
pub struct LeaseControl {
    /// Number of `RETURNED` entries, as a hint: raised after each return, lowered after each
    /// redelivery, and reset by a get that found none. A get looks for returned entries only
    /// while it is non-zero (or, when blocked, every `wait::IDLE_RECHECK`).
    pub returned: AtomicU64,
    /// Messages redelivered, ever (a statistic, `FQ_STAT_REDELIVERED`).
    pub redelivered: AtomicU64,
    /// Gets waiting for a free entry: an acknowledgement wakes them all while non-zero.
    pub waiters: AtomicU32,
    /// Padding; zero.
    pub _reserved: u32,
}

/// The header of one lease entry.
#[repr(C)]
pub struct LeaseHeader {
    /// The state word `(generation, phase, owner)` (module docs).
    pub state: AtomicU64,
    /// The ring position the message had (its order among redelivered messages, and how
    /// recovery tells whether a dead getter's slot was already moved here). Written by the
    /// owner while `FILLING`.
    pub pos: AtomicU64,
    /// Length of the message. Written by the owner while `FILLING`.
    pub len: AtomicU64,
    /// Padding; zero.
    pub _reserved: u64,
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<LeaseControl>() == 128);
    assert!(core::mem::size_of::<LeaseHeader>() as u64 == LEASE_HEADER_SIZE);
};

/// A view of a lease table whose memory lives elsewhere (a segment, or the heap in tests).
pub struct Leases<'a> {
    ctl: &'a LeaseControl,
    entries: *mut u8,
    stride: usize,
    count: u32,
    /// Pooled layout: the pool (null for the inline layout), its buffer stride and count.
    pool: *mut u8,
    buf_stride: usize,
    buffers: u64,
}

/// Which protocol [`Leases::take_from_ring`] follows: the library's, or a mutant of it that a
/// loom model must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// The library's protocol.
    None,
    /// The slot is released before the lease holds the message.
    ReleaseBeforeHold,
    /// Pooled layout: the slot is given the entry's buffer before the entry records the
    /// hand-over (a getter dying in between leaves two owners of one buffer, none of the
    /// message's).
    SlotBeforeRecord,
}

// SAFETY: entries are reached through their atomics, and payload bytes through the ownership
// the state words hand over (module docs).
unsafe impl Send for Leases<'_> {}
// SAFETY: as above; every method takes `&self`.
unsafe impl Sync for Leases<'_> {}

/// Why a redelivery could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// No returned message.
    None,
    /// The oldest returned message does not fit the caller's `min..=cap` (its length).
    Size(u64),
}

impl<'a> Leases<'a> {
    /// Makes a view of a lease table.
    ///
    /// # Safety
    ///
    /// `entries` points to `count` entries of `stride` bytes, valid for reads and writes for
    /// `'a`, each starting with an initialised [`LeaseHeader`] (8-aligned) followed by at least
    /// the queue's max message size of payload; every process follows this module's protocol.
    pub unsafe fn new(ctl: &'a LeaseControl, entries: *mut u8, stride: usize, count: u32) -> Self {
        debug_assert!(stride >= LEASE_HEADER_SIZE as usize);
        Leases {
            ctl,
            entries,
            stride,
            count,
            pool: core::ptr::null_mut(),
            buf_stride: 0,
            buffers: 0,
        }
    }

    /// The same table in the pooled layout ("Pooled leases" in the module docs): each entry's
    /// header is followed by a [`SlotBuffer`] naming the pool buffer it owns, not a payload.
    ///
    /// # Safety
    ///
    /// `buffers` = 0: nothing (the inline layout; `pool` is never used). Otherwise as for
    /// [`Leases::new`], except that each entry's header is followed by an initialised
    /// [`SlotBuffer`] (not a payload); `pool` points to `buffers` buffers of `buf_stride` ≥ max
    /// message size bytes, valid for `'a`, disjoint from the entries; the buffer indices of all
    /// ring slots and all entries are a permutation of `0..buffers`.
    pub unsafe fn with_pool(mut self, pool: *mut u8, buf_stride: usize, buffers: u64) -> Self {
        debug_assert!(
            buffers == 0
                || (self.stride >= LEASE_HEADER_SIZE as usize + core::mem::size_of::<SlotBuffer>()
                    && buffers > u64::from(self.count))
        );
        self.pool = pool;
        self.buf_stride = buf_stride;
        self.buffers = buffers;
        self
    }

    /// Whether entries own pool buffers (the pooled layout) rather than hold payloads.
    pub fn pooled(&self) -> bool {
        self.buffers != 0
    }

    /// Pooled layout: entry `i`'s buffer index and swap record.
    fn buffer(&self, i: u32) -> &SlotBuffer {
        debug_assert!(self.pooled() && i < self.count);
        // SAFETY: i < count; in the pooled layout (`with_pool`) an initialised SlotBuffer
        // follows each entry's header inside its stride.
        unsafe {
            &*(self
                .entries
                .add(i as usize * self.stride + LEASE_HEADER_SIZE as usize)
                as *const SlotBuffer)
        }
    }

    /// Pooled layout: the index of the pool buffer entry `i` owns now (for tests and tools).
    pub fn buffer_index(&self, i: u32) -> u64 {
        // ORDERING: Relaxed: read by the entry's owner, or after the state word handed it over.
        self.buffer(i).buf.load(Ordering::Relaxed)
    }

    /// Number of entries.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The control line.
    pub fn control(&self) -> &LeaseControl {
        self.ctl
    }

    fn entry(&self, i: u32) -> &LeaseHeader {
        debug_assert!(i < self.count);
        // SAFETY: i < count: the entry lies inside the memory `new` was promised.
        unsafe { &*(self.entries.add(i as usize * self.stride) as *const LeaseHeader) }
    }

    /// The payload of entry `i` (valid for the max message size). Touch it only while owning
    /// the entry (`FILLING` or `HELD` by you).
    pub fn payload(&self, i: u32) -> *mut u8 {
        let i = i.min(self.count.saturating_sub(1));
        if self.pooled() {
            return pooled_payload(self.pool, self.buf_stride, self.buffers, self.buffer(i));
        }
        // SAFETY: i < count; the payload follows the header inside the entry's stride.
        unsafe {
            self.entries
                .add(i as usize * self.stride + LEASE_HEADER_SIZE as usize)
        }
    }

    /// The state word of entry `i`, unpacked (for tests and tools).
    pub fn state(&self, i: u32) -> (u64, u64, u32) {
        // ORDERING: Acquire, as every load that may precede reading what the entry holds.
        unpack(self.entry(i).state.load(Ordering::Acquire))
    }

    /// The length recorded in entry `i`; read it only while owning the entry.
    pub fn len(&self, i: u32) -> u64 {
        // ORDERING: Relaxed: the owner's own store, or published by the CAS that gave it to us.
        self.entry(i).len.load(Ordering::Relaxed)
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Get, step 2: reserves a free entry for `me`, looking from `hint` on. None: all taken.
    pub fn reserve(&self, me: u32, hint: u32) -> Option<u32> {
        let start = if hint < self.count { hint } else { 0 };
        for k in 0..self.count {
            // start + k, wrapped without a division (this runs on every leased get).
            let i = if start + k < self.count {
                start + k
            } else {
                start + k - self.count
            };
            let e = self.entry(i);
            // ORDERING: Relaxed: a look; the CAS decides.
            let s = e.state.load(Ordering::Relaxed);
            let (g, phase, _) = unpack(s);
            // ORDERING: Acquire on success: the previous owner's payload reads (before its
            // ack's Release) happen before our writes.
            if phase == FREE
                && e.state
                    .compare_exchange(
                        s,
                        pack(g, FILLING, me),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                return Some(i);
            }
        }
        None
    }

    /// Gives back entry `i` that `me` reserved and did not fill. False if `me` does not hold it
    /// `FILLING`.
    pub fn unreserve(&self, i: u32, me: u32) -> bool {
        let e = self.entry(i);
        // ORDERING: Relaxed: only `me` moves an entry out of FILLING(g, me) (or recovery, after
        // we died).
        let s = e.state.load(Ordering::Relaxed);
        let (g, phase, owner) = unpack(s);
        // ORDERING: Release: our (unused) reservation ends before the next owner's Acquire.
        phase == FILLING
            && owner == me
            && e.state
                .compare_exchange(s, pack(g, FREE, 0), Ordering::Release, Ordering::Relaxed)
                .is_ok()
    }

    /// Get, step 4: entry `i`, reserved by `me`, now holds the message of ring position `pos`
    /// (`len` bytes, copied into its payload): it becomes `HELD(me)`. False (nothing changes)
    /// if `me` does not hold it `FILLING`.
    pub fn hold(&self, i: u32, me: u32, pos: u64, len: u64) -> bool {
        let e = self.entry(i);
        // ORDERING: Relaxed: as in `unreserve`.
        let s = e.state.load(Ordering::Relaxed);
        let (g, phase, owner) = unpack(s);
        if phase != FILLING || owner != me {
            return false;
        }
        // ORDERING: Relaxed: published by the Release store below.
        e.pos.store(pos, Ordering::Relaxed);
        // ORDERING: as above.
        e.len.store(len, Ordering::Relaxed);
        // A store, not a CAS: only the owner moves an entry out of FILLING(g, me) while it
        // lives (recovery acts for it only once it is dead), as the ring's owners do.
        // ORDERING: Release pairs with the Acquire of whoever takes the entry later (recovery's
        // return, a redelivery): the payload, pos and len are written before.
        e.state.store(pack(g, HELD, me), Ordering::Release);
        true
    }

    /// Acknowledges entry `i`, leased to `me`: `HELD(g, me)` → `FREE(g + 1)`. This one store is
    /// also the acknowledgement's count (Σ generations, [`Leases::acks`]). False if `me` does
    /// not hold it.
    pub fn ack(&self, i: u32, me: u32) -> bool {
        let e = self.entry(i);
        // ORDERING: Relaxed: only `me` moves an entry out of HELD(g, me) while alive.
        let s = e.state.load(Ordering::Relaxed);
        let (g, phase, owner) = unpack(s);
        if phase != HELD || owner != me {
            return false;
        }
        // A swap where a store would do (while we live, only we move an entry out of
        // HELD(g, me)), for its ordering:
        // ORDERING: SeqCst (a Release swap): our payload reads happen before the next owner's
        // writes (its Acquire in `reserve`), and `acks` readers (Acquire) see the count with
        // it. SeqCst, so that it stands in for the SeqCst fence of a waker (`wait::notify`):
        // a SeqCst load of the join word's `sleepers` after it either sees a `join` that
        // announced itself (fetch_add and fence, `wait::announce`) or that `join`'s re-check
        // sees this acknowledgement (`Queue::ack`). One locked instruction instead of a store
        // and a fence.
        e.state
            .swap(pack(g.wrapping_add(1), FREE, 0), Ordering::SeqCst);
        true
    }

    /// Messages acknowledged ever: Σ generations (each acknowledgement adds one to its entry's).
    pub fn acks(&self) -> u64 {
        (0..self.count)
            .map(|i| {
                // ORDERING: Acquire pairs with the Release of `ack`.
                let (g, _, _) = unpack(self.entry(i).state.load(Ordering::Acquire));
                g
            })
            .sum()
    }

    /// Get, step 1: takes the returned entry of the oldest position, if its message's length
    /// lies in `min..=cap`, as `HELD(me)`: the message is redelivered to `me`.
    pub fn take_returned(&self, me: u32, min: u64, cap: u64) -> Result<u32, Redelivery> {
        loop {
            // ORDERING: Acquire pairs with the Release increment in `give_back`: the entries
            // returned before it are visible to the scan below.
            let hint = self.ctl.returned.load(Ordering::Acquire);
            let mut best: Option<(u64, u32, u64)> = None;
            for i in 0..self.count {
                let e = self.entry(i);
                // ORDERING: Acquire: pairs with the return's Release, so pos and len are the
                // returned message's.
                let s = e.state.load(Ordering::Acquire);
                if unpack(s).1 != RETURNED {
                    continue;
                }
                // ORDERING: Relaxed: ordered by the Acquire above; the CAS below proves the
                // entry did not move on meanwhile.
                let pos = e.pos.load(Ordering::Relaxed);
                if best.map_or(true, |(p, _, _)| pos < p) {
                    best = Some((pos, i, s));
                }
            }
            let Some((_, i, s)) = best else {
                // None found: lower the hint, unless something was returned meanwhile.
                if hint != 0 {
                    // ORDERING: Relaxed: a hint; a failed CAS means a return happened since.
                    let _ = self.ctl.returned.compare_exchange(
                        hint,
                        0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                return Err(Redelivery::None);
            };
            let e = self.entry(i);
            // ORDERING: Relaxed: as above.
            let len = e.len.load(Ordering::Relaxed);
            if len < min || len > cap {
                return Err(Redelivery::Size(len));
            }
            let (g, _, _) = unpack(s);
            // ORDERING: Acquire on success: the payload the first getter wrote (published by
            // its Release `hold`, passed on by the return's AcqRel) happens before our reads.
            if e.state
                .compare_exchange(s, pack(g, HELD, me), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // ORDERING: Relaxed: a hint and a statistic.
                let _ = self
                    .ctl
                    .returned
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                // ORDERING: Relaxed: a statistic.
                self.ctl.redelivered.fetch_add(1, Ordering::Relaxed);
                return Ok(i);
            }
        }
    }

    /// Recovery step a's test: whether an entry `HELD(owner)` holds the message of ring
    /// position `pos` (of a ring of `capacity` slots: positions are compared by lap and slot,
    /// as the slot word stores them).
    pub fn holds_position(&self, owner: u32, lap: u64, index: u64, capacity: u64) -> bool {
        (0..self.count).any(|i| {
            let e = self.entry(i);
            // ORDERING: Acquire, as in `take_returned`.
            let (_, phase, o) = unpack(e.state.load(Ordering::Acquire));
            // ORDERING: Relaxed: ordered by the Acquire above.
            let pos = e.pos.load(Ordering::Relaxed);
            phase == HELD
                && o == owner
                && pos % capacity == index
                && (pos / capacity) & LAP_MASK == lap
        })
    }

    /// An entry `FILLING(owner)`, if any (recovery step a finishes a dead getter's get in it).
    pub fn filling_of(&self, owner: u32) -> Option<u32> {
        (0..self.count).find(|&i| {
            // ORDERING: Relaxed: the recoverer acts as `owner` (it holds owner's lock), and
            // only `owner` moves an entry out of FILLING(owner).
            let (_, phase, o) = unpack(self.entry(i).state.load(Ordering::Relaxed));
            phase == FILLING && o == owner
        })
    }

    /// Recovery steps b and c for `owner` (dead, or closing: the caller acts as `owner`):
    /// every `HELD(owner)` entry is returned for redelivery, every `FILLING(owner)` freed.
    /// Returns the number returned.
    pub fn give_back(&self, owner: u32) -> u64 {
        let mut returned = 0;
        for i in 0..self.count {
            let e = self.entry(i);
            // ORDERING: Acquire, as in `take_returned`.
            let s = e.state.load(Ordering::Acquire);
            let (g, phase, o) = unpack(s);
            if o != owner {
                continue;
            }
            let next = match phase {
                HELD => pack(g, RETURNED, 0),
                FILLING => pack(g, FREE, 0),
                _ => continue,
            };
            // ORDERING: AcqRel: Acquire, the owner's writes happen before; Release, they are
            // passed on to the next taker (its Acquire in `take_returned` or `reserve`).
            if e.state
                .compare_exchange(s, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
                && phase == HELD
            {
                returned += 1;
                // ORDERING: Release pairs with the Acquire load of the hint in `take_returned`.
                self.ctl.returned.fetch_add(1, Ordering::Release);
            }
        }
        returned
    }

    /// After an immediate shutdown: every `RETURNED` entry is discarded, counted as
    /// acknowledged (`RETURNED(g)` → `FREE(g + 1)`), so that `join` does not wait for messages
    /// nobody can get any more. Returns how many.
    pub fn discard_returned(&self) -> u64 {
        let mut n = 0;
        for i in 0..self.count {
            let e = self.entry(i);
            // ORDERING: Acquire, as in `take_returned`.
            let s = e.state.load(Ordering::Acquire);
            let (g, phase, _) = unpack(s);
            // ORDERING: Release, as `ack`.
            if phase == RETURNED
                && e.state
                    .compare_exchange(
                        s,
                        pack(g.wrapping_add(1), FREE, 0),
                        Ordering::Release,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                n += 1;
            }
        }
        n
    }

    /// Whether a get could take a message now as far as the table goes: a `RETURNED` entry,
    /// or a `FREE` one to lease a message of the ring into. For waiters that must not take.
    pub fn ready(&self, ring_has_one: bool) -> bool {
        (0..self.count).any(|i| {
            // ORDERING: Relaxed: a hint; the get that follows decides.
            let (_, phase, _) = unpack(self.entry(i).state.load(Ordering::Relaxed));
            phase == RETURNED || (ring_has_one && phase == FREE)
        })
    }

    /// The owners of entries `FILLING` or `HELD` (with repetitions): whom a waiter checks for
    /// death.
    pub fn holders(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).filter_map(|i| {
            // ORDERING: Relaxed: a hint; recovery re-reads under the owner's lock.
            let (_, phase, o) = unpack(self.entry(i).state.load(Ordering::Relaxed));
            matches!(phase, FILLING | HELD).then_some(o)
        })
    }

    /// Get, steps 3 and 4, into entry `i` that `me` reserved: claims the ring's oldest
    /// message of `min..=cap` bytes, moves it into the entry (copies it; pooled: hands the
    /// slot's buffer over, "Pooled leases"), holds the entry, then releases the slot. Returns
    /// its position and length. `step(n)` is called after step 3's claim (n = 1), the move (2)
    /// and the hold (3), and in the pooled layout within the move after the entry recorded the
    /// hand-over (4) and after it took the slot's buffer (5) (in time: 1, 4, 5, 2, 3); it
    /// returns false to stop there, as a process killed at that point would (for the kill
    /// tests and the loom model; the library passes a function that returns true). `mutant` is
    /// `Mutant::None` in the library: the loom models' mutants break one ordering and loom
    /// finds the loss.
    #[allow(clippy::too_many_arguments)]
    pub fn take_from_ring(
        &self,
        ring: &Ring<'_>,
        i: u32,
        me: u32,
        (min, cap): (u64, u64),
        skipped: &mut u64,
        mut step: impl FnMut(u32) -> bool,
        mutant: Mutant,
    ) -> Result<Option<(u64, u64)>, GetError> {
        let c = ring.try_claim_read_sized(me, min, cap, skipped)?;
        if !step(1) {
            return Ok(None);
        }
        match ring.slot_buffer(c.pos).filter(|_| self.pooled()) {
            Some(sb) => {
                let (h, eb) = (self.entry(i), self.buffer(i));
                if !hand_over((h, eb, sb), (c.pos, c.len), &mut step, mutant) {
                    return Ok(None);
                }
            }
            None => {
                // SAFETY: we hold the read claim (its len ≤ max_msg bytes are stable until
                // release) and the FILLING entry i (max_msg bytes of payload, ours alone);
                // disjoint regions.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        ring.payload(c.pos),
                        self.payload(i),
                        c.len as usize,
                    )
                };
            }
        }
        if !step(2) {
            return Ok(None);
        }
        if mutant != Mutant::ReleaseBeforeHold {
            let held = self.hold(i, me, c.pos, c.len);
            debug_assert!(held, "an entry the caller reserved");
            if !step(3) {
                return Ok(None);
            }
            let released = ring.release(c.pos, me);
            debug_assert!(released, "a claim this call made");
        } else {
            let released = ring.release(c.pos, me);
            debug_assert!(released, "a claim this call made");
            if !step(3) {
                return Ok(None);
            }
            self.hold(i, me, c.pos, c.len);
        }
        Ok(Some((c.pos, c.len)))
    }

    /// Recovery of a pooled move (acting as `owner`, who died holding the read claim of `pos`
    /// and entry `i` FILLING): finishes [`Leases::hand_over`] from whatever state it stopped
    /// in. Each step checks whether it was done, so a recoverer killed here leaves a state the
    /// next one finishes: not yet bound (the entry's position is not `pos`): record (the entry
    /// still owns its own buffer); entry.buf == swap: take the slot's buffer; slot.buf ==
    /// entry.buf (caught mid-swap): give the slot the swap.
    /// `step(1)` runs after the record, `step(2)` after the entry took the slot's buffer (kill
    /// points, as in `take_from_ring`); false: stopped there.
    fn finish_hand_over(
        &self,
        (sb, i): (&SlotBuffer, u32),
        (pos, len): (u64, u64),
        bound: bool,
        step: &mut impl FnMut(u32) -> bool,
    ) -> bool {
        let (h, eb) = (self.entry(i), self.buffer(i));
        // ORDERING (all here): Relaxed: we act as the dead owner, whose stores are visible to
        // the holder of its liveness lock (the kernel's lock hand-over orders them).
        if !bound {
            // ORDERING: as above.
            let e = eb.buf.load(Ordering::Relaxed);
            // ORDERING: as above.
            eb.swap.store(e, Ordering::Relaxed);
            // ORDERING: as above.
            h.len.store(len, Ordering::Relaxed);
            // ORDERING: as above.
            h.pos.store(pos, Ordering::Relaxed);
        }
        if !step(1) {
            return false;
        }
        // ORDERING: as above.
        let e = eb.swap.load(Ordering::Relaxed);
        // ORDERING: as above.
        if eb.buf.load(Ordering::Relaxed) == e {
            // ORDERING: as above.
            let s = sb.buf.load(Ordering::Relaxed);
            // ORDERING: as above.
            eb.buf.store(s, Ordering::Relaxed);
        }
        if !step(2) {
            return false;
        }
        // ORDERING: as above.
        if sb.buf.load(Ordering::Relaxed) == eb.buf.load(Ordering::Relaxed) {
            // ORDERING: as above.
            sb.buf.store(e, Ordering::Relaxed);
        }
        true
    }

    /// Recovery step a for `owner` (dead; the caller acts as `owner`, holding its liveness
    /// lock): every ring slot `READING(owner)` is released, after its message was moved into
    /// one of `owner`'s `FILLING` entries unless a `HELD(owner)` entry already records its
    /// position (pooled: the entry the dead getter bound to the slot, if it got that far, and
    /// the hand-over finished). `step(n)` is a kill point, as in `take_from_ring`: it runs
    /// between the move (and hold) and the release (n = 3), and in the pooled layout within the
    /// move after the record (1) and after the entry took the slot's buffer (2); false stops
    /// the recovery there, as a recoverer killed at that point. Returns the number of slots
    /// released.
    pub fn recover_reads(
        &self,
        ring: &Ring<'_>,
        owner: u32,
        mut step: impl FnMut(u32) -> bool,
    ) -> u64 {
        let cap = ring.capacity();
        let reading: Vec<(u64, u64)> = ring
            .held_slots()
            .filter_map(|b| {
                let (lap, phase, o) = unpack(b.state);
                (o == owner && phase == READING).then_some((lap, b.pos))
            })
            .collect();
        let mut released = 0;
        for &(lap, index) in &reading {
            let pos = lap * cap + index;
            if !self.holds_position(owner, lap, index, cap) {
                let len = ring.claimed_len(pos);
                match ring.slot_buffer(pos) {
                    Some(sb) if self.pooled() => {
                        // The entry the dead getter bound to this slot, else one it bound to
                        // none of its slots (it had reserved one for each before claiming).
                        let bound = self.filling_at(owner, lap, index, cap);
                        let Some(i) = bound.or_else(|| {
                            self.filling_where(owner, |p| {
                                !reading.iter().any(|&(l, x)| same_position(p, l, x, cap))
                            })
                        }) else {
                            continue; // nowhere to move it: the ring's recovery counts it lost
                        };
                        if !self.finish_hand_over((sb, i), (pos, len), bound.is_some(), &mut step) {
                            return released;
                        }
                        self.hold(i, owner, pos, len);
                    }
                    _ => {
                        let Some(i) = self.filling_of(owner) else {
                            continue; // nowhere to move it: the ring's recovery counts it lost
                        };
                        // SAFETY: acting as `owner`, we hold its read claim on the slot (`len`
                        // ≤ max_msg stable bytes) and its FILLING entry i; disjoint regions.
                        unsafe {
                            core::ptr::copy_nonoverlapping(
                                ring.payload(pos),
                                self.payload(i),
                                len as usize,
                            )
                        };
                        self.hold(i, owner, pos, len);
                    }
                }
                if !step(3) {
                    return released;
                }
            }
            if ring.release(pos, owner) {
                released += 1;
            }
        }
        released
    }

    /// A `FILLING(owner)` entry whose recorded position is `pos` (lap and slot index): the
    /// entry a dead pooled getter bound to that slot.
    fn filling_at(&self, owner: u32, lap: u64, index: u64, cap: u64) -> Option<u32> {
        self.filling_where(owner, |p| same_position(p, lap, index, cap))
    }

    /// The first `FILLING(owner)` entry whose recorded position satisfies `f`.
    fn filling_where(&self, owner: u32, f: impl Fn(u64) -> bool) -> Option<u32> {
        (0..self.count).find(|&i| {
            let e = self.entry(i);
            // ORDERING: Relaxed: as in `filling_of`.
            let (_, phase, o) = unpack(e.state.load(Ordering::Relaxed));
            // ORDERING: Relaxed: the owner's own store (we act as it).
            phase == FILLING && o == owner && f(e.pos.load(Ordering::Relaxed))
        })
    }

    /// Pooled layout: whether the buffer indices of the ring's slots and of the entries are
    /// together a permutation of the pool (the invariant; for tests, on a quiet queue).
    pub fn buffers_permute(&self, ring: &Ring<'_>) -> bool {
        let n = ring.buffers();
        if !self.pooled() || n != ring.capacity() + u64::from(self.count) {
            return false;
        }
        let mut seen = vec![false; n as usize];
        let slots = (0..ring.capacity()).map(|x| {
            // ORDERING: Relaxed: a check on a quiet queue.
            ring.slot_buffer(x)
                .map_or(u64::MAX, |b| b.buf.load(Ordering::Relaxed))
        });
        let entries = (0..self.count).map(|i| self.buffer_index(i));
        for b in slots.chain(entries) {
            match seen.get_mut(b as usize) {
                Some(s) if !*s => *s = true,
                _ => return false,
            }
        }
        true
    }

    /// Entries `HELD` or `RETURNED` now: messages taken and not yet acknowledged.
    pub fn outstanding(&self) -> u64 {
        (0..self.count)
            .filter(|&i| {
                // ORDERING: Relaxed: a statistic.
                let (_, phase, _) = unpack(self.entry(i).state.load(Ordering::Relaxed));
                matches!(phase, HELD | RETURNED)
            })
            .count() as u64
    }
}

/// [`Leases::payload`] in the pooled layout: the buffer that `b` (an entry's record) names, in
/// the pool of `buffers` buffers of `buf_stride` bytes at `pool`. Out of line and without
/// `&Leases` (whose fields would all be spilled to pass it), so that the inline layout's gets
/// keep their code as it was (measured with callgrind and perf/lease_cost.c).
#[inline(never)]
fn pooled_payload(pool: *mut u8, buf_stride: usize, buffers: u64, b: &SlotBuffer) -> *mut u8 {
    // ORDERING: Relaxed: read by the entry's owner, or after the state word handed it over.
    // Clamped, so that a corrupted index still names a pool buffer (buffers ≥ 2).
    let buf = b.buf.load(Ordering::Relaxed).min(buffers - 1);
    // SAFETY: buf < buffers, and `Leases::with_pool` was promised `buffers` buffers of
    // buf_stride bytes at `pool`.
    unsafe { pool.add(buf as usize * buf_stride) }
}

/// Pooled get, the move (module docs, "Pooled leases"): an entry (header `h`, record `eb`;
/// FILLING, ours) records its buffer `e` as the swap, the message's position and length; takes
/// the slot's buffer `s`; gives `e` to the slot (`sb`, whose read claim of `pos` we hold). False
/// if `step` stopped it. (Out of line and without `&Leases`, as `pooled_payload`.)
#[inline(never)]
fn hand_over(
    (h, eb, sb): (&LeaseHeader, &SlotBuffer, &SlotBuffer),
    (pos, len): (u64, u64),
    step: &mut impl FnMut(u32) -> bool,
    mutant: Mutant,
) -> bool {
    // ORDERING (all the loads and stores here): Relaxed: the entry is ours (FILLING) and
    // the slot's record too (its read claim, which acquired it); both are handed over by
    // the Release stores of `hold` and `Ring::release`, and to a recoverer by our death.
    let e = eb.buf.load(Ordering::Relaxed);
    // ORDERING: as above.
    let s = sb.buf.load(Ordering::Relaxed);
    if mutant == Mutant::SlotBeforeRecord {
        // ORDERING: as above.
        sb.buf.store(e, Ordering::Relaxed);
        if !step(4) {
            return false;
        }
    }
    // The record: the swap first, the position last (the position binds the entry to
    // this slot for recovery, and the swap must be right once it does).
    // ORDERING: as above.
    eb.swap.store(e, Ordering::Relaxed);
    // ORDERING: as above.
    h.len.store(len, Ordering::Relaxed);
    // ORDERING: as above.
    h.pos.store(pos, Ordering::Relaxed);
    if mutant != Mutant::SlotBeforeRecord && !step(4) {
        return false;
    }
    // ORDERING: as above.
    eb.buf.store(s, Ordering::Relaxed);
    if !step(5) {
        return false;
    }
    if mutant != Mutant::SlotBeforeRecord {
        // ORDERING: as above.
        sb.buf.store(e, Ordering::Relaxed);
    }
    true
}

/// Whether ring position `p` is the one of slot `index` in lap `lap` (as a slot word stores it).
fn same_position(p: u64, lap: u64, index: u64, cap: u64) -> bool {
    p % cap == index && (p / cap) & LAP_MASK == lap
}

/// One handle's leases, oldest first: a lock-free FIFO of entry indices, process-local (it
/// lives in the handle, not in the segment: what a dead process held is found in the table).
///
/// It replaces a mutex-guarded list on the get and `task_done` paths (two read-modify-writes
/// each) with one read-modify-write each: `push` takes a ticket `p` (`fetch_add`) and stores
/// `tag(p) | entry` into cell `p % m`; `pop` checks that the cells from `popped` on carry their
/// tickets' tags and moves `popped` past them with one CAS. `m` is the number of lease entries
/// `n` rounded up to a power of two (a mask, not a division, picks the cell): a handle never
/// holds more than `n` entries, so a cell is never written again before the ticket that last
/// wrote it was popped and its entry acknowledged (ticket `q ≥ p + m` is pushed only when the
/// handle holds fewer than `n` entries, i.e. after the pops up to `p` and their acks), and a
/// popper may read its cells after its CAS. The tag is the ticket's lap `p / m` plus one
/// (32 bits): never the lap of the ticket the cell held before, nor 0 (a fresh cell).
pub struct Order {
    cells: Box<[AtomicU64]>,
    shift: u32,
    pushed: AtomicU64,
    popped: AtomicU64,
}

impl Order {
    /// An empty order for a table of `n` entries (no allocation for 0). Its cells are zeroed by
    /// the allocator: pages the handle never leases into are never touched.
    pub fn new(n: u32) -> Self {
        let m = if n == 0 {
            0
        } else {
            // (In u64: u32::next_power_of_two would overflow above 2³¹.)
            u64::from(n).next_power_of_two() as usize
        };
        #[cfg(loom)]
        let cells = (0..m).map(|_| AtomicU64::new(0)).collect();
        #[cfg(not(loom))]
        let cells = {
            let zeroed = vec![0u64; m].into_boxed_slice();
            // SAFETY: AtomicU64 has the size, alignment and bit validity of u64 (std docs), so
            // a boxed slice of u64 is one of AtomicU64 of the same length and allocation.
            unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [AtomicU64]) }
        };
        Order {
            cells,
            shift: m.max(1).trailing_zeros(),
            pushed: AtomicU64::new(0),
            popped: AtomicU64::new(0),
        }
    }

    /// The cell of ticket `p`.
    #[inline]
    fn cell(&self, p: u64) -> &AtomicU64 {
        // (m is a power of two: m - 1 masks; `new` made m cells.)
        &self.cells[(p & (self.cells.len() as u64 - 1)) as usize]
    }

    /// The tag ticket `p` stores with its entry, in the high 32 bits (type docs).
    #[inline]
    fn tag(&self, p: u64) -> u64 {
        u64::from(((p >> self.shift) as u32).wrapping_add(1)) << 32
    }

    /// Appends entry `i`, which the handle now holds.
    #[inline]
    pub fn push(&self, i: u32) {
        if self.cells.is_empty() {
            return;
        }
        // ORDERING: Relaxed: the ticket only picks the cell; the cell's Release store below
        // publishes the entry to the popper (its Acquire load).
        let p = self.pushed.fetch_add(1, Ordering::Relaxed);
        // ORDERING: Release pairs with the Acquire loads in `pop`.
        self.cell(p)
            .store(self.tag(p) | u64::from(i), Ordering::Release);
    }

    /// Removes the `k` oldest entries and calls `each` on them, oldest first; all of them or,
    /// if fewer than `k` are here (pushes still under way count as not here), none (false).
    #[inline]
    pub fn pop(&self, k: u64, mut each: impl FnMut(u32)) -> bool {
        if k == 0 {
            return true;
        }
        if k > self.cells.len() as u64 {
            return false;
        }
        // The entries are read before the CAS that wins them, so that a push into a cell the
        // CAS frees (another thread's, before this one's `each` ran) cannot change what this
        // popper reports. `rest` allocates only when k > 1 (task_done(n) with n > 1).
        let mut rest: Vec<u32> = Vec::new();
        loop {
            // ORDERING: Acquire pairs with the AcqRel CAS of the previous popper.
            let p = self.popped.load(Ordering::Acquire);
            rest.clear();
            let mut first = 0u32;
            let mut ready = true;
            for q in p..p + k {
                // ORDERING: Acquire pairs with `push`'s Release store: the tag proves the entry.
                let v = self.cell(q).load(Ordering::Acquire);
                if v >> 32 != self.tag(q) >> 32 {
                    ready = false;
                    break;
                }
                if q == p {
                    first = v as u32;
                } else {
                    rest.push(v as u32);
                }
            }
            if !ready {
                // ORDERING: Relaxed: a re-read of the same cells decides.
                if self.popped.load(Ordering::Relaxed) == p {
                    return false;
                }
                continue;
            }
            // ORDERING: AcqRel: one popper wins tickets p..p+k. The values read above are
            // those entries': a cell is pushed again only at ticket q + len, which needs
            // popped > q (at most len entries are held), and popped was p <= q until this CAS.
            if self
                .popped
                .compare_exchange(p, p + k, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                each(first);
                for &i in &rest {
                    each(i);
                }
                return true;
            }
        }
    }

    /// Number of entries held (exact when no push or pop runs).
    pub fn len(&self) -> u64 {
        // ORDERING: Relaxed: a count for statistics.
        let popped = self.popped.load(Ordering::Relaxed);
        // ORDERING: Relaxed: as above.
        self.pushed.load(Ordering::Relaxed).saturating_sub(popped)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod order_tests {
    use super::Order;

    #[test]
    fn pops_in_push_order_all_or_none() {
        let o = Order::new(3); // 4 cells
        assert!(!o.pop(1, |_| unreachable!()));
        for lap in 0..10u32 {
            o.push(lap);
            o.push(lap + 100);
            o.push(lap + 200);
            assert_eq!(o.len(), 3);
            assert!(!o.pop(4, |_| unreachable!()), "more than held: nothing");
            let mut got = vec![];
            assert!(o.pop(2, |i| got.push(i)));
            assert!(o.pop(1, |i| got.push(i)));
            assert_eq!(got, [lap, lap + 100, lap + 200]);
            assert!(!o.pop(1, |_| unreachable!()));
            assert!(o.is_empty());
        }
    }

    #[test]
    fn threads_pop_each_pushed_entry_once() {
        let o = std::sync::Arc::new(Order::new(8));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let ts: Vec<_> = (0..2u32)
            .map(|t| {
                let (o, seen) = (o.clone(), seen.clone());
                std::thread::spawn(move || {
                    for k in 0..20_000u32 {
                        // At most 4 per thread pushed and not popped: 8 entries in all.
                        o.push(t << 31 | k);
                        if k % 4 == 3 {
                            let mut n = 0;
                            while n < 4 {
                                if o.pop(1, |i| seen.lock().unwrap().push(i)) {
                                    n += 1;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        let mut v = seen.lock().unwrap().clone();
        v.sort_unstable();
        let mut want: Vec<u32> = (0..2u32)
            .flat_map(|t| (0..20_000).map(move |k| t << 31 | k))
            .collect();
        want.sort_unstable();
        assert_eq!(v, want);
    }
}
