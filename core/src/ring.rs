//! The lock-free bounded MPMC ring. Every atomic operation of the queue's data path lives here.
//!
//! # Positions, laps and slot states
//!
//! `tail` and `head` are 64-bit positions that only grow. Position `p` lives in slot
//! `p % capacity` during lap `p / capacity` (any capacity ≥ 1 works: nothing relies on powers of
//! two). Each slot has one 64-bit state word, packed as
//!
//! ```text
//!  63                      19 18    16 15         0
//! +--------------------------+--------+------------+
//! | lap (45 bits, wrapping)  | phase  | owner (16) |
//! +--------------------------+--------+------------+
//! ```
//!
//! and moves, lap after lap, through
//!
//! ```text
//! EMPTY(l) ──put claims──► WRITING(l, me) ──publish──► FULL(l) ──get claims──► READING(l, me)
//!    ▲                         │ abort / writer died                                  │
//!    │                         ▼                                                      │
//!    │                    ABANDONED(l) ──a get skips it──┐         release / reader died
//!    └───────────────────────────────────────────────────┴──────── EMPTY(l+1) ◄───────┘
//! ```
//!
//! Every transition is one CAS (or, for the owner, one store after it checked that it still owns
//! the slot) on that word, so the claimant is recorded *in* the claim: there is no instant at
//! which a slot is claimed by nobody, and a slot held by a dead process can be recognised and
//! moved forward by anyone ([`Ring::recover`]). The 45-bit lap wraps only after 2⁴⁵ laps; a
//! process stalled across that many laps could misplace a stale CAS, which at 10⁹ operations per
//! second on a queue of capacity 1 takes nine hours of continuous traffic, and at any realistic
//! rate far longer.
//!
//! # Put, in three steps
//!
//! 1. Read `tail` = t. If slot t is `EMPTY(lap t)`, CAS it to `WRITING(lap t, me)` — that CAS is
//!    the claim. If it already moved past `EMPTY(lap t)`, someone claimed t: help `tail` from t to
//!    t+1 and retry. If it still holds the previous lap, the queue is full.
//! 2. Help `tail` from t to t+1 (a CAS that fails harmlessly if someone already did), copy the
//!    payload, store the length.
//! 3. Store `FULL(lap t)` with release ordering.
//!
//! # Get, the mirror image
//!
//! 1. Read `head` = h. If slot h is `FULL(lap h)`, CAS it to `READING(lap h, me)`. If it is
//!    `ABANDONED(lap h)`, CAS it to `EMPTY(lap h + 1)`, help `head` along and retry. If it is
//!    `EMPTY`/`WRITING` of lap h (or the previous lap's reader still holds it) the queue is empty
//!    as far as h is concerned. If it moved past lap h, help `head` and retry.
//! 2. Help `head` from h to h+1, copy the payload out.
//! 3. Store `EMPTY(lap h + 1)` with release ordering.
//!
//! A state word for a given `(lap, phase)` is written at most once, and states only move
//! forward, so a CAS can never succeed on a stale view (no ABA within 2⁴⁵ laps). `tail` and
//! `head` are hints kept exact by helping: they only ever move from p to p+1 after slot p was
//! claimed for p's lap, so a slot in `EMPTY(lap t)` proves `tail == t`, and a slot in the previous
//! lap proves the ring is full (puts) or empty (gets) at the moment of that load.
//!
//! # Ordering
//!
//! The payload and the length are plain (relaxed) memory owned by whoever holds the slot; the
//! hand-over happens through the state word only: every state load that may hand the slot over
//! is `Acquire`, and every store that hands it over (`FULL`, `EMPTY(l+1)`, `ABANDONED`) is
//! `Release`. The counters carry no data; their loads and CASes are `Acquire`/`AcqRel` only so
//! that a reader of a counter never sees slot states older than the ones that moved it.
//!
//! # Warm buffers (pooled layout)
//!
//! In a pooled segment (see `layout`) a slot owns a pool buffer through an index, and the indices
//! of all slots are always a permutation of the pool (of a redeliver queue: of the slots and lease
//! entries together, see `lease`, "Pooled leases"). Right after a put claims position `t`, it
//! tries to swap its slot's buffer with the buffer of the slot the last get released (the slot
//! of `head - 1`, `EMPTY` for its next lap), whose bytes are still in the caches; a put+get loop
//! on a queue of 8 × 8 MiB then runs through one warm buffer instead of 64 MiB of cold memory.
//!
//! 1. Record the claimed slot's own buffer `a` in its swap record.
//! 2. CAS the other slot S from `EMPTY(l)` to `SWAPPING(l, t % capacity)`: the claim on S names
//!    the partner slot, whose write claim owns the swap. (S's next position lies past `t`: gets
//!    never pass a claimed position.)
//! 3. Store S's buffer `b` into the claimed slot, then `a` into S (release).
//! 4. Store `EMPTY(l)` back into S (release): S changed its buffer, never its lap.
//!
//! `EMPTY(l) → SWAPPING(l) → EMPTY(l)` is a deliberate ABA on S's state word: harmless, because
//! S had no claim before and has none after, and whoever claims S next reads its buffer index
//! only after that claim (acquiring the release of step 4). While S is `SWAPPING`, puts treat it
//! as busy (they wait, or report full), gets as empty.
//!
//! Crash recovery: a write claim of a dead producer is first taken over with one CAS
//! (`WRITING`/`RECLAIMING` of the dead owner → `RECLAIMING(l, me)`), so exactly one recoverer
//! owns it; if a slot is `SWAPPING` with it as partner, the recoverer finishes the swap from the
//! record (step 3 is idempotent: `a` already in S means done), restores S to `EMPTY(l)`, and only
//! then abandons the claimed slot. A recoverer that dies in turn leaves a `RECLAIMING` claim of
//! a dead owner, recovered the same way. A `SWAPPING` slot is recovered through its partner.
//!
//! FIFO: positions are claimed in counter order and gets claim positions in the same order, so
//! messages leave in the order in which their claims took effect. A get that finds the oldest
//! position still `WRITING` reports empty (or waits) rather than overtaking it.

use crate::layout::{SlotBuffer, SlotHeader};
use crate::sync::{AtomicU64, Ordering};

const OWNER_BITS: u32 = 16;
const PHASE_BITS: u32 = 3;
const LAP_SHIFT: u32 = OWNER_BITS + PHASE_BITS;
/// Mask of the lap field once shifted down (45 bits).
pub const LAP_MASK: u64 = (1 << (64 - LAP_SHIFT)) - 1;
/// Largest owner id a state word can hold.
pub const MAX_OWNER: u32 = (1 << OWNER_BITS) - 1;

/// Slot may be claimed by a producer for this lap.
pub const EMPTY: u64 = 0;
/// A producer (owner) is writing the slot for this lap.
pub const WRITING: u64 = 1;
/// The slot holds a published message of this lap.
pub const FULL: u64 = 2;
/// A consumer (owner) is reading the slot's message of this lap.
pub const READING: u64 = 3;
/// The lap's producer gave the slot up (abort, or death); consumers skip it.
pub const ABANDONED: u64 = 4;
/// Pooled layout: a free slot whose buffer a producer is swapping; the owner field names the
/// partner slot (whose write claim owns the swap), not a participant.
pub const SWAPPING: u64 = 5;
/// Pooled layout: a dead producer's write claim, taken over by a recoverer (owner) that is
/// finishing its swap before abandoning it.
pub const RECLAIMING: u64 = 6;

/// How often a put re-reads a `SWAPPING` slot at the tail before it reports the ring full (a
/// swap lasts a few instructions).
#[cfg(not(loom))]
const SWAP_SPINS: u32 = 64;
#[cfg(loom)]
const SWAP_SPINS: u32 = 1;

/// Packs a state word.
#[inline]
pub fn pack(lap: u64, phase: u64, owner: u32) -> u64 {
    ((lap & LAP_MASK) << LAP_SHIFT) | (phase << OWNER_BITS) | u64::from(owner)
}

/// Unpacks a state word into `(lap, phase, owner)`.
#[inline]
pub fn unpack(s: u64) -> (u64, u64, u32) {
    (
        s >> LAP_SHIFT,
        (s >> OWNER_BITS) & ((1 << PHASE_BITS) - 1),
        (s & u64::from(MAX_OWNER)) as u32,
    )
}

/// Where an operation found the ring blocked: the position and the state word of its slot.
/// A waiter passes it to [`Ring::recover`] once it has waited long enough to suspect a death.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The position the operation could not take.
    pub pos: u64,
    /// The state word that stopped it.
    pub state: u64,
}

impl Blocked {
    /// The owner recorded in the blocking state word, if it is `WRITING`, `READING` or
    /// `RECLAIMING`.
    pub fn owner(&self) -> Option<u32> {
        let (_, phase, owner) = unpack(self.state);
        matches!(phase, WRITING | READING | RECLAIMING).then_some(owner)
    }

    /// Whether a process holds the blocking slot, so that it is worth checking whether that
    /// process died ([`Ring::recover`]): an owner, or a swap (owned by its partner's claim).
    pub fn held(&self) -> bool {
        self.owner().is_some() || unpack(self.state).1 == SWAPPING
    }
}

/// Why a put could not claim a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutError {
    /// The ring is full.
    Full(Blocked),
    /// A state word no correct process writes: the segment is corrupted.
    Corrupt,
}

/// Why a get could not claim a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// The ring is empty (or its oldest message is still being written).
    Empty(Blocked),
    /// The oldest message is longer than the caller's capacity (it stays queued).
    Buffer(u64),
    /// A state word or length no correct process writes: the segment is corrupted.
    Corrupt,
}

/// A view of a ring whose memory (counters and slots) lives elsewhere: in a shared-memory
/// segment, or on the heap in tests.
pub struct Ring<'a> {
    tail: &'a AtomicU64,
    head: &'a AtomicU64,
    slots: *mut u8,
    stride: usize,
    capacity: u64,
    max_msg: u64,
    /// Pooled layout: the first pool buffer; null for the inline layout.
    pool: *mut u8,
    buf_stride: usize,
    /// Pooled layout: number of pool buffers (`capacity`, plus the lease entries' buffers of a
    /// redeliver queue, see `lease`); buffer indices are `< buffers`.
    buffers: u64,
}

// SAFETY: the ring only reaches its slots through atomics and through payload bytes whose
// ownership the slot state words hand over with acquire/release ordering.
unsafe impl Send for Ring<'_> {}
// SAFETY: as above; every method takes `&self` and is safe to call concurrently.
unsafe impl Sync for Ring<'_> {}

/// What a successful read claim lends: the position and the message length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadClaim {
    /// Position of the claimed slot (the token of the claim).
    pub pos: u64,
    /// Length of the message in bytes.
    pub len: u64,
}

impl<'a> Ring<'a> {
    /// Makes a view of a ring.
    ///
    /// # Safety
    ///
    /// `slots` must point to `capacity` slots of `stride` bytes each, valid for reads and writes
    /// for `'a`, each starting with an initialised [`SlotHeader`] (8-byte aligned) followed by at
    /// least `max_msg` payload bytes; `stride` ≥ `size_of::<SlotHeader>() + max_msg`; every process
    /// that touches the memory follows this module's protocol; `capacity` ≥ 1.
    pub unsafe fn new(
        tail: &'a AtomicU64,
        head: &'a AtomicU64,
        slots: *mut u8,
        stride: usize,
        capacity: u64,
        max_msg: u64,
    ) -> Self {
        debug_assert!(capacity >= 1 && stride >= core::mem::size_of::<SlotHeader>());
        Ring {
            tail,
            head,
            slots,
            stride,
            capacity,
            max_msg,
            pool: core::ptr::null_mut(),
            buf_stride: 0,
            buffers: 0,
        }
    }

    /// The same ring in the pooled layout: payloads live in `capacity` buffers of `buf_stride`
    /// bytes at `pool`, and each slot header is followed by a [`SlotBuffer`].
    ///
    /// # Safety
    ///
    /// As for [`Ring::new`], and: `pool` points to `capacity` buffers of `buf_stride` ≥ `max_msg`
    /// bytes, valid for reads and writes for `'a` and disjoint from the slots; `stride` ≥
    /// `size_of::<SlotHeader>() + size_of::<SlotBuffer>()`, each slot's `SlotBuffer` initialised,
    /// their `buf` indices a permutation of `0..capacity`; 2 ≤ `capacity` ≤ 2¹⁶ (the owner field
    /// of a `SWAPPING` word names a slot).
    pub unsafe fn with_pool(mut self, pool: *mut u8, buf_stride: usize) -> Self {
        debug_assert!(
            self.stride >= core::mem::size_of::<SlotHeader>() + core::mem::size_of::<SlotBuffer>()
        );
        debug_assert!(self.capacity >= 2 && self.capacity <= u64::from(MAX_OWNER) + 1);
        self.pool = pool;
        self.buf_stride = buf_stride;
        self.buffers = self.capacity;
        self
    }

    /// The pooled ring of a redeliver queue, whose pool holds `buffers` ≥ capacity buffers: the
    /// lease entries own the others (see `lease`, "Pooled leases"); then the indices of all slots
    /// and all entries together are a permutation of `0..buffers`.
    ///
    /// # Safety
    ///
    /// As for [`Ring::with_pool`], with `buffers` buffers at `pool` instead of `capacity`.
    pub unsafe fn with_buffers(mut self, buffers: u64) -> Self {
        debug_assert!(!self.pool.is_null() && buffers >= self.capacity);
        self.buffers = buffers;
        self
    }

    /// Pooled layout: number of pool buffers (0 for the inline layout).
    pub fn buffers(&self) -> u64 {
        self.buffers
    }

    /// Pooled layout: the buffer index and swap record of the slot of `pos` (None for the
    /// inline layout). Its `buf` is changed only by the holder of the slot's claim (a put's
    /// warm swap, or a leased get's hand-over, see `lease`).
    pub fn slot_buffer(&self, pos: u64) -> Option<&SlotBuffer> {
        (!self.pool.is_null()).then(|| self.buffer_slot(pos % self.capacity))
    }

    /// Initial state word of every slot of a new ring.
    pub const INITIAL_STATE: u64 = 0; // pack(0, EMPTY, 0)

    /// Capacity in messages.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest message in bytes.
    pub fn max_msg(&self) -> u64 {
        self.max_msg
    }

    #[inline]
    fn slot(&self, pos: u64) -> &SlotHeader {
        let index = (pos % self.capacity) as usize;
        // SAFETY: index < capacity, so the slot lies inside the memory `new` was promised, and
        // starts with an initialised SlotHeader.
        unsafe { &*(self.slots.add(index * self.stride) as *const SlotHeader) }
    }

    /// Pooled layout: the buffer index and swap record after slot `index`'s header.
    #[inline]
    fn buffer_slot(&self, index: u64) -> &SlotBuffer {
        debug_assert!(!self.pool.is_null() && index < self.capacity);
        // SAFETY: index < capacity; in the pooled layout (`with_pool`) an initialised SlotBuffer
        // follows each slot header inside the slot's stride.
        unsafe {
            &*(self
                .slots
                .add(index as usize * self.stride + core::mem::size_of::<SlotHeader>())
                as *const SlotBuffer)
        }
    }

    /// Pointer to the payload bytes of the slot of `pos` (valid for `max_msg` bytes). In the
    /// pooled layout, the buffer the slot owns now: call it while holding the slot's claim.
    #[inline]
    pub fn payload(&self, pos: u64) -> *mut u8 {
        let index = pos % self.capacity;
        if self.pool.is_null() {
            // SAFETY: index < capacity; the payload follows the slot header inside the slot.
            return unsafe {
                self.slots
                    .add(index as usize * self.stride + core::mem::size_of::<SlotHeader>())
            };
        }
        // ORDERING: Relaxed: the caller holds the slot's claim, so the index is its own store
        // or was published with the state word its claim acquired. Reduced modulo capacity so
        // that a corrupted index still names a buffer inside the pool (claims report it).
        let buf = self.buffer_slot(index).buf.load(Ordering::Relaxed) % self.buffers;
        // SAFETY: buf < buffers, and the pool holds `buffers` buffers of buf_stride bytes.
        unsafe { self.pool.add(buf as usize * self.buf_stride) }
    }

    /// Whether the buffer index of slot `index` names a pool buffer (always, for the inline
    /// layout). A corrupted segment is reported, rather than read.
    #[inline]
    fn buffer_ok(&self, index: u64) -> bool {
        // ORDERING: Relaxed: read by a caller that acquired the slot's state, as in `payload`.
        self.pool.is_null() || self.buffer_slot(index).buf.load(Ordering::Relaxed) < self.buffers
    }

    /// Warm buffers, steps 1-4 (module docs): after claiming position `t`, swaps its slot's
    /// buffer with the one the last get released, if that slot is free and far enough ahead.
    /// Pooled layout only; `steps` stops it part-way (the loom model's dying producer).
    #[inline]
    fn warm(&self, t: u64, steps: u32) {
        if self.pool.is_null() {
            return;
        }
        // ORDERING: Relaxed: only picks the candidate; the CAS below decides and acquires.
        let h = self.head.load(Ordering::Relaxed);
        // S is the slot of h - 1; its next position is h - 1 + capacity. Gets never pass a
        // claimed position, so h ≤ t and that position is at most t + capacity - 1.
        let Some(next) = (h + self.capacity).checked_sub(1) else {
            return;
        };
        if h == 0 || next <= t || next >= t + self.capacity {
            return;
        }
        let (ti, si) = (t % self.capacity, next % self.capacity);
        let empty = pack(self.lap(next), EMPTY, 0);
        let s = self.slot(si);
        // ORDERING: Relaxed: a cheap check before the CAS.
        if s.state.load(Ordering::Relaxed) != empty || steps == 0 {
            return;
        }
        let (tb, sb) = (self.buffer_slot(ti), self.buffer_slot(si));
        // ORDERING: Relaxed: our own slot's index; we hold its claim.
        let a = tb.buf.load(Ordering::Relaxed);
        // ORDERING: Relaxed: published by the Release of the CAS below.
        tb.swap.store(a, Ordering::Relaxed);
        if steps == 1 {
            return;
        }
        // ORDERING: AcqRel: Acquire pairs with the Release store of EMPTY by the get that last
        // read S's buffer (its reads happen before our writes into that buffer); Release makes
        // the swap record visible to whoever acquires SWAPPING (recovery).
        if s.state
            .compare_exchange(
                empty,
                pack(self.lap(next), SWAPPING, ti as u32),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
            || steps == 2
        {
            return;
        }
        // ORDERING: Relaxed: S is ours while SWAPPING; its index was acquired with the CAS.
        let b = sb.buf.load(Ordering::Relaxed);
        // ORDERING: Relaxed: ordered before the Release store below.
        tb.buf.store(b, Ordering::Relaxed);
        if steps == 3 {
            return;
        }
        // ORDERING: Release: whoever acquires `a` in S (recovery) also sees our slot's new index.
        sb.buf.store(a, Ordering::Release);
        if steps == 4 {
            return;
        }
        // ORDERING: Release pairs with the Acquire of the put that claims S next: it sees S's
        // new index.
        s.state.store(empty, Ordering::Release);
    }

    /// Recovery, for the holder of the write claim on slot `ti` (pooled layout): finishes the
    /// swap that claim's dead producer left in the middle, if a slot is still `SWAPPING` with
    /// `ti` as partner (step 3 again, which is idempotent, then step 4).
    fn finish_swap(&self, ti: u64) {
        for si in (0..self.capacity).filter(|&si| si != ti) {
            let s = self.slot(si);
            // ORDERING: Acquire pairs with the Release of the CAS to SWAPPING: the swap record
            // written before it is visible.
            let st = s.state.load(Ordering::Acquire);
            let (lap, phase, partner) = unpack(st);
            if phase != SWAPPING || u64::from(partner) != ti {
                continue;
            }
            let (tb, sb) = (self.buffer_slot(ti), self.buffer_slot(si));
            // ORDERING: Relaxed: visible through the Acquire above.
            let a = tb.swap.load(Ordering::Relaxed);
            // ORDERING: Acquire pairs with the swapper's Release store of `a`: if we see it, we
            // also see the index it stored into our slot before.
            let b = sb.buf.load(Ordering::Acquire);
            if b != a {
                // ORDERING: Relaxed, then Release: as in `warm`.
                tb.buf.store(b, Ordering::Relaxed);
                // ORDERING: see above.
                sb.buf.store(a, Ordering::Release);
            }
            // ORDERING: Release, as in `warm`; a CAS, because only the state we saw may move.
            let _ = s.state.compare_exchange(
                st,
                pack(lap, EMPTY, 0),
                Ordering::Release,
                Ordering::Relaxed,
            );
            return;
        }
    }

    #[inline]
    fn lap(&self, pos: u64) -> u64 {
        (pos / self.capacity) & LAP_MASK
    }

    /// Moves `counter` from `seen` to `seen + 1` unless someone already moved it.
    #[inline]
    fn help(counter: &AtomicU64, seen: u64) {
        // ORDERING: AcqRel/Acquire: the counter carries no data, but whoever reads the new value
        // then loads slot states at least as new as the claim that justified this move.
        let _ = counter.compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Number of messages in the ring (exact when nothing runs concurrently).
    pub fn len(&self) -> u64 {
        // ORDERING: Acquire on head first, then tail: tail can only be ahead of the head we read,
        // so the difference never underflows in a consistent segment.
        let head = self.head.load(Ordering::Acquire);
        // ORDERING: see above.
        let tail = self.tail.load(Ordering::Acquire);
        tail.saturating_sub(head).min(self.capacity)
    }

    /// Whether the ring holds no message (see [`Ring::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Roughly how many messages a get could take now; 0 only if none could, as far as the
    /// slots from `head` on show. For wakers deciding how many sleepers to wake, never for a
    /// claim. Skips slots that readers claimed before moving `head`, so that a reader between
    /// its claim and its move of `head` does not hide the messages behind it.
    pub fn ready_now(&self) -> u32 {
        // ORDERING: Acquire, see `help`.
        let head = self.head.load(Ordering::Acquire);
        for h in head..head.saturating_add(self.capacity) {
            // ORDERING: Acquire pairs with the producer's Release store of FULL in `publish`.
            let (slap, phase, _) = unpack(self.slot(h).state.load(Ordering::Acquire));
            let d = slap.wrapping_sub(self.lap(h)) & LAP_MASK;
            if d == 0 && matches!(phase, FULL | ABANDONED) {
                return self.len().clamp(1, u64::from(u32::MAX)) as u32;
            }
            if !(d == 0 && phase == READING || d == 1) {
                return 0;
            }
        }
        0
    }

    /// Whether the position before `pos` holds a message of its lap that no get has claimed
    /// yet (`FULL`) or that its producer is still writing (`WRITING`): a put of `pos` that sees
    /// it may leave the wake-up to the chain of gets (`wait::notify_unless_behind`).
    pub fn unclaimed_before(&self, pos: u64) -> bool {
        let Some(p) = pos.checked_sub(1) else {
            return false;
        };
        // ORDERING: Acquire; the caller's SeqCst fence orders this load after its publish.
        let (slap, phase, _) = unpack(self.slot(p).state.load(Ordering::Acquire));
        slap == self.lap(p) && matches!(phase, FULL | WRITING)
    }

    /// Roughly how many slots a put could claim now; 0 only if none could, as far as the slots
    /// from `tail` on show (see [`Ring::ready_now`]).
    pub fn free_now(&self) -> u32 {
        // ORDERING: Acquire, see `help`.
        let tail = self.tail.load(Ordering::Acquire);
        for t in tail..tail.saturating_add(self.capacity) {
            // ORDERING: Acquire pairs with the Release store of EMPTY in `release` (or `skip`).
            let (slap, phase, _) = unpack(self.slot(t).state.load(Ordering::Acquire));
            let d = slap.wrapping_sub(self.lap(t)) & LAP_MASK;
            if d == 0 && phase == EMPTY {
                let free = self.capacity - self.len();
                return free.clamp(1, u64::from(u32::MAX)) as u32;
            }
            if d != 0 || !matches!(phase, WRITING | FULL | READING | ABANDONED) {
                return 0;
            }
        }
        0
    }

    /// Put, step 1: claims the slot at the tail for `me`. Returns its position (the token).
    pub fn try_claim_write(&self, me: u32) -> Result<u64, PutError> {
        self.scan_write(me, true, u32::MAX)
    }

    /// [`Ring::try_claim_write`] by a producer that dies after `steps` steps of its buffer swap
    /// (0: before it, 5: after it): for the tests and the loom model of a crash in a swap.
    #[doc(hidden)]
    pub fn try_claim_write_dying(&self, me: u32, steps: u32) -> Result<u64, PutError> {
        self.scan_write(me, true, steps)
    }

    /// Whether a put could claim a slot now, without claiming it: `Ok(position)` if the slot at
    /// the tail is free, else what a put would report. For waiters that must not take anything
    /// (an asyncio task that may be cancelled).
    pub fn peek_write(&self) -> Result<u64, PutError> {
        self.scan_write(0, false, 0)
    }

    fn scan_write(&self, me: u32, claim: bool, steps: u32) -> Result<u64, PutError> {
        // ORDERING: Acquire, see `help`.
        let mut t = self.tail.load(Ordering::Acquire);
        let mut swap_spins = 0;
        loop {
            let lap = self.lap(t);
            let slot = self.slot(t);
            // ORDERING: Acquire pairs with the Release store of EMPTY(lap) in `release` (or
            // `skip`): the previous reader's payload reads happen before our writes.
            let s = slot.state.load(Ordering::Acquire);
            let (slap, phase, _) = unpack(s);
            let d = slap.wrapping_sub(lap) & LAP_MASK;
            if d == 0 && phase == EMPTY {
                if !claim {
                    return Ok(t);
                }
                // ORDERING: Acquire on success, as for the load above; Relaxed on failure, as
                // the loop reloads everything.
                if slot
                    .state
                    .compare_exchange(
                        s,
                        pack(lap, WRITING, me),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    Self::help(self.tail, t);
                    self.warm(t, steps);
                    return Ok(t);
                }
            } else if d == 0 && phase == SWAPPING {
                // Free, but a producer is swapping its buffer (pooled layout): busy for a few
                // instructions. Re-read it a little, then report it as full (a waiter recovers it
                // if the swapper died).
                if swap_spins < SWAP_SPINS {
                    swap_spins += 1;
                    crate::sync::spin_hint();
                    continue;
                }
                // ORDERING: Acquire, see `help`.
                let now = self.tail.load(Ordering::Acquire);
                if now == t {
                    return Err(PutError::Full(Blocked { pos: t, state: s }));
                }
                t = now;
                continue;
            } else if d == 0 || d == 1 {
                // Claimed for this lap already; its claimant may have died before moving tail.
                Self::help(self.tail, t);
            } else {
                // ORDERING: Acquire, see `help`.
                let now = self.tail.load(Ordering::Acquire);
                if now == t {
                    if d == LAP_MASK {
                        return Err(PutError::Full(Blocked { pos: t, state: s }));
                    }
                    return Err(PutError::Corrupt);
                }
                t = now;
                continue;
            }
            // ORDERING: Acquire, see `help`.
            t = self.tail.load(Ordering::Acquire);
        }
    }

    fn owned(&self, pos: u64, phase: u64, me: u32) -> Option<&SlotHeader> {
        let slot = self.slot(pos);
        // ORDERING: Relaxed: only `me` moves a slot out of (lap, phase, me), so this load sees
        // our own last store; it only checks that the token names a claim we hold.
        (slot.state.load(Ordering::Relaxed) == pack(self.lap(pos), phase, me)).then_some(slot)
    }

    /// Put, step 3: publishes the slot claimed at `pos` as a message of `len` bytes.
    /// Returns false (and changes nothing) if `me` does not hold a write claim on `pos` or
    /// `len` exceeds the max message size.
    pub fn publish(&self, pos: u64, len: u64, me: u32) -> bool {
        let Some(slot) = self.owned(pos, WRITING, me) else {
            return false;
        };
        if len > self.max_msg {
            return false;
        }
        // ORDERING: Relaxed: published by the Release store below.
        slot.len.store(len, Ordering::Relaxed);
        // ORDERING: Release pairs with the Acquire state load in `try_claim_read`: the payload
        // and the length written above are visible to the consumer that sees FULL.
        slot.state
            .store(pack(self.lap(pos), FULL, 0), Ordering::Release);
        true
    }

    /// Put, alternative step 3: gives up the write claim at `pos`; consumers skip the slot.
    /// Returns false if `me` does not hold a write claim on `pos`.
    pub fn abandon(&self, pos: u64, me: u32) -> bool {
        let Some(slot) = self.owned(pos, WRITING, me) else {
            return false;
        };
        // ORDERING: Release pairs with the consumer's Acquire load that then skips the slot, so
        // our (discarded) payload writes happen before the next producer's.
        slot.state
            .store(pack(self.lap(pos), ABANDONED, 0), Ordering::Release);
        true
    }

    /// Get, step 1: claims the message at the head for `me`, if it fits in `cap` bytes.
    /// `skipped` is increased by the number of abandoned slots the call skipped (producers may be
    /// waiting for them).
    pub fn try_claim_read(
        &self,
        me: u32,
        cap: u64,
        skipped: &mut u64,
    ) -> Result<ReadClaim, GetError> {
        self.scan_read(me, 0, cap, skipped, true)
    }

    /// [`Ring::try_claim_read`] of a message of `min..=cap` bytes: a message of another length
    /// stays queued, reported as `GetError::Buffer(its length)` (exact-size batches).
    pub fn try_claim_read_sized(
        &self,
        me: u32,
        min: u64,
        cap: u64,
        skipped: &mut u64,
    ) -> Result<ReadClaim, GetError> {
        self.scan_read(me, min, cap, skipped, true)
    }

    /// Whether a get could claim a message now, without claiming it: `Ok` with the oldest
    /// message's position and length, else what a get would report (abandoned slots on the way
    /// are skipped, as a get would). For waiters that must not take anything.
    pub fn peek_read(&self, skipped: &mut u64) -> Result<ReadClaim, GetError> {
        self.scan_read(0, 0, u64::MAX, skipped, false)
    }

    fn scan_read(
        &self,
        me: u32,
        min: u64,
        cap: u64,
        skipped: &mut u64,
        claim: bool,
    ) -> Result<ReadClaim, GetError> {
        // ORDERING: Acquire, see `help`.
        let mut h = self.head.load(Ordering::Acquire);
        loop {
            let lap = self.lap(h);
            let slot = self.slot(h);
            // ORDERING: Acquire pairs with the producer's Release store of FULL in `publish`:
            // the payload and length it wrote are visible once we see FULL.
            let s = slot.state.load(Ordering::Acquire);
            let (slap, phase, _) = unpack(s);
            let d = slap.wrapping_sub(lap) & LAP_MASK;
            if d == 0 && phase == FULL {
                // ORDERING: Relaxed: ordered after the Acquire load of FULL above.
                let len = slot.len.load(Ordering::Relaxed);
                let corrupt = len > self.max_msg || !self.buffer_ok(h % self.capacity);
                if corrupt || len > cap || len < min {
                    // ORDERING: Relaxed: only confirms the slot did not move on while we read
                    // the length (if it did, the length belongs to a later message).
                    if slot.state.load(Ordering::Relaxed) == s {
                        return Err(if corrupt {
                            GetError::Corrupt
                        } else {
                            GetError::Buffer(len)
                        });
                    }
                } else if !claim {
                    return Ok(ReadClaim { pos: h, len });
                } else if slot
                    .state
                    // ORDERING: Acquire on success, as for the load above.
                    .compare_exchange(
                        s,
                        pack(lap, READING, me),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    Self::help(self.head, h);
                    return Ok(ReadClaim { pos: h, len });
                }
            } else if d == 0 && phase == ABANDONED {
                if self.skip(h, s) {
                    *skipped += 1;
                }
            } else if d == 0 && phase == READING || d == 1 {
                // Claimed by a reader already; it may have died before moving head.
                Self::help(self.head, h);
            } else {
                // EMPTY or WRITING of this lap, the previous lap's reader, or garbage.
                // ORDERING: Acquire, see `help`.
                let now = self.head.load(Ordering::Acquire);
                if now == h {
                    let ok = (d == 0 && matches!(phase, EMPTY | WRITING | SWAPPING | RECLAIMING))
                        || (d == LAP_MASK && phase == READING);
                    return Err(if ok {
                        GetError::Empty(Blocked { pos: h, state: s })
                    } else {
                        GetError::Corrupt
                    });
                }
                h = now;
                continue;
            }
            // ORDERING: Acquire, see `help`.
            h = self.head.load(Ordering::Acquire);
        }
    }

    /// Moves an `ABANDONED(lap)` slot at position `h` (state word `s`) to `EMPTY(lap + 1)`.
    fn skip(&self, h: u64, s: u64) -> bool {
        let (lap, _, _) = unpack(s);
        // ORDERING: AcqRel: Acquire pairs with the Release that abandoned the slot, Release
        // with the next producer's Acquire load of EMPTY(lap + 1).
        let ok = self
            .slot(h)
            .state
            .compare_exchange(
                s,
                pack(lap + 1, EMPTY, 0),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            Self::help(self.head, h);
        }
        ok
    }

    /// The length stored in the slot of `pos`: for a caller holding (or acting for the owner
    /// of) its read claim, which ordered this load after the producer's store.
    pub fn claimed_len(&self, pos: u64) -> u64 {
        // ORDERING: Relaxed: the read claim's Acquire (on FULL) orders it.
        self.slot(pos).len.load(Ordering::Relaxed).min(self.max_msg)
    }

    /// Get, step 3: returns the slot read at `pos` to producers. Returns false if `me` does not
    /// hold a read claim on `pos`.
    pub fn release(&self, pos: u64, me: u32) -> bool {
        let Some(slot) = self.owned(pos, READING, me) else {
            return false;
        };
        // ORDERING: Release pairs with the producer's Acquire load of EMPTY(lap + 1) in
        // `try_claim_write`: our payload reads happen before its writes.
        slot.state
            .store(pack(self.lap(pos) + 1, EMPTY, 0), Ordering::Release);
        true
    }

    /// Whether a put finds room for `k` ≥ 1 messages from the tail on: the slot of the `k`-th
    /// position from the tail is free for its lap or already claimed for it (slots free up in
    /// order, so the ones before it are then free or taken too). A hint for a producer that found
    /// the ring full and may wait: see `Queue::put_many`.
    pub fn room_for(&self, k: u64) -> bool {
        // ORDERING: Acquire, see `help`.
        let pos = self.tail.load(Ordering::Acquire) + k.max(1) - 1;
        // ORDERING: Relaxed: a hint only; a claim goes through `scan_write`, which re-reads
        // with the ordering the hand-over needs.
        let (slap, _, _) = unpack(self.slot(pos).state.load(Ordering::Relaxed));
        slap == self.lap(pos)
    }

    /// Batch put, a following claim: claims position `pos` for `me` if its slot is `EMPTY` for
    /// `pos`'s lap, without reading or moving `tail`. For a caller that holds (or held) the claim
    /// of `pos - 1` and has not yet moved `tail` past it: the run of positions it claims stays
    /// contiguous, in order, and each position is still claimed by exactly one CAS. Returns false
    /// (claiming nothing) otherwise; the caller then settles `tail` and claims the usual way.
    pub fn claim_write_at(&self, pos: u64, me: u32) -> bool {
        let lap = self.lap(pos);
        let slot = self.slot(pos);
        // ORDERING: Acquire, as in `scan_write`: the previous reader's payload reads happen
        // before our writes.
        let s = slot.state.load(Ordering::Acquire);
        let claimed = s == pack(lap, EMPTY, 0)
            // ORDERING: Acquire on success, as for the load above; Relaxed on failure (nothing
            // is claimed, nothing read).
            && slot
                .state
                .compare_exchange(s, pack(lap, WRITING, me), Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        if claimed {
            self.warm(pos, u32::MAX);
        }
        claimed
    }

    /// Batch get, a following claim: claims the message at position `pos` for `me` if its slot
    /// is `FULL` for `pos`'s lap and the message fits in `cap` bytes, without reading or moving
    /// `head` (see [`Ring::claim_write_at`]). Returns its length, or None (nothing claimed: the
    /// caller settles `head` and claims the usual way, which also skips abandoned slots).
    pub fn claim_read_at(&self, pos: u64, me: u32, cap: u64) -> Option<u64> {
        self.claim_read_at_sized(pos, me, 0, cap)
    }

    /// [`Ring::claim_read_at`] of a message of `min..=cap` bytes only.
    pub fn claim_read_at_sized(&self, pos: u64, me: u32, min: u64, cap: u64) -> Option<u64> {
        let lap = self.lap(pos);
        let slot = self.slot(pos);
        // ORDERING: Acquire pairs with the producer's Release store of FULL in `publish`.
        let s = slot.state.load(Ordering::Acquire);
        if s != pack(lap, FULL, 0) {
            return None;
        }
        // ORDERING: Relaxed: ordered after the Acquire load of FULL above; the CAS below proves
        // the slot did not move on meanwhile (and so that this is its message's length).
        let len = slot.len.load(Ordering::Relaxed);
        if len > cap || len < min || len > self.max_msg || !self.buffer_ok(pos % self.capacity) {
            return None;
        }
        // ORDERING: Acquire on success, as for the load above.
        slot.state
            .compare_exchange(
                s,
                pack(lap, READING, me),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
            .then_some(len)
    }

    /// Moves `tail` forward to `end` after a run of puts whose positions `first..end` this
    /// caller claimed (the first the usual way, the others with [`Ring::claim_write_at`]).
    ///
    /// A run must be settled before it spans `capacity` positions: a put reads the slot at
    /// `tail` and takes a state more than one lap ahead of it for corruption, which is right
    /// only while every claim beyond `tail` lies within one ring of it. (A run of puts on a
    /// ring that consumers keep emptying could otherwise lap an unsettled `tail`.)
    pub fn settle_tail(&self, first: u64, end: u64) {
        Self::advance(self.tail, first, end);
    }

    /// Moves `head` forward to `end` after a run of gets (see [`Ring::settle_tail`]).
    pub fn settle_head(&self, first: u64, end: u64) {
        Self::advance(self.head, first, end);
    }

    /// Moves `counter` to `end` if it lies in `first..end`: every position in between was claimed
    /// (by the caller), so this is the same as helping it along one position at a time. A counter
    /// already at or past `end` was moved by helpers and stays.
    fn advance(counter: &AtomicU64, first: u64, end: u64) {
        // ORDERING: Acquire, see `help`.
        let mut seen = counter.load(Ordering::Acquire);
        while first <= seen && seen < end {
            // ORDERING: AcqRel/Acquire, see `help`.
            match counter.compare_exchange_weak(seen, end, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => seen = now,
            }
        }
    }

    /// Copies `data` into the ring as one message (non-blocking).
    pub fn try_put(&self, me: u32, data: &[u8]) -> Result<(), PutError> {
        debug_assert!(data.len() as u64 <= self.max_msg);
        let pos = self.try_claim_write(me)?;
        // SAFETY: we hold the write claim on `pos`, so no other process touches its payload;
        // the payload holds max_msg ≥ data.len() bytes and cannot overlap `data` (a caller's
        // slice of its own memory, or a different slot's payload).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.payload(pos), data.len()) };
        let published = self.publish(pos, data.len() as u64, me);
        debug_assert!(published);
        Ok(())
    }

    /// Copies the oldest message into `buf` (non-blocking); returns its length.
    pub fn try_get(&self, me: u32, buf: &mut [u8], skipped: &mut u64) -> Result<usize, GetError> {
        let claim = self.try_claim_read(me, buf.len() as u64, skipped)?;
        // SAFETY: we hold the read claim, so the message's len bytes are stable until release;
        // len ≤ buf.len() was checked by the claim.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.payload(claim.pos),
                buf.as_mut_ptr(),
                claim.len as usize,
            )
        };
        let released = self.release(claim.pos, me);
        debug_assert!(released);
        Ok(claim.len as usize)
    }

    /// Crash recovery: if `seen` (a state word read from the slot of `pos`) is still the slot's
    /// state, and it is `WRITING` or `READING` by an owner for which `is_dead` returns true,
    /// moves it forward: a dead writer's slot becomes `ABANDONED` (its half-written message is
    /// never delivered), a dead reader's slot becomes `EMPTY` of the next lap (the message died
    /// with its consumer). Returns whether this call moved the slot.
    ///
    /// Pooled layout: a dead writer's claim is first taken over as `RECLAIMING(lap, me)` and
    /// its swap finished (module docs); `RECLAIMING` of a dead recoverer is recovered the same
    /// way, and a `SWAPPING` slot through its partner's claim.
    pub fn recover(&self, pos: u64, seen: u64, me: u32, is_dead: impl FnOnce(u32) -> bool) -> bool {
        let (lap, phase, owner) = unpack(seen);
        let slot = self.slot(pos);
        let pooled = !self.pool.is_null();
        if pooled && phase == SWAPPING {
            let partner = u64::from(owner);
            // ORDERING: Relaxed: a cheap check; the partner's recovery decides.
            if partner >= self.capacity || slot.state.load(Ordering::Relaxed) != seen {
                return false;
            }
            // ORDERING: Acquire, as in `try_claim_read`.
            let ps = self.slot(partner).state.load(Ordering::Acquire);
            return matches!(unpack(ps).1, WRITING | RECLAIMING)
                && self.recover(partner, ps, me, is_dead);
        }
        if pooled && (phase == WRITING || phase == RECLAIMING) {
            // ORDERING: Relaxed: a cheap check before the liveness probe; the CAS decides.
            if slot.state.load(Ordering::Relaxed) != seen || !is_dead(owner) {
                return false;
            }
            // ORDERING: AcqRel: Acquire, the dead owner's writes (swap record, indices) happen
            // before ours; Release, as any claim.
            if slot
                .state
                .compare_exchange(
                    seen,
                    pack(lap, RECLAIMING, me),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                return false;
            }
            self.finish_swap(pos % self.capacity);
            // ORDERING: Release, as in `abandon`.
            slot.state.store(pack(lap, ABANDONED, 0), Ordering::Release);
            return true;
        }
        let next = match phase {
            WRITING => pack(lap, ABANDONED, 0),
            READING => pack(lap + 1, EMPTY, 0),
            _ => return false,
        };
        // ORDERING: Relaxed: a cheap check before the liveness probe; the CAS decides.
        if slot.state.load(Ordering::Relaxed) != seen || !is_dead(owner) {
            return false;
        }
        // ORDERING: AcqRel: the dead owner's writes (if any landed) happen before whoever
        // acquires the new state; Release publishes the new state like `abandon`/`release`.
        slot.state
            .compare_exchange(seen, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Moves every slot held by `owner` (in `WRITING`, `READING` or `RECLAIMING`) forward, as
    /// [`Ring::recover`] does for a dead owner. Used when a handle closes with claims still open,
    /// and before a dead participant's id is reused, by a caller that owns the id `owner` (so it
    /// recovers as `owner`). Returns `(slots moved, of which READING)`.
    pub fn recover_all(&self, owner: u32) -> (u64, u64) {
        let (mut moved, mut reading) = (0, 0);
        for index in 0..self.capacity {
            // ORDERING: Acquire, as in `try_claim_read`.
            let s = self.slot(index).state.load(Ordering::Acquire);
            let held = Blocked {
                pos: index,
                state: s,
            }
            .owner()
                == Some(owner);
            // `recover` only needs the slot's index, which `index` (< capacity) is.
            if held && self.recover(index, s, owner, |_| true) {
                moved += 1;
                reading += u64::from(unpack(s).1 == READING);
            }
        }
        (moved, reading)
    }

    /// Every slot currently held by a writer or reader, as `Blocked` records for [`Ring::recover`]
    /// (`pos` is the slot's index).
    pub fn held_slots(&self) -> impl Iterator<Item = Blocked> + '_ {
        (0..self.capacity).filter_map(|index| {
            // ORDERING: Acquire, as in `try_claim_read`.
            let state = self.slot(index).state.load(Ordering::Acquire);
            let b = Blocked { pos: index, state };
            b.owner().map(|_| b)
        })
    }

    /// Whether any slot names `owner` as its writer or reader.
    pub fn names_owner(&self, owner: u32) -> bool {
        (0..self.capacity).any(|pos| {
            // ORDERING: Acquire, as in `try_claim_read`.
            let s = self.slot(pos).state.load(Ordering::Acquire);
            Blocked { pos, state: s }.owner() == Some(owner)
        })
    }
}
