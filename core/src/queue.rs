//! The safe Rust API: a handle on a queue in a named shared-memory segment.
//!
//! ```
//! use fastqueue::Queue;
//! use std::time::Duration;
//!
//! let name = format!("fq-doc-{}", std::process::id());
//! let q = Queue::create(&name, 64, 4, 0o600).unwrap();
//! let peer = Queue::open(&name).unwrap();        // another process would do the same
//! q.put(b"hello", None).unwrap();                  // None: wait as long as it takes
//! let mut buf = [0u8; 64];
//! let n = peer.get(&mut buf, Some(Duration::ZERO)).unwrap();
//! assert_eq!(&buf[..n], b"hello");
//! Queue::unlink(&name).unwrap();
//! ```
//!
//! Timeouts are `Option<Duration>`: `None` waits forever, `Some(Duration::ZERO)` tries once.

use crate::gate::Gate;
use crate::layout::{
    Description, Geometry, Header, Ledger, Participant, SlotBuffer, WaitWord, FLAG_REDELIVER,
    HEADER_SIZE, LAYOUT_VERSION, LEDGER_STRIDE, MAGIC, MAX_LEASES, MAX_PARTICIPANTS,
    PARTICIPANT_FREE, PARTICIPANT_USED, SHUTDOWN_GRACEFUL, SHUTDOWN_IMMEDIATE, SHUTDOWN_NONE,
    SLOT_HEADER_SIZE,
};
use crate::lease::{LeaseControl, Leases, Redelivery};
use crate::ring::{Blocked, GetError, PutError, ReadClaim, Ring};
use crate::shm::{self, Mapping};
use crate::sync::Ordering;
use crate::wait::{
    after_take, block_on, chain, notify, notify_all, notify_unless_behind, wait_until, Attempt,
    SPIN_TIME,
};
use crate::Status;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// How long an opener waits for a segment that is still being created.
pub const OPEN_READY_TIMEOUT: Duration = Duration::from_secs(1);

/// The participant id of an observer handle (see [`Queue::observe`]): it holds no entry and
/// cannot claim slots.
const OBSERVER: u32 = u32::MAX;

/// A handle on a queue. Any number of threads may use one handle at once; each process should
/// have its own handles (after `fork`, use [`Queue::try_clone`] in the child).
pub struct Queue {
    map: Mapping,
    geo: Geometry,
    me: u32,
    pid: u32,
    /// [`fork_generation`] when this handle attached: a different value now means the process
    /// is a child forked since, and the handle its parent's participant (see `check_open`).
    forks: u32,
    /// Calls in flight through the C ABI, and whether the handle is closing (see `gate`).
    gate: Gate,
    /// Redeliver queues: this handle's lease entries, oldest first (`task_done` acknowledges
    /// the front).
    held: crate::lease::Order,
    /// Where this handle's next `reserve` looks first: the entry it acknowledged last (free,
    /// and warm in its caches).
    hint: std::sync::atomic::AtomicU32,
    /// Serialises this handle's recoveries of dead participants: the liveness lock it takes for
    /// one belongs to the handle's open file description, which all its threads share.
    recovering: std::sync::Mutex<()>,
    /// When this handle last looked for dead lease holders (ms since `born`).
    last_scan: std::sync::atomic::AtomicU64,
    born: Instant,
    /// Whether a blocked call leaves with `Status::Interrupted` when a signal interrupts its
    /// sleep (`fq_set_interruptible`); process-local, never in the segment.
    interruptible: std::sync::atomic::AtomicBool,
}

/// How many times this process or its ancestors forked since the library was first used here
/// (see [`fork_generation`]).
static FORKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn count_fork_in_child() {
    // ORDERING: Relaxed: the child has one thread at this point; later loads are in it.
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// The fork generation of this process: a `pthread_atfork` child handler (registered once,
/// at the first attach) counts the forks, so that a handle inherited through `fork` can tell
/// it is in a child (one load, no system call on the hot path).
fn fork_generation() -> u32 {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only increments an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    // ORDERING: Relaxed: see count_fork_in_child.
    FORKS.load(Ordering::Relaxed)
}

/// A read token that names a lease entry (bit 63 set; the entry index below), not a ring
/// position (ring positions stay far below 2⁶³).
const LEASE_TOKEN: u64 = 1 << 63;

/// How often a waiting get or `join` looks for lease holders (and ledger owners) that died.
const DEAD_SCAN: Duration = Duration::from_millis(200);

/// How long an immediate shutdown waits for puts in flight to finish (see `shutdown`).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(20);

fn cname(name: &str) -> Result<CString, Status> {
    CString::new(name).map_err(|_| Status::Invalid)
}

/// Whether `mode` is one a segment may be created with: permission bits only (at most `0o777`;
/// setuid, setgid and sticky bits are refused rather than dropped), the owner can read and write,
/// and the group and others each can read and write or neither (execute bits are ignored).
/// Read without write is refused because anyone who can read the file can take read locks on any
/// of its bytes, which would keep participants from taking their (write) liveness locks — read
/// access would grant the power to deny attaching (whoever can write can do worse anyway, see
/// docs/guide/security.rst). Write without read is refused because it could never attach (a
/// mapping needs read). fastqueue's Python `check_mode` applies the same rule.
pub fn mode_allowed(mode: u32) -> bool {
    let rw = |class: u32| (mode >> class) & 0o6;
    mode <= 0o777 && rw(6) == 0o6 && [0o0, 0o6].contains(&rw(3)) && [0o0, 0o6].contains(&rw(0))
}

/// Where an attacher starts looking in the participant table: differs between processes and
/// between calls (pid, a per-process counter and the clock, mixed).
fn attach_hint() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering as O};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    // ORDERING: Relaxed: only needs to differ from call to call.
    let n = CALLS.fetch_add(1, O::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(std::process::id()) << 32 ^ u64::from(n) << 16 ^ u64::from(nanos);
    // splitmix64's finaliser: spreads every input bit over the result.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as u32
}

/// A test-only pause: when the environment variable `FASTQUEUE_TEST_HOLD` names `point`, the
/// process creates the file named by `FASTQUEUE_TEST_HOLD_FILE` and sleeps for ever there, so
/// that a kill test can SIGKILL it inside a window of the lease protocol. Read once per process;
/// costs one load of a cached value on the paths that call it (redeliver queues only).
#[inline]
fn hold_here(point: &str) {
    static HOLD: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
    if let Some((at, file)) = HOLD.get_or_init(test_hold) {
        hold_at(at, file, point);
    }
}

#[cold]
fn test_hold() -> Option<(String, String)> {
    let at = std::env::var("FASTQUEUE_TEST_HOLD").ok()?;
    Some((
        at,
        std::env::var("FASTQUEUE_TEST_HOLD_FILE").unwrap_or_default(),
    ))
}

#[cold]
fn hold_at(at: &str, file: &str, point: &str) {
    if at == point {
        if !file.is_empty() {
            let _ = std::fs::write(file, point);
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    // A timeout too large to represent is the same as none.
    timeout.and_then(|t| Instant::now().checked_add(t))
}

impl Queue {
    /// Creates the queue `name` (`"name"` or `"/name"`) for `capacity` messages of up to
    /// `max_msg` bytes, with permission bits `mode`.
    pub fn create(name: &str, max_msg: u64, capacity: u64, mode: u32) -> Result<Queue, Status> {
        Self::create_c(&cname(name)?, max_msg, capacity, mode)
    }

    /// [`Queue::create`] with acknowledged delivery: every get leases what it takes to the
    /// handle until [`Queue::task_done`], and a handle that closes or dies gives its leases
    /// back to be delivered again (see `lease`). At most `leases` messages are leased at once
    /// (0: the capacity); a get beyond that waits for an acknowledgement.
    pub fn create_redeliver(
        name: &str,
        max_msg: u64,
        capacity: u64,
        mode: u32,
        leases: u64,
    ) -> Result<Queue, Status> {
        Self::create_ex(
            &cname(name)?,
            max_msg,
            capacity,
            mode,
            FLAG_REDELIVER,
            leases,
        )
    }

    fn bare(map: Mapping, geo: Geometry, me: u32) -> Queue {
        Queue {
            map,
            geo,
            me,
            pid: std::process::id(),
            // (An observer acts as nobody: its fork generation is never checked.)
            forks: fork_generation(),
            gate: Gate::default(),
            // (Attaching handles are made as observers first: they get their order in `attach`.)
            held: crate::lease::Order::new(0),
            hint: std::sync::atomic::AtomicU32::new(0),
            recovering: std::sync::Mutex::new(()),
            last_scan: std::sync::atomic::AtomicU64::new(0),
            born: Instant::now(),
            interruptible: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the queue was created with acknowledged delivery.
    pub fn redeliver(&self) -> bool {
        self.geo.leases != 0
    }

    /// Number of lease entries (0 without acknowledged delivery).
    pub fn lease_count(&self) -> u64 {
        self.geo.leases
    }

    /// Attaches to the existing queue `name`.
    pub fn open(name: &str) -> Result<Queue, Status> {
        Self::open_c(&cname(name)?)
    }

    /// Removes the name `name` if it is a fastqueue segment ([`Status::BadSegment`] or
    /// [`Status::NotReady`] otherwise, and the file stays); attached handles keep working.
    pub fn unlink(name: &str) -> Result<(), Status> {
        Self::unlink_c(&cname(name)?, false)
    }

    /// [`Queue::create`] with a C string.
    pub fn create_c(name: &CStr, max_msg: u64, capacity: u64, mode: u32) -> Result<Queue, Status> {
        Self::create_ex(name, max_msg, capacity, mode, 0, 0)
    }

    /// [`Queue::create_c`] with creation `flags` (`FLAG_REDELIVER`) and, for a redeliver
    /// queue, the number of lease entries (0: the capacity). `Invalid` for unknown flags, or
    /// `leases` without `FLAG_REDELIVER`.
    pub fn create_ex(
        name: &CStr,
        max_msg: u64,
        capacity: u64,
        mode: u32,
        flags: u32,
        leases: u64,
    ) -> Result<Queue, Status> {
        if !mode_allowed(mode) || flags & !FLAG_REDELIVER != 0 || (flags == 0 && leases != 0) {
            return Err(Status::Invalid);
        }
        let leases = if flags & FLAG_REDELIVER != 0 && leases == 0 {
            // (The default, the capacity, is at most MAX_LEASES: a capacity of 2³² would
            // otherwise make a table whose u32 count wraps to 0.)
            capacity.min(MAX_LEASES)
        } else {
            leases
        };
        let mut buf = [0u8; 256];
        shm::normalize(name, &mut buf)?;
        let name = CStr::from_bytes_until_nul(&buf).map_err(|_| Status::Invalid)?;
        let geo = Geometry::with_leases(max_msg, capacity, leases)?;
        let (map, unpublished) = Mapping::create(geo.total_size, mode)?;
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page-aligned, zeroed, and nobody
        // else reads it before `magic` is published below.
        let header = unsafe { &mut *(map.ptr() as *mut Header) };
        let d: &mut Description = &mut header.desc.0;
        d.layout_version = LAYOUT_VERSION;
        d.header_size = HEADER_SIZE as u32;
        d.capacity = geo.capacity;
        d.max_msg = geo.max_msg;
        d.slot_stride = geo.slot_stride;
        d.participants_offset = geo.participants_offset;
        d.slots_offset = geo.slots_offset;
        d.pool_offset = geo.pool_offset;
        d.buf_stride = geo.buf_stride;
        d.total_size = geo.total_size;
        d.max_participants = MAX_PARTICIPANTS;
        d.creator_pid = std::process::id();
        d.flags = flags;
        d.leases = geo.leases;
        d.lease_offset = geo.lease_offset;
        d.lease_stride = geo.lease_stride;
        // Counters, wait words, participants and slot states start at zero, which the fresh
        // pages already hold (every slot state 0 is EMPTY of lap 0). Pooled: slot i starts with
        // buffer i.
        if geo.pool_offset != 0 {
            for i in 0..geo.capacity {
                let at = geo.slots_offset + i * geo.slot_stride + SLOT_HEADER_SIZE;
                // SAFETY: the geometry places a SlotBuffer after each slot header inside the
                // mapping, 8-aligned; nobody else reads the segment before `magic` is published.
                let b = unsafe { &*(map.ptr().add(at as usize) as *const SlotBuffer) };
                // ORDERING: Relaxed: published by the Release store of `magic` below.
                b.buf.store(i, Ordering::Relaxed);
            }
            // A redeliver queue's lease entry j starts with buffer capacity + j (see `lease`,
            // "Pooled leases"): together with the slots', a permutation of the pool; and with
            // no position (`lease::NO_POSITION`), so that recovery never takes a fresh entry for
            // one bound to position 0.
            for j in 0..geo.leases {
                let at = geo.lease_offset + crate::layout::LINE as u64 + j * geo.lease_stride;
                // SAFETY: the pooled geometry places a LeaseHeader and a SlotBuffer at the
                // start of each entry inside the mapping, 8-aligned; nobody else reads the
                // segment yet.
                let (h, b) = unsafe {
                    let p = map.ptr().add(at as usize);
                    (
                        &*(p as *const crate::lease::LeaseHeader),
                        &*(p.add(crate::lease::LEASE_HEADER_SIZE as usize) as *const SlotBuffer),
                    )
                };
                // ORDERING: Relaxed: published by the Release store of `magic` below.
                b.buf.store(geo.capacity + j, Ordering::Relaxed);
                // ORDERING: as above.
                h.pos.store(crate::lease::NO_POSITION, Ordering::Relaxed);
            }
        }
        // ORDERING: Release pairs with the opener's Acquire load of `magic`: everything written
        // above is visible to whoever sees MAGIC.
        d.magic.store(MAGIC, Ordering::Release);
        let q = Self::attach(map, geo)?;
        // Only now, complete and attached, does the segment get its name (exclusively: a taken
        // name fails with `Exists`, and dropping `q` frees the unnamed segment).
        q.map.publish(name, unpublished)?;
        Ok(q)
    }

    /// [`Queue::open`] with a C string.
    pub fn open_c(name: &CStr) -> Result<Queue, Status> {
        let (map, geo) = Self::map_validated(name)?;
        Self::attach(map, geo)
    }

    /// Reads and validates the queue `name` without registering as a participant: the handle
    /// can read sizes, counters and liveness (for tools such as `fastqueue ls`), never put or
    /// get. The segment is never mapped: its header and participant table are copied with
    /// `pread` (a snapshot: sizes and counters are those of this moment, the liveness probes
    /// are live), so a segment shrunk by a writer cannot crash the observer with SIGBUS.
    pub fn observe_c(name: &CStr) -> Result<Queue, Status> {
        let mut buf = [0u8; 256];
        shm::normalize(name, &mut buf)?;
        let name = CStr::from_bytes_until_nul(&buf).map_err(|_| Status::Invalid)?;
        let until = Instant::now() + OPEN_READY_TIMEOUT;
        let want = HEADER_SIZE + MAX_PARTICIPANTS as usize * core::mem::size_of::<Participant>();
        let (map, size) = loop {
            let (map, size) = Mapping::snapshot(name, want, HEADER_SIZE as u64, until)?;
            // SAFETY: the copy holds at least HEADER_SIZE bytes, 4096-aligned, and is ours alone.
            let d = unsafe { &(*(map.ptr() as *const Header)).desc.0 };
            // ORDERING: Relaxed: a private copy nobody else writes.
            match d.magic.load(Ordering::Relaxed) {
                MAGIC => break (map, size),
                0 if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
                0 => return Err(Status::NotReady),
                _ => return Err(Status::BadSegment),
            }
        };
        // SAFETY: as above.
        let d = unsafe { &(*(map.ptr() as *const Header)).desc.0 };
        // The participant table lies right after the header in every valid geometry, so the
        // copy holds it: `participant` reads it there.
        let geo = Geometry::validate(d, size)?;
        debug_assert_eq!(geo.participants_offset, HEADER_SIZE as u64);
        Ok(Queue::bare(map, geo, OBSERVER))
    }

    fn map_validated(name: &CStr) -> Result<(Mapping, Geometry), Status> {
        let mut buf = [0u8; 256];
        shm::normalize(name, &mut buf)?;
        let name = CStr::from_bytes_until_nul(&buf).map_err(|_| Status::Invalid)?;
        let until = Instant::now() + OPEN_READY_TIMEOUT;
        loop {
            let map = Mapping::open(name, HEADER_SIZE as u64, until)?;
            // SAFETY: the mapping holds at least HEADER_SIZE bytes and is page-aligned.
            let d = unsafe { &(*(map.ptr() as *const Header)).desc.0 };
            // ORDERING: Acquire pairs with the creator's Release store of `magic`.
            match d.magic.load(Ordering::Acquire) {
                MAGIC => break,
                0 if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
                0 => return Err(Status::NotReady),
                _ => return Err(Status::BadSegment),
            }
        }
        // The segment is ready, and its creator sized it before publishing `magic`: map it
        // afresh so the mapping covers its final size, then trust nothing in it unchecked.
        let map = Mapping::open(name, HEADER_SIZE as u64, until)?;
        // SAFETY: as above.
        let d = unsafe { &(*(map.ptr() as *const Header)).desc.0 };
        // ORDERING: Acquire, as above (a new mapping of the same memory).
        if d.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Status::BadSegment);
        }
        let geo = Geometry::validate(d, map.len() as u64)?;
        Ok((map, geo))
    }

    /// [`Queue::unlink`] with a C string; `force` removes the name whatever it holds.
    pub fn unlink_c(name: &CStr, force: bool) -> Result<(), Status> {
        let mut buf = [0u8; 256];
        shm::normalize(name, &mut buf)?;
        shm::unlink(
            CStr::from_bytes_until_nul(&buf).map_err(|_| Status::Invalid)?,
            force,
        )
    }

    /// Removes the name `name` only if it still names this handle's segment; `NotFound` if the
    /// name is gone or now names another file (a later queue of that name), which stays.
    pub fn unlink_same_c(&self, name: &CStr) -> Result<(), Status> {
        let mut buf = [0u8; 256];
        shm::normalize(name, &mut buf)?;
        shm::unlink_same(
            CStr::from_bytes_until_nul(&buf).map_err(|_| Status::Invalid)?,
            &self.map,
        )
    }

    /// A new handle on the same segment with its own participant id and liveness lock, even if
    /// the name was unlinked. Call it in a child after `fork()` and close the inherited handle.
    pub fn try_clone(&self) -> Result<Queue, Status> {
        self.participant_only()?;
        Self::attach(self.map.reopen()?, self.geo)
    }

    /// Registers this process in the participant table: the lock decides (see `shm`).
    ///
    /// O(1) lock probes on average: the first pass tries only entries whose word says free
    /// (reading the table costs no system call; each lock probe is one, and the kernel walks
    /// the file's list of locks in each), starting at a random entry so that concurrent
    /// attachers do not all fight over the first free one. Only when no entry looks free does
    /// the second pass probe the used ones, to take over an entry whose owner died.
    fn attach(map: Mapping, geo: Geometry) -> Result<Queue, Status> {
        let mut q = Queue::bare(map, geo, u32::MAX);
        let start = attach_hint() % MAX_PARTICIPANTS;
        let order = (0..MAX_PARTICIPANTS).map(|i| (start + i) % MAX_PARTICIPANTS);
        // Every entry once: those that look free first, then the others (one reading of each
        // word, so an entry that changes meanwhile is still probed once).
        let (mut candidates, rest): (Vec<u32>, Vec<u32>) = order.partition(|&k| {
            // ORDERING: Relaxed: a hint only; the lock decides, and the Acquire load below
            // reads the entry once we hold it.
            q.participant(k).state.load(Ordering::Relaxed) == PARTICIPANT_FREE
        });
        candidates.extend(rest);
        for k in candidates {
            if !q.map.lock_participant(k) {
                continue; // alive elsewhere, or being registered by someone else
            }
            // We hold k's lock, so no live process owns entry k: it is free, or its owner died
            // (then its slots are ours to recover before the id is reused).
            let p = q.participant(k);
            // ORDERING: Acquire pairs with the Release stores of a previous owner.
            if p.state.load(Ordering::Acquire) != PARTICIPANT_FREE {
                q.recover_as(k);
                q.stats_add(|s| &s.reclaimed_participants, 1);
            }
            // ORDERING: Relaxed: informational.
            p.pid.store(q.pid, Ordering::Relaxed);
            // ORDERING: Release: pairs with readers of the table (tools listing participants).
            p.state.store(PARTICIPANT_USED, Ordering::Release);
            q.me = k;
            q.held = crate::lease::Order::new(q.geo.leases.min(u64::from(u32::MAX)) as u32);
            return Ok(q);
        }
        Err(Status::TooMany)
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping was validated to hold the header; it lives as long as self.
        unsafe { &*(self.map.ptr() as *const Header) }
    }

    fn participant(&self, k: u32) -> &Participant {
        debug_assert!(k < MAX_PARTICIPANTS);
        // SAFETY: the validated geometry places MAX_PARTICIPANTS entries at participants_offset
        // inside the mapping; entries are 8 bytes and the offset is 128-aligned.
        unsafe {
            &*(self
                .map
                .ptr()
                .add(self.geo.participants_offset as usize + k as usize * 8)
                as *const Participant)
        }
    }

    fn ring(&self) -> Ring<'_> {
        if self.geo.pool_offset == 0 {
            self.ring_of::<false>()
        } else {
            self.ring_of::<true>()
        }
    }

    /// [`Queue::ring`] of a segment whose layout the caller knows: pooled (`POOLED`) or
    /// inline. A caller that branched on the layout once gets code without the other layout's
    /// cases (the inline view's pool is null, so its pooled paths fold away).
    #[inline(always)]
    fn ring_of<const POOLED: bool>(&self) -> Ring<'_> {
        // An observer holds a copy of the header and participant table only (see observe_c).
        debug_assert!(self.me != OBSERVER, "an observer has no slots");
        debug_assert_eq!(POOLED, self.geo.pool_offset != 0, "the caller's layout");
        let h = self.header();
        // SAFETY: the validated geometry places `capacity` slots of `slot_stride` bytes at
        // `slots_offset` inside the mapping (total_size ≤ mapping length), each starting with a
        // SlotHeader (64-aligned) followed by max_msg payload bytes; the mapping outlives the
        // returned view; every process follows the ring protocol.
        let ring = unsafe {
            Ring::new(
                &h.tail.0,
                &h.head.0,
                self.map.ptr().add(self.geo.slots_offset as usize),
                self.geo.slot_stride as usize,
                self.geo.capacity,
                self.geo.max_msg,
            )
        };
        if !POOLED {
            return ring;
        }
        // SAFETY: pooled geometry (validated): `capacity` (2..=2^16) buffers of `buf_stride` ≥
        // max_msg bytes at `pool_offset`, after the slots and inside the mapping; each 64-byte
        // slot holds a SlotHeader and a SlotBuffer, whose indices the creator initialised to a
        // permutation and every process keeps one (ring protocol).
        // With leases, the pool holds capacity + leases buffers (the entries own the others).
        unsafe {
            ring.with_pool(
                self.map.ptr().add(self.geo.pool_offset as usize),
                self.geo.buf_stride as usize,
            )
            .with_buffers(self.geo.pool_buffers())
        }
    }

    /// The lease table of a redeliver queue (None without one).
    fn leases(&self) -> Option<Leases<'_>> {
        if self.geo.leases == 0 || self.me == OBSERVER {
            return None;
        }
        Some(if self.geo.pool_offset == 0 {
            self.leases_of::<false>()
        } else {
            self.leases_of::<true>()
        })
    }

    /// [`Queue::leases`] of a redeliver queue (not an observer) whose layout the caller knows,
    /// as [`Queue::ring_of`]: the inline view has no pool, so its pooled paths fold away.
    #[inline(always)]
    fn leases_of<const POOLED: bool>(&self) -> Leases<'_> {
        debug_assert!(self.geo.leases != 0 && self.me != OBSERVER);
        debug_assert_eq!(POOLED, self.geo.pool_offset != 0, "the caller's layout");
        let at = self.geo.lease_offset as usize;
        // SAFETY: the validated geometry places a 128-byte LeaseControl line at lease_offset
        // (128-aligned) and `leases` entries of lease_stride bytes right after it, inside the
        // mapping; each entry starts with a LeaseHeader (zeroed: FREE) followed by max_msg
        // bytes, or (pooled) by a SlotBuffer naming one of the pool's capacity + leases
        // buffers of buf_stride bytes (the creator made the indices a permutation); every
        // process follows the lease protocol. Inline layout: pool_buffers() is 0, and the
        // table never uses the pool.
        unsafe {
            let base = self.map.ptr().add(at);
            let table = Leases::new(
                &*(base as *const LeaseControl),
                base.add(crate::layout::LINE),
                self.geo.lease_stride as usize,
                self.geo.leases as u32,
            );
            if !POOLED {
                return table;
            }
            table.with_pool(
                self.map.ptr().add(self.geo.pool_offset as usize),
                self.geo.buf_stride as usize,
                self.geo.pool_buffers(),
            )
        }
    }

    /// Participant `k`'s ledger.
    fn ledger(&self, k: u32) -> &Ledger {
        debug_assert!(k < MAX_PARTICIPANTS && self.me != OBSERVER);
        // SAFETY: the validated geometry places MAX_PARTICIPANTS ledgers of LEDGER_STRIDE bytes
        // at ledger_offset (128-aligned) inside the mapping.
        unsafe {
            &*(self
                .map
                .ptr()
                .add((self.geo.ledger_offset + u64::from(k) * LEDGER_STRIDE) as usize)
                as *const Ledger)
        }
    }

    /// Recovers everything participant `k` holds, acting as `k`: the caller owns `k`'s identity
    /// (holds its liveness lock, as an attacher reusing a dead entry, [`Queue::recover_dead_k`]
    /// or a closing handle does), so nobody else recovers `k` meanwhile. Ring slots, then (on a
    /// redeliver queue) leases, then (without) the ledger. Idempotent: a recoverer killed
    /// half-way leaves states that the next one, acting as `k` again, finishes.
    fn recover_as(&self, k: u32) {
        let ring = self.ring();
        let mut moved = 0;
        if let Some(leases) = self.leases() {
            // Step a (see `lease`): k's reads in progress.
            moved += leases.recover_reads(&ring, k, |n| {
                hold_here(
                    ["", "recover-recorded", "recover-swapping", "recover-held"][n.min(3) as usize],
                );
                true
            });
            // Steps b and c.
            moved += leases.give_back(k);
            if self.shutdown_state() == SHUTDOWN_IMMEDIATE {
                leases.discard_returned();
            }
        } else if k < MAX_PARTICIPANTS {
            self.settle_ledger(k);
        }
        let (m, lost) = ring.recover_all(k);
        self.recovered(moved + m, lost);
    }

    /// Queues without redeliver: counts the messages participant `k` (dead or closing) took
    /// and never marked done as done, so that `join` does not wait for them. One CAS on k's
    /// `forgiven` makes it idempotent; the segment-wide count follows it (a recoverer killed
    /// between the two leaves that count short by what it settled).
    fn settle_ledger(&self, k: u32) {
        let l = self.ledger(k);
        // ORDERING: Acquire: pairs with the Release increments of k's gets and task_dones.
        let taken = l.taken.load(Ordering::Acquire);
        // ORDERING: as above.
        let done = l.done.load(Ordering::Acquire);
        // ORDERING: Acquire/AcqRel: the forgiven count only moves through this CAS.
        let forgiven = l.forgiven.load(Ordering::Acquire);
        let need = taken.saturating_sub(done).saturating_sub(forgiven);
        if need == 0 {
            return;
        }
        if l.forgiven
            .compare_exchange(
                forgiven,
                forgiven + need,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            // ORDERING: Release pairs with the Acquire in `unfinished_given`.
            self.header()
                .control
                .0
                .abandoned
                .fetch_add(need, Ordering::Release);
            notify_all(&self.header().control.0.join);
        }
    }

    /// Recovers participant `k` if it is dead: takes its liveness lock (so it is dead, and
    /// nobody else recovers it meanwhile), recovers as `k`, and drops the lock.
    fn recover_dead_k(&self, k: u32) {
        if k == self.me || k >= MAX_PARTICIPANTS || !self.dead(k) {
            return;
        }
        let Ok(_one) = self.recovering.lock() else {
            return;
        };
        if !self.map.lock_participant(k) {
            return; // alive after all, or being recovered or attached elsewhere
        }
        self.recover_as(k);
        self.map.unlock_participant(k);
    }

    /// Looks (at most every [`DEAD_SCAN`], unless `force`) for dead holders of leases and,
    /// without redeliver, dead participants that took messages they never marked done, and
    /// recovers them.
    fn scan_dead(&self, force: bool) {
        if self.me == OBSERVER {
            return;
        }
        let now = self.born.elapsed().as_millis() as u64;
        // ORDERING: Relaxed: a rate limit local to this handle.
        let last = self.last_scan.load(std::sync::atomic::Ordering::Relaxed);
        if !force && now < last + DEAD_SCAN.as_millis() as u64 {
            return;
        }
        // ORDERING: Relaxed: as above.
        self.last_scan
            .store(now, std::sync::atomic::Ordering::Relaxed);
        let mut owners: Vec<u32> = match self.leases() {
            Some(leases) => leases.holders().collect(),
            None => (0..MAX_PARTICIPANTS)
                .filter(|&k| {
                    let l = self.ledger(k);
                    // ORDERING: Relaxed: a hint; `settle_ledger` re-reads.
                    let (t, d, f) = (
                        l.taken.load(Ordering::Relaxed),
                        l.done.load(Ordering::Relaxed),
                        l.forgiven.load(Ordering::Relaxed),
                    );
                    t > d.saturating_add(f)
                })
                .collect(),
        };
        owners.sort_unstable();
        owners.dedup();
        for k in owners {
            self.recover_dead_k(k);
        }
    }

    fn stats_add(
        &self,
        field: impl FnOnce(&crate::layout::Stats) -> &crate::sync::AtomicU64,
        n: u64,
    ) {
        // ORDERING: Relaxed: statistics only.
        field(&self.header().stats.0).fetch_add(n, Ordering::Relaxed);
    }

    /// This handle, unless another thread is closing it (`Err(Status::Closed)`): the check every
    /// call through the C ABI makes first. It registers nothing: a call is counted as in flight
    /// (see `gate`) only while it waits ([`Queue::waiting`]), so the calls that do not wait pay
    /// no atomic read-modify-write for `fq_close`'s sake.
    ///
    /// In a child forked since this handle attached, the handle is its parent's participant:
    /// acting through it, the child would share the parent's identity (a claim it dies in could
    /// not be recovered while the parent lives), so every call but [`Queue::try_clone`] and
    /// closing fails with [`Status::TooMany`] there (the child needs an entry of its own).
    #[inline]
    pub fn check_open(&self) -> Result<&Queue, Status> {
        let q = self.check_open_for_clone()?;
        // ORDERING: Relaxed: see count_fork_in_child.
        if self.me != OBSERVER && self.forks != FORKS.load(Ordering::Relaxed) {
            return Err(Status::TooMany);
        }
        Ok(q)
    }

    /// [`Queue::check_open`] without the fork check: for `fq_clone`, which a forked child calls
    /// on the handles it inherited.
    #[inline]
    pub fn check_open_for_clone(&self) -> Result<&Queue, Status> {
        if self.gate.is_closing() {
            Err(Status::Closed)
        } else {
            Ok(self)
        }
    }

    /// Counts the calling thread as waiting on this handle until the guard drops, so that a
    /// concurrent `fq_close` wakes it and waits for it to leave (`Err(Status::Closed)` if the
    /// handle is closing already). Every path that sleeps or spins on the segment takes it first.
    fn waiting(&self) -> Result<Waiting<'_>, Status> {
        if self.gate.enter() {
            Ok(Waiting(&self.gate))
        } else {
            Err(Status::Closed)
        }
    }

    /// Starts closing this handle while other threads may be waiting in calls on it: those
    /// return `Err(Status::Closed)` (every waiter on the segment's wait words is woken to
    /// re-check), and calls that check afterwards fail the same way. Returns once no call
    /// waits; the caller then drops the handle.
    pub fn close_shared(&self) {
        self.gate.close();
        if self.gate.drained() {
            // The usual close: no call inside, and none can enter now. Waking the segment's
            // waiters would only disturb other handles' sleepers (a herd).
            return;
        }
        // A call is inside and may sleep on any wait word: wake them all to re-check (other
        // handles' waiters find nothing new and sleep again).
        let h = self.header();
        notify_all(&h.not_empty.0);
        notify_all(&h.not_full.0);
        notify_all(&h.control.0.join);
        while !self.gate.drained() {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Capacity in messages.
    pub fn capacity(&self) -> u64 {
        self.geo.capacity
    }

    /// Largest message in bytes.
    pub fn max_msg(&self) -> u64 {
        self.geo.max_msg
    }

    /// Number of messages queued (exact when nothing runs concurrently).
    pub fn len(&self) -> u64 {
        if self.me != OBSERVER {
            return self.ring().len();
        }
        let h = self.header();
        // ORDERING: Relaxed: a private copy (see observe_c); clamped as Ring::len does.
        let (head, tail) = (
            h.head.0.load(Ordering::Relaxed),
            h.tail.0.load(Ordering::Relaxed),
        );
        tail.saturating_sub(head).min(self.geo.capacity)
    }

    /// `Err(Status::Invalid)` for an observer handle, which has no slots to work on.
    fn participant_only(&self) -> Result<(), Status> {
        if self.me == OBSERVER {
            Err(Status::Invalid)
        } else {
            Ok(())
        }
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This handle's participant id (the owner id its claims carry).
    pub fn participant_id(&self) -> u32 {
        self.me
    }

    /// Whether participant `k` is dead: never true for ourselves; ids outside the table name
    /// nobody (a corrupted word), so they count as dead.
    fn dead(&self, k: u32) -> bool {
        k != self.me && (k >= MAX_PARTICIPANTS || !self.map.participant_alive(k))
    }

    /// Called by a waiter that has been blocked for a while by a slot another process holds.
    fn recover(&self, b: Blocked) -> bool {
        if self.redeliver() && crate::ring::unpack(b.state).1 == crate::ring::READING {
            // A dead getter's message goes into one of its leases, not into `lost`: recover
            // the whole participant, as it (see `lease`).
            let before = self.recoveries();
            if let Some(k) = b.owner() {
                self.recover_dead_k(k);
            }
            return self.recoveries() != before;
        }
        let moved = self
            .ring()
            .recover(b.pos, b.state, self.me, |k| self.dead(k));
        if moved {
            let lost = u64::from(crate::ring::unpack(b.state).1 == crate::ring::READING);
            self.recovered(1, lost);
        }
        moved
    }

    fn recoveries(&self) -> u64 {
        // ORDERING: Relaxed: a statistic, compared before and after our own recovery.
        self.header().stats.0.recoveries.load(Ordering::Relaxed)
    }

    /// Accounts for `moved` recovered slots, `lost` of which held a message a dead reader took.
    fn recovered(&self, moved: u64, lost: u64) {
        if moved == 0 {
            return;
        }
        self.stats_add(|s| &s.recoveries, moved);
        if lost > 0 {
            self.stats_add(|s| &s.lost, lost);
        }
        let h = self.header();
        notify_all(&h.not_empty.0);
        notify_all(&h.not_full.0);
        notify_all(&h.control.0.join);
    }

    /// Recovers every slot held by a dead process (a full scan: for rare waits such as `join`,
    /// which nobody else may wake when a consumer dies holding a message).
    fn recover_dead(&self) {
        if self.me == OBSERVER {
            return;
        }
        for b in self.ring().held_slots() {
            self.recover(b);
        }
    }

    /// Claims a free slot for writing (blocking as `timeout` allows); returns its token.
    pub fn claim_write(&self, timeout: Option<Duration>) -> Result<u64, Status> {
        if self.me == OBSERVER {
            return Err(Status::Invalid);
        }
        if self.gate.is_closing() {
            return Err(Status::Closed);
        }
        if self.shutdown_state() != SHUTDOWN_NONE {
            return Err(Status::ShutDown);
        }
        let ring = self.ring();
        let first = match ring.try_claim_write(self.me) {
            Ok(pos) => {
                self.after_write_claim();
                return Ok(pos);
            }
            Err(PutError::Corrupt) => return Err(Status::BadSegment),
            Err(PutError::Full(b)) => b,
        };
        self.stats_add(|s| &s.full_hits, 1);
        if timeout == Some(Duration::ZERO) {
            self.recover(first);
            return Err(Status::Full);
        }
        let _waiting = self.waiting()?;
        let h = self.header();
        let r = block_on(
            &h.not_full.0,
            deadline(timeout),
            || {
                if self.gate.is_closing() {
                    return Attempt::Leave(Err(Status::Closed));
                }
                if self.shutdown_state() != SHUTDOWN_NONE {
                    return Attempt::Leave(Err(Status::ShutDown));
                }
                match ring.try_claim_write(self.me) {
                    Ok(pos) => Attempt::Done(Ok(pos)),
                    Err(PutError::Corrupt) => Attempt::Leave(Err(Status::BadSegment)),
                    Err(PutError::Full(b)) => Attempt::Blocked(b),
                }
            },
            || ring.free_now(),
            || Some(self.puts_so_far()),
            |b| self.recover(b),
            || self.on_signal(),
        );
        self.after_write_claim();
        r.unwrap_or(Err(Status::Full))
    }

    /// Makes this handle's blocked calls leave with `Status::Interrupted` when a signal
    /// interrupts their sleep (`on`), or sleep on through signals (the default).
    pub fn set_interruptible(&self, on: bool) {
        // ORDERING: Relaxed: a setting of this process's handle, read by its later calls.
        self.interruptible
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// What a blocked call whose sleep a signal interrupted returns (`None`: sleep on).
    fn on_signal<T>(&self) -> Option<Result<T, Status>> {
        // ORDERING: Relaxed: see `set_interruptible`.
        self.interruptible
            .load(std::sync::atomic::Ordering::Relaxed)
            .then_some(Err(Status::Interrupted))
    }

    /// Pooled layout: a write claim may have swapped buffers through a free slot, and a put
    /// that found that slot `SWAPPING` may be asleep (it saw no free slot): wake it.
    #[inline]
    fn after_write_claim(&self) {
        if self.geo.pool_offset != 0 {
            notify(&self.header().not_full.0, 1);
        }
    }

    /// Publishes the slot claimed as `token` as a message of `len` bytes.
    ///
    /// After an immediate shutdown the write is refused instead (`ShutDown`: the slot is given
    /// up, nothing is put) and this call discards what the shutdown could not reach behind it:
    /// a shutdown that met this slot still being written stopped discarding there.
    pub fn commit_write(&self, token: u64, len: u64) -> Result<(), Status> {
        self.participant_only()?;
        if len > self.geo.max_msg {
            return Err(Status::TooBig);
        }
        if self.shutdown_state() == SHUTDOWN_IMMEDIATE {
            if !self.ring().abandon(token, self.me) {
                return Err(Status::Invalid);
            }
            self.discard_after_shutdown();
            return Err(Status::ShutDown);
        }
        if !self.ring().publish(token, len, self.me) {
            return Err(Status::Invalid);
        }
        // (notify's SeqCst fence orders the publish before the shutdown check below; it pairs
        // with the SeqCst fence in `shutdown` between its store and its discarding.) A message
        // behind one no get has claimed yet is left to the chain of gets (see `freed`).
        notify_unless_behind(&self.header().not_empty.0, || {
            self.ring().unclaimed_before(token)
        });
        if self.shutdown_state() == SHUTDOWN_IMMEDIATE {
            // A shutdown came between the check above and the publish, and may have stopped
            // at this slot: discard what is left (the message is put, then discarded).
            self.discard_after_shutdown();
        }
        Ok(())
    }

    /// After an immediate shutdown: takes and drops every message the ring holds (counted as
    /// done for `join`), skipping given-up slots, then wakes every waiter. It stops at a slot
    /// still being written by a live process; that process's commit (refused) or abort, or the
    /// recovery of its slot if it dies, calls this again.
    fn discard_after_shutdown(&self) {
        if self.me == OBSERVER {
            return;
        }
        let h = self.header();
        let ring = self.ring();
        let (mut discarded, mut skipped) = (0, 0);
        while let Ok(c) = ring.try_claim_read(self.me, u64::MAX, &mut skipped) {
            ring.release(c.pos, self.me);
            discarded += 1;
        }
        self.note_skipped(skipped);
        if let Some(leases) = self.leases() {
            leases.discard_returned();
        }
        if discarded > 0 {
            // ORDERING: Relaxed: task accounting is read through `unfinished` only.
            h.control
                .0
                .tasks_done
                .fetch_add(discarded, Ordering::Relaxed);
        }
        notify_all(&h.not_empty.0);
        notify_all(&h.not_full.0);
        notify_all(&h.control.0.join);
    }

    /// Gives up the slot claimed as `token`; consumers skip it.
    pub fn abort_write(&self, token: u64) -> Result<(), Status> {
        self.participant_only()?;
        if !self.ring().abandon(token, self.me) {
            return Err(Status::Invalid);
        }
        notify(&self.header().not_empty.0, 1);
        if self.shutdown_state() == SHUTDOWN_IMMEDIATE {
            self.discard_after_shutdown(); // (see commit_write)
        }
        Ok(())
    }

    /// Pointer to the payload of the slot of `token` (valid for `max_msg` bytes while claimed).
    #[inline]
    pub fn payload(&self, token: u64) -> *mut u8 {
        if self.me == OBSERVER {
            return core::ptr::null_mut();
        }
        if token & LEASE_TOKEN != 0 && self.geo.leases != 0 {
            return self.lease_payload(token);
        }
        self.ring().payload(token)
    }

    /// [`Queue::payload`] of a lease token (its pooled case is out of line: see
    /// `lease::pooled_payload`).
    #[inline]
    fn lease_payload(&self, token: u64) -> *mut u8 {
        let i = (token & !LEASE_TOKEN).min(u64::from(u32::MAX)) as u32;
        if self.geo.pool_offset == 0 {
            self.leases_of::<false>().payload(i)
        } else {
            self.leases_of::<true>().payload(i)
        }
    }

    /// Claims the oldest message if it fits in `cap` bytes (blocking as `timeout` allows).
    /// On `Err(Status::Buffer)`, `needed` holds the message's length.
    pub fn claim_read(
        &self,
        cap: u64,
        timeout: Option<Duration>,
        needed: &mut u64,
    ) -> Result<ReadClaim, Status> {
        let c = self.claim_read_sized(0, cap, timeout, needed)?;
        // A claim held across calls (zero-copy): the chain of gets goes on now, not at the
        // release (see `freed`).
        chain(&self.header().not_empty.0, || self.ring().ready_now());
        Ok(c)
    }

    /// [`Queue::claim_read`] of a message of `min..=cap` bytes: on `Err(Status::Buffer)` the
    /// oldest message has another length (in `needed`) and stays queued.
    pub fn claim_read_sized(
        &self,
        min: u64,
        cap: u64,
        timeout: Option<Duration>,
        needed: &mut u64,
    ) -> Result<ReadClaim, Status> {
        if self.me == OBSERVER {
            return Err(Status::Invalid);
        }
        if self.geo.leases != 0 {
            // One branch on the layout here, none on the leased get's path below.
            return if self.geo.pool_offset == 0 {
                self.lease_read::<false>(min, cap, timeout, needed)
            } else {
                self.lease_read::<true>(min, cap, timeout, needed)
            };
        }
        let ring = self.ring();
        let mut skipped = 0;
        let mut attempt = || {
            if self.gate.is_closing() {
                return Attempt::Leave(Err(Status::Closed));
            }
            let shut = self.shutdown_state();
            if shut == SHUTDOWN_IMMEDIATE {
                // (What a shutdown could not reach, e.g. behind a writer that died since.)
                self.discard_after_shutdown();
                return Attempt::Leave(Err(Status::ShutDown));
            }
            match ring.try_claim_read_sized(self.me, min, cap, &mut skipped) {
                Ok(c) => Attempt::Done(Ok(c)),
                Err(GetError::Buffer(n)) => {
                    *needed = n;
                    Attempt::Leave(Err(Status::Buffer))
                }
                Err(GetError::Corrupt) => Attempt::Leave(Err(Status::BadSegment)),
                Err(GetError::Empty(_)) if shut != SHUTDOWN_NONE => {
                    Attempt::Leave(Err(Status::ShutDown))
                }
                Err(GetError::Empty(b)) => Attempt::Blocked(b),
            }
        };
        let r = match attempt() {
            Attempt::Done(r) | Attempt::Leave(r) => r,
            Attempt::Blocked(first) => {
                self.stats_add(|s| &s.empty_hits, 1);
                if timeout == Some(Duration::ZERO) {
                    if self.recover(first) {
                        match attempt() {
                            Attempt::Done(r) | Attempt::Leave(r) => r,
                            Attempt::Blocked(_) => Err(Status::Empty),
                        }
                    } else {
                        Err(Status::Empty)
                    }
                } else {
                    match self.waiting() {
                        Err(closed) => Err(closed),
                        Ok(_waiting) => block_on(
                            &self.header().not_empty.0,
                            deadline(timeout),
                            attempt,
                            || ring.ready_now(),
                            // Consumers are not tracked: in a pool, a consumer that sleeps while
                            // others take every message is idle, not starving (nothing waits).
                            || None,
                            |b| self.recover(b),
                            || self.on_signal(),
                        )
                        .unwrap_or(Err(Status::Empty)),
                    }
                }
            }
        };
        self.note_skipped(skipped);
        r
    }

    /// [`Queue::claim_read_sized`] of a redeliver queue: leases the message to this handle
    /// (`lease` module docs, get steps 1-4). The token names the lease entry; the message stays
    /// there, readable through [`Queue::payload`], until [`Queue::task_done`].
    #[inline(never)] // off the plain queues' get path, so that their code stays as it was
    fn lease_read<const POOLED: bool>(
        &self,
        min: u64,
        cap: u64,
        timeout: Option<Duration>,
        needed: &mut u64,
    ) -> Result<ReadClaim, Status> {
        // The views built here, for the layout the caller found (`ring_of`).
        let leases = self.leases_of::<POOLED>();
        let ring = self.ring_of::<POOLED>();
        let me = self.me;
        // ORDERING: Relaxed: a hint local to this handle.
        let hint = self.hint.load(std::sync::atomic::Ordering::Relaxed);
        let reserved = std::cell::Cell::new(None::<u32>);
        let waiting_lease = std::cell::Cell::new(false);
        let mut skipped = 0;
        let ctl = leases.control();
        let mut attempt = || {
            if self.gate.is_closing() {
                return Attempt::Leave(Err(Status::Closed));
            }
            let shut = self.shutdown_state();
            if shut == SHUTDOWN_IMMEDIATE {
                return Attempt::Leave(Err(Status::ShutDown));
            }
            // Step 1: redelivered messages first.
            // ORDERING: Relaxed: a hint (take_returned re-reads it with Acquire).
            if ctl.returned.load(Ordering::Relaxed) != 0 {
                match leases.take_returned(me, min, cap) {
                    Ok(i) => return Attempt::Done(Ok((i, leases.len(i)))),
                    Err(Redelivery::Size(n)) => {
                        *needed = n;
                        return Attempt::Leave(Err(Status::Buffer));
                    }
                    Err(Redelivery::None) => {}
                }
            }
            // Step 2: an entry to move the message into.
            let i = match reserved.get() {
                Some(i) => i,
                None => match leases.reserve(me, hint) {
                    Some(i) => {
                        reserved.set(Some(i));
                        i
                    }
                    None => {
                        if !waiting_lease.replace(true) {
                            // ORDERING: Relaxed: acknowledgements read it to decide whether
                            // to wake everyone; the wait word's fences order the rest.
                            ctl.waiters.fetch_add(1, Ordering::Relaxed);
                        }
                        self.scan_dead(false);
                        // No owner: the waiter sleeps until woken or IDLE_RECHECK.
                        return Attempt::Blocked(Blocked {
                            pos: u64::MAX,
                            state: 0,
                        });
                    }
                },
            };
            // Steps 3 and 4: the ring's oldest message, into the entry.
            let steps = |n: u32| {
                const POINTS: [&str; 6] = [
                    "",
                    "lease-claimed",
                    "lease-filled",
                    "lease-held",
                    "lease-recorded",
                    "lease-swapping",
                ];
                hold_here(POINTS[n.min(5) as usize]);
                true
            };
            let mutant = crate::lease::Mutant::None;
            match leases.take_from_ring(&ring, i, me, (min, cap), &mut skipped, steps, mutant) {
                Ok(Some((_, len))) => {
                    reserved.set(None);
                    Attempt::Done(Ok((i, len)))
                }
                Ok(None) => unreachable!("the library's steps never stop"),
                Err(GetError::Buffer(n)) => {
                    *needed = n;
                    Attempt::Leave(Err(Status::Buffer))
                }
                Err(GetError::Corrupt) => Attempt::Leave(Err(Status::BadSegment)),
                Err(GetError::Empty(_)) if shut != SHUTDOWN_NONE => {
                    Attempt::Leave(Err(Status::ShutDown))
                }
                Err(GetError::Empty(b)) => {
                    // A blocked get also notices dead lease holders (their messages come back).
                    self.scan_dead(false);
                    Attempt::Blocked(b)
                }
            }
        };
        let r = match attempt() {
            Attempt::Done(r) | Attempt::Leave(r) => r,
            Attempt::Blocked(first) => {
                self.stats_add(|s| &s.empty_hits, 1);
                if timeout == Some(Duration::ZERO) {
                    self.scan_dead(false);
                    let again = if first.held() && self.recover(first) {
                        true
                    } else {
                        // ORDERING: Relaxed: a hint.
                        ctl.returned.load(Ordering::Relaxed) != 0
                    };
                    if again {
                        match attempt() {
                            Attempt::Done(r) | Attempt::Leave(r) => r,
                            Attempt::Blocked(_) => Err(Status::Empty),
                        }
                    } else {
                        Err(Status::Empty)
                    }
                } else {
                    match self.waiting() {
                        Err(closed) => Err(closed),
                        Ok(_waiting) => block_on(
                            &self.header().not_empty.0,
                            deadline(timeout),
                            attempt,
                            || ring.ready_now(),
                            || None,
                            |b| b.pos != u64::MAX && self.recover(b),
                            || self.on_signal(),
                        )
                        .unwrap_or(Err(Status::Empty)),
                    }
                }
            }
        };
        if waiting_lease.get() {
            // ORDERING: Relaxed: as above.
            ctl.waiters.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(i) = reserved.get() {
            leases.unreserve(i, me);
        }
        self.note_skipped(skipped);
        let (i, len) = r?;
        self.held.push(i);
        self.freed(1);
        Ok(ReadClaim {
            pos: LEASE_TOKEN | u64::from(i),
            len,
        })
    }

    /// Redeliver queues: acknowledges this handle's `n` oldest leases (`Invalid` if it holds
    /// fewer: nothing is acknowledged then). Each acknowledgement is one CAS, which is also its
    /// count for `join` (see `lease`).
    fn ack(&self, leases: &Leases<'_>, n: u64) -> Result<(), Status> {
        let mut last = None;
        let popped = self.held.pop(n, |i| {
            let acked = leases.ack(i, self.me);
            debug_assert!(acked, "an entry this handle holds");
            last = Some(i);
        });
        if !popped {
            return Err(Status::Invalid);
        }
        if let Some(i) = last {
            // ORDERING: Relaxed: a hint local to this handle.
            self.hint.store(i, std::sync::atomic::Ordering::Relaxed);
        }
        let c = &self.header().control.0;
        // `notify_all(&c.join)` without its fence: each ack's SeqCst swap stands in for it
        // (see `Leases::ack`).
        // ORDERING: SeqCst, after the acks' SeqCst swaps (`Leases::ack` says why).
        if c.join.sleepers.load(Ordering::SeqCst) != 0 {
            notify_all(&c.join);
        }
        // ORDERING: Relaxed: see `lease_read`; a missed waiter rechecks within IDLE_RECHECK.
        if leases.control().waiters.load(Ordering::Relaxed) != 0 {
            notify_all(&self.header().not_empty.0);
        }
        Ok(())
    }

    /// Number of messages this handle holds leased (0 without redeliver).
    pub fn leased(&self) -> u64 {
        self.held.len()
    }

    /// A pooled redeliver queue's invariant, for tests: the buffer indices of the ring's slots
    /// and of the lease entries are together a permutation of the pool (see `lease`, "Pooled
    /// leases"). None for other queues. Meaningful on a quiet queue only (no get or put under
    /// way).
    pub fn pool_is_a_permutation(&self) -> Option<bool> {
        let leases = self.leases()?;
        leases
            .pooled()
            .then(|| leases.buffers_permute(&self.ring()))
    }

    fn note_skipped(&self, skipped: u64) {
        if skipped > 0 {
            self.stats_add(|s| &s.skipped, skipped);
            notify(
                &self.header().not_full.0,
                skipped.min(u64::from(u32::MAX)) as u32,
            );
            notify_all(&self.header().control.0.join);
        }
    }

    /// Returns the slot read as `token` to producers.
    pub fn release_read(&self, token: u64) -> Result<(), Status> {
        self.participant_only()?;
        if self.geo.leases != 0 {
            return self.release_lease(token);
        }
        // Counted while the claim is still held (see `settle_ledger`).
        self.took(1);
        if !self.ring().release(token, self.me) {
            return Err(Status::Invalid);
        }
        self.freed(1);
        Ok(())
    }

    /// [`Queue::release_read`] of a lease token: the message stays leased (in its entry) until
    /// `task_done`, so there is nothing to give back; checks that the token names a lease of
    /// this handle.
    #[inline(never)]
    fn release_lease(&self, token: u64) -> Result<(), Status> {
        if let Some(leases) = self.leases() {
            let i = token & !LEASE_TOKEN;
            let ok = token & LEASE_TOKEN != 0 && i < self.geo.leases && {
                let (_, phase, owner) = leases.state(i as u32);
                phase == crate::lease::HELD && owner == self.me
            };
            return if ok { Ok(()) } else { Err(Status::Invalid) };
        }
        Err(Status::Invalid)
    }

    /// Counts `n` messages this handle took in its ledger (queues without redeliver).
    #[inline]
    fn took(&self, n: u64) {
        // ORDERING: Relaxed: a flag that only goes 0 -> 1 (see `track_tasks`).
        if self.header().control.0.tracking.load(Ordering::Relaxed) != 0 {
            // ORDERING: Release pairs with the Acquire in `settle_ledger`. Only this
            // participant's threads add here (uncontended: the line is the participant's own).
            self.ledger(self.me).taken.fetch_add(n, Ordering::Release);
        }
    }

    /// Turns on the ledgers of the queue (for every process): from now on each participant
    /// counts what it takes, so that what a dead or closed one took and did not mark done
    /// counts as done (see `settle_ledger`). `task_done` and `join` call it; a joinable queue
    /// class calls it when it attaches. Messages taken before are not counted.
    pub fn track_tasks(&self) {
        let c = &self.header().control.0;
        // ORDERING: Relaxed: a flag; gets that miss it for a moment leave one message uncounted
        // (see above).
        if c.tracking.load(Ordering::Relaxed) == 0 {
            // ORDERING: as above.
            c.tracking.store(1, Ordering::Relaxed);
        }
    }

    /// Wakes producers for `n` slots this handle freed: once a sixteenth of the ring (at most 64
    /// slots) is free, not slot by slot (see `wait::notify_room`). Every get that claimed
    /// messages calls it, and it is also the chain of gets (`wait::chain`): a put leaves the
    /// wake-up for a message behind an unclaimed one to whoever claims that one; this wakes a
    /// sleeping consumer if messages are still waiting.
    #[inline]
    fn freed(&self, n: u32) {
        let low = (self.geo.capacity / 16).clamp(1, 64) as u32;
        let h = self.header();
        let ring = self.ring();
        after_take(
            &h.not_full.0,
            n,
            low,
            || ring.free_now(),
            &h.not_empty.0,
            || ring.ready_now(),
        );
    }

    /// Copies `data` into the queue as one message, blocking while it is full as `timeout`
    /// allows.
    pub fn put(&self, data: &[u8], timeout: Option<Duration>) -> Result<(), Status> {
        if data.len() as u64 > self.geo.max_msg {
            return Err(Status::TooBig);
        }
        let pos = self.claim_write(timeout)?;
        // SAFETY: we hold the write claim on `pos`: its max_msg ≥ data.len() payload bytes are
        // ours alone until we publish, and they cannot overlap the caller's slice.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.payload(pos), data.len()) };
        self.commit_write(pos, data.len() as u64)
    }

    /// Takes the oldest message into `buf`, blocking while the queue is empty as `timeout`
    /// allows; returns its length. `Err(Status::Buffer)` if it does not fit (it stays queued;
    /// [`Queue::get_sized`] tells the size).
    pub fn get(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, Status> {
        let mut needed = 0;
        self.get_sized(buf, timeout, &mut needed)
    }

    /// [`Queue::get`], storing the needed size in `needed` on `Err(Status::Buffer)`.
    pub fn get_sized(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
        needed: &mut u64,
    ) -> Result<usize, Status> {
        let c = self.claim_read_sized(0, buf.len() as u64, timeout, needed)?;
        // SAFETY: we hold the read claim: the message's len ≤ buf.len() bytes are stable until
        // we release it, and the segment cannot overlap the caller's buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(self.payload(c.pos), buf.as_mut_ptr(), c.len as usize)
        };
        self.release_read(c.pos)?;
        Ok(c.len as usize)
    }

    /// Waits (as `timeout` allows) until a get could take a message (`readable`) or a put could
    /// claim a slot (`!readable`), without taking or claiming anything: for callers that must
    /// stay cancellable (asyncio) and then try a non-blocking get or put. `Err(Status::Timeout)`
    /// on timeout, `Err(Status::ShutDown)` once the queue is shut down (for readability: shut
    /// down and drained). Dead owners met on the way are recovered, as by a blocked get or put.
    pub fn wait_ready(&self, readable: bool, timeout: Option<Duration>) -> Result<(), Status> {
        self.participant_only()?;
        let ring = self.ring();
        let mut skipped = 0;
        let attempt = || {
            if self.gate.is_closing() {
                return Attempt::Leave(Err(Status::Closed));
            }
            let shut = self.shutdown_state();
            if shut == SHUTDOWN_IMMEDIATE || (shut != SHUTDOWN_NONE && !readable) {
                return Attempt::Leave(Err(Status::ShutDown));
            }
            // Readiness counts as done: the caller (asyncio) takes or puts next, and passes a
            // wake-up on itself if it gives up (fq_wake).
            if readable {
                let leases = self.leases();
                if leases.as_ref().is_some_and(|l| l.ready(false)) {
                    return Attempt::Done(Ok(())); // a redelivery is waiting
                }
                match ring.peek_read(&mut skipped) {
                    Ok(_) | Err(GetError::Buffer(_))
                        if leases.as_ref().map_or(true, |l| l.ready(true)) =>
                    {
                        Attempt::Done(Ok(()))
                    }
                    Ok(_) | Err(GetError::Buffer(_)) => {
                        // Every lease is taken: wait for an acknowledgement (or a death).
                        self.scan_dead(false);
                        Attempt::Blocked(Blocked {
                            pos: u64::MAX,
                            state: 0,
                        })
                    }
                    Err(GetError::Corrupt) => Attempt::Leave(Err(Status::BadSegment)),
                    Err(GetError::Empty(_)) if shut != SHUTDOWN_NONE => {
                        Attempt::Leave(Err(Status::ShutDown))
                    }
                    Err(GetError::Empty(b)) => {
                        if leases.is_some() {
                            self.scan_dead(false);
                        }
                        Attempt::Blocked(b)
                    }
                }
            } else {
                match ring.peek_write() {
                    Ok(_) => Attempt::Done(Ok(())),
                    Err(PutError::Corrupt) => Attempt::Leave(Err(Status::BadSegment)),
                    Err(PutError::Full(b)) => Attempt::Blocked(b),
                }
            }
        };
        let word = self.side(readable);
        let more = || {
            if readable {
                ring.ready_now()
            } else {
                ring.free_now()
            }
        };
        let _waiting = self.waiting()?;
        let r = block_on(
            word,
            deadline(timeout),
            attempt,
            more,
            || None,
            |b| self.recover(b),
            || self.on_signal(),
        )
        .unwrap_or(Err(Status::Timeout));
        self.note_skipped(skipped);
        r
    }

    /// How many positions puts have claimed so far (the enqueue counter): what a blocked put
    /// watches to tell whether other producers get through while it waits.
    fn puts_so_far(&self) -> u64 {
        // ORDERING: Relaxed: a fairness hint only.
        self.header().tail.0.load(Ordering::Relaxed)
    }

    /// Passes on a wake-up that a [`Queue::wait_ready`] returning `Ok` may have used up, for a
    /// caller that will not take (`readable`) or put after all: wakes one other waiter of that
    /// side, if any sleeps.
    pub fn pass_on(&self, readable: bool) -> Result<(), Status> {
        self.participant_only()?;
        notify(self.side(readable), 1);
        Ok(())
    }

    /// The wait word of getters (`readable`) or of putters.
    fn side(&self, readable: bool) -> &WaitWord {
        let h = self.header();
        if readable {
            &h.not_empty.0
        } else {
            &h.not_full.0
        }
    }

    /// Counters kept in the segment, indexed as `FQ_STAT_*` in the C header: puts, gets,
    /// full hits, empty hits, recoveries, reclaimed participants, depth, skipped, lost,
    /// tasks done, unfinished tasks, creator pid, segment size, shutdown state, getters woken,
    /// putters woken, getter sleeps, putter sleeps.
    pub fn stats(&self) -> [u64; 21] {
        let h = self.header();
        let s = &h.stats.0;
        // ORDERING: Relaxed: statistics only.
        let ld = |a: &crate::sync::AtomicU64| a.load(Ordering::Relaxed);
        [
            ld(&h.tail.0),
            ld(&h.head.0),
            ld(&s.full_hits),
            ld(&s.empty_hits),
            ld(&s.recoveries),
            ld(&s.reclaimed_participants),
            self.len(),
            ld(&s.skipped),
            ld(&s.lost),
            ld(&h.control.0.tasks_done) + self.leases().map_or(0, |l| l.acks()),
            self.unfinished(),
            u64::from(h.desc.0.creator_pid),
            self.geo.total_size,
            u64::from(self.shutdown_state()),
            ld(&h.not_empty.0.woken),
            ld(&h.not_full.0.woken),
            ld(&h.not_empty.0.sleeps),
            ld(&h.not_full.0.sleeps),
            self.leases().map_or(0, |l| ld(&l.control().redelivered)),
            self.leases().map_or(0, |l| l.outstanding()),
            ld(&h.control.0.abandoned),
        ]
    }

    /// Number of participants whose process is alive (holds its liveness lock), this handle
    /// included.
    pub fn live_participants(&self) -> u64 {
        if self.me == OBSERVER {
            // The copy of the table is as old as the handle: probe every entry's lock instead
            // (the lock alone decides liveness; the entry word is a hint for participants).
            return (0..MAX_PARTICIPANTS)
                .filter(|&k| self.map.participant_alive(k))
                .count() as u64;
        }
        (0..MAX_PARTICIPANTS)
            .filter(|&k| {
                // ORDERING: Relaxed: a snapshot for tools; the lock probe decides.
                let used = self.participant(k).state.load(Ordering::Relaxed) != PARTICIPANT_FREE;
                used && (k == self.me || self.map.participant_alive(k))
            })
            .count() as u64
    }

    /// The shutdown state (`SHUTDOWN_*` in `layout`).
    pub fn shutdown_state(&self) -> u32 {
        // ORDERING: Acquire pairs with the Release in `shutdown`.
        self.header().control.0.shutdown.load(Ordering::Acquire)
    }

    /// Shuts the queue down for every process: later puts fail with `ShutDown`; gets drain what
    /// is left, then fail (with `immediate`, what is left is discarded at once and counted as
    /// done for `join`). Every blocked put, get and join in every process wakes.
    pub fn shutdown(&self, immediate: bool) -> Result<(), Status> {
        self.participant_only()?;
        let h = self.header();
        let new = if immediate {
            SHUTDOWN_IMMEDIATE
        } else {
            SHUTDOWN_GRACEFUL
        };
        // ORDERING: Release pairs with the Acquire in `shutdown_state`; the notifies' SeqCst
        // fences order it before their sleeper checks (see `wait`).
        h.control.0.shutdown.fetch_max(new, Ordering::Release);
        if immediate {
            // ORDERING: SeqCst fence orders the store above before the discarding's loads of
            // slot states, pairing with the fence in `commit_write`'s notify: a commit either
            // sees the shutdown (and discards after itself) or is seen here.
            crate::sync::fence(Ordering::SeqCst);
            self.discard_after_shutdown();
            // A put in flight (claimed, copying) stops the discarding at its slot; its commit
            // discards the rest. Give such puts a moment, so that the queue is usually empty
            // when this returns, as with queue.Queue; a zero-copy write held longer ends the
            // same way when it is committed or aborted.
            let until = Instant::now() + SHUTDOWN_GRACE;
            while !self.is_empty() && Instant::now() < until {
                std::thread::yield_now();
                self.discard_after_shutdown();
            }
        }
        notify_all(&h.not_empty.0);
        notify_all(&h.not_full.0);
        notify_all(&h.control.0.join);
        Ok(())
    }

    /// Messages put but not yet marked done with [`Queue::task_done`] (nor skipped or lost).
    pub fn unfinished(&self) -> u64 {
        // ORDERING: Acquire: see `task_done`.
        let done = self.header().control.0.tasks_done.load(Ordering::Acquire);
        self.unfinished_given(done)
    }

    /// Marks `n` fetched messages as processed (`JoinableQueue.task_done`). `Invalid` if that
    /// would mark more tasks done than were ever put.
    pub fn task_done(&self, n: u64) -> Result<(), Status> {
        self.participant_only()?;
        if let Some(leases) = self.leases() {
            return self.ack(&leases, n);
        }
        self.track_tasks();
        let c = &self.header().control.0;
        // ORDERING: Acquire/AcqRel: the count only moves through this CAS loop.
        let mut done = c.tasks_done.load(Ordering::Acquire);
        let mut excess;
        loop {
            // Messages counted as done when their taker closed or died (`settle_ledger`) may
            // still be marked done by another process (a parent that marks its children's work
            // done): that takes them back from `abandoned` rather than failing.
            let unfinished = self.unfinished_given(done);
            // ORDERING: Acquire, as in `unfinished_given`.
            let abandoned = c.abandoned.load(Ordering::Acquire);
            if n > unfinished.saturating_add(abandoned) {
                return Err(Status::Invalid);
            }
            excess = n.saturating_sub(unfinished);
            // ORDERING: AcqRel pairs with other task_done calls and with `unfinished`.
            match c.tasks_done.compare_exchange_weak(
                done,
                done + n,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => done = now,
            }
        }
        if excess > 0 {
            // ORDERING: AcqRel, as the increments in `settle_ledger`; saturating (a race with
            // another such task_done leaves it at 0, never wrapped).
            let _ = c
                .abandoned
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                    Some(a.saturating_sub(excess))
                });
        }
        // ORDERING: Release pairs with the Acquire in `settle_ledger`.
        self.ledger(self.me).done.fetch_add(n, Ordering::Release);
        notify_all(&c.join);
        Ok(())
    }

    fn unfinished_given(&self, done: u64) -> u64 {
        let h = self.header();
        let s = &h.stats.0;
        // ORDERING: Acquire, as in `unfinished`.
        let tail = h.tail.0.load(Ordering::Acquire);
        // Saturating: the counters are in shared memory, so hostile values must not overflow.
        // ORDERING: as above.
        let gone = s
            .skipped
            .load(Ordering::Acquire)
            .saturating_add(s.lost.load(Ordering::Acquire));
        // ORDERING: Acquire pairs with the Release in `settle_ledger`.
        let abandoned = h.control.0.abandoned.load(Ordering::Acquire);
        let acks = self.leases().map_or(0, |l| l.acks());
        tail.saturating_sub(gone)
            .saturating_sub(done)
            .saturating_sub(abandoned)
            .saturating_sub(acks)
    }

    /// Blocks until every message put was marked done (`JoinableQueue.join`), as `timeout`
    /// allows; `Err(Status::Timeout)` otherwise, `Err(Status::Interrupted)` when a signal ends
    /// its sleep on an interruptible handle (`fq_set_interruptible`).
    pub fn join(&self, timeout: Option<Duration>) -> Result<(), Status> {
        self.participant_only()?;
        self.track_tasks();
        let c = &self.header().control.0;
        let _waiting = self.waiting()?;
        let ready = || self.gate.is_closing() || self.unfinished() == 0;
        let idle = || {
            self.recover_dead();
            self.scan_dead(false);
            if self.shutdown_state() == SHUTDOWN_IMMEDIATE {
                // What an immediate shutdown could not reach (behind a writer that died).
                self.discard_after_shutdown();
            }
        };
        // ORDERING: Relaxed: see `set_interruptible`.
        if self
            .interruptible
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // The same wait through `block_on`, which tells a signal (`fq_set_interruptible`):
            // FQ_INTERRUPTED when a signal ends its sleep. `idle` runs at the first look that
            // finds work unfinished (a caller that joins in short slices, as Python does,
            // recovers dead holders at each), then every IDLE_RECHECK.
            let mut last_idle: Option<Instant> = None;
            let attempt = || {
                if ready() {
                    return Attempt::Done(Ok(()));
                }
                if last_idle.map_or(true, |t| t.elapsed() >= crate::wait::IDLE_RECHECK) {
                    idle();
                    last_idle = Some(Instant::now());
                    if ready() {
                        return Attempt::Done(Ok(()));
                    }
                }
                // Nobody to check for death here (`idle` does): sleep until woken or
                // IDLE_RECHECK.
                Attempt::Blocked(Blocked {
                    pos: u64::MAX,
                    state: 0,
                })
            };
            match block_on(
                &c.join,
                deadline(timeout),
                attempt,
                || 0,
                || None,
                |_| false,
                || self.on_signal(),
            ) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Status::Timeout),
            }
            return if self.gate.is_closing() {
                Err(Status::Closed)
            } else {
                Ok(())
            };
        }
        if !wait_until(&c.join, deadline(timeout), ready, idle) {
            Err(Status::Timeout)
        } else if self.gate.is_closing() {
            Err(Status::Closed)
        } else {
            Ok(())
        }
    }

    /// Puts the messages `data[..lens[0]]`, `data[lens[0]..][..lens[1]]`, … one after another
    /// (other producers' messages may land between them), blocking as `timeout` allows for the
    /// whole batch. `done` counts the messages put, also on failure. Sizes are checked before
    /// anything is put: `TooBig` or `Invalid` (lengths beyond `data`) put nothing.
    pub fn put_many(
        &self,
        data: &[u8],
        lens: &[u64],
        timeout: Option<Duration>,
        done: &mut u64,
    ) -> Result<(), Status> {
        *done = 0;
        if self.me == OBSERVER {
            return Err(Status::Invalid);
        }
        let mut total: u64 = 0;
        for &len in lens {
            if len > self.geo.max_msg {
                return Err(Status::TooBig);
            }
            total = total.checked_add(len).ok_or(Status::Invalid)?;
        }
        if total > data.len() as u64 {
            return Err(Status::Invalid);
        }
        // A batch claims a run of consecutive positions: the first the usual way, each next one
        // straight at its slot (Ring::claim_write_at), moving `tail` once per run and waking
        // consumers once per run instead of once per message (perf/: 3 locked instructions per
        // message become 1). A run ends where another producer got in between, or the ring is
        // full; before a put may wait, what was published is settled and signalled.
        let ring = self.ring();
        let me = self.me;
        // The clock is read only when a message has to wait: a batch that fits pays nothing for
        // its timeout (perf/: 62 → 34 ns per 8-byte message with a timeout given).
        let mut until: Option<Option<Instant>> = None;
        let mut off = 0usize;
        let mut run: Option<(u64, u64)> = None; // (first, next) positions of the current run

        // Messages published and not yet signalled: each signal wakes at most that many
        // consumers.
        let mut unsignalled = 0u32;
        let mut result = Ok(());
        for &len in lens {
            let msg = &data[off..off + len as usize];
            if let Some((first, next)) = run {
                // A run never gets a whole ring ahead of `tail`: other producers read the slot
                // at `tail` and must find it at most one lap away (Ring::settle_tail).
                if next - first >= self.geo.capacity {
                    ring.settle_tail(first, next);
                    run = Some((next, next));
                }
            }
            let pos = match run {
                Some((first, next)) if ring.claim_write_at(next, me) => {
                    run = Some((first, next + 1));
                    next
                }
                _ => {
                    if let Some((first, next)) = run.take() {
                        ring.settle_tail(first, next);
                    }
                    if unsignalled != 0 {
                        notify(&self.header().not_empty.0, std::mem::take(&mut unsignalled));
                    }
                    let claimed = if self.shutdown_state() != SHUTDOWN_NONE {
                        Err(Status::ShutDown)
                    } else {
                        match ring.try_claim_write(me) {
                            Ok(pos) => Ok(pos),
                            Err(PutError::Corrupt) => Err(Status::BadSegment),
                            Err(PutError::Full(_)) => {
                                let d = *until.get_or_insert_with(|| deadline(timeout));
                                let left = match (timeout, d) {
                                    (None, _) => None,
                                    (Some(_), Some(d)) => {
                                        Some(d.saturating_duration_since(Instant::now()))
                                    }
                                    (Some(t), None) => Some(t),
                                };
                                if left != Some(Duration::ZERO) {
                                    self.wait_for_room(&ring, lens.len() as u64 - *done, d);
                                }
                                self.claim_write(left)
                            }
                        }
                    };
                    match claimed {
                        Ok(pos) => {
                            run = Some((pos, pos + 1));
                            pos
                        }
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
            };
            self.after_write_claim();
            // SAFETY: we hold the write claim on `pos`: its max_msg ≥ len payload bytes (checked
            // above) are ours alone until we publish, and cannot overlap the caller's slice.
            unsafe { core::ptr::copy_nonoverlapping(msg.as_ptr(), self.payload(pos), msg.len()) };
            let published = ring.publish(pos, len, me);
            debug_assert!(published, "a claim this call made and still holds");
            unsignalled = unsignalled.saturating_add(1);
            off += len as usize;
            *done += 1;
        }
        if let Some((first, next)) = run {
            ring.settle_tail(first, next);
        }
        if unsignalled != 0 {
            notify(&self.header().not_empty.0, unsignalled);
        }
        result
    }

    /// A batch that found the ring full first waits, spinning at most [`SPIN_TIME`] (and not
    /// past `deadline`), until there is room for `remaining` messages (at most a quarter of
    /// the ring, at most 64) rather than for one. Claiming each slot the moment the consumer
    /// frees it keeps producer and consumer on the same cache lines, message after message
    /// (perf/: 1 → 1 batches of 64 across processes, 17-19 → 20-22 M msg/s). Bounded, so that
    /// a producer of single messages cannot starve the batch: the claim that follows takes any
    /// free slot, as every put does.
    fn wait_for_room(&self, ring: &Ring<'_>, remaining: u64, deadline: Option<Instant>) {
        let want = remaining.min(self.geo.capacity / 4).min(64);
        if want <= 1 {
            return;
        }
        let Ok(_waiting) = self.waiting() else {
            return; // closing: the claim that follows says so
        };
        let start = Instant::now();
        let until = deadline.map_or(start + SPIN_TIME, |d| d.min(start + SPIN_TIME));
        let mut spins = 0u32;
        while !ring.room_for(want)
            && self.shutdown_state() == SHUTDOWN_NONE
            && !self.gate.is_closing()
        {
            spins += 1;
            if spins % 8 == 0 && Instant::now() >= until {
                return;
            }
            for _ in 0..16 {
                crate::sync::spin_hint();
            }
        }
    }

    /// Takes up to `lens.len()` messages into `buf`, one after another, storing each length in
    /// `lens`; waits (as `timeout` allows) only for the first. Stops early at a message that does
    /// not fit in what is left of `buf` (it stays queued). `count` is the number taken.
    pub fn get_many(
        &self,
        buf: &mut [u8],
        lens: &mut [u64],
        timeout: Option<Duration>,
        count: &mut u64,
    ) -> Result<(), Status> {
        let max = lens.len();
        let mut needed = 0;
        let r = self.take_run(buf, Some(lens), max, None, timeout, count, &mut needed);
        if r == Err(Status::Buffer) {
            lens[0] = needed;
        }
        r
    }

    /// Takes up to `max_items` messages of exactly `itemsize` bytes each into `buf`, back to
    /// back (`buf` holds at least `itemsize × max_items` bytes); waits (as `timeout` allows)
    /// only for the first. Stops early at a message of another length (it stays queued); if the
    /// first has another length, `Err(Status::Buffer)` with that length in `count`. `count` is
    /// the number taken otherwise. The packed counterpart of a `put_many` of fixed-size records.
    pub fn get_many_exact(
        &self,
        buf: &mut [u8],
        itemsize: u64,
        max_items: usize,
        timeout: Option<Duration>,
        count: &mut u64,
    ) -> Result<(), Status> {
        let wanted = itemsize
            .checked_mul(max_items as u64)
            .ok_or(Status::Invalid)?;
        if wanted > buf.len() as u64 {
            return Err(Status::Invalid);
        }
        let mut needed = 0;
        let r = self.take_run(
            buf,
            None,
            max_items,
            Some(itemsize),
            timeout,
            count,
            &mut needed,
        );
        if r == Err(Status::Buffer) {
            *count = needed;
        }
        r
    }

    /// `get_many` and `get_many_exact`: up to `max` messages into `buf`, their lengths into
    /// `lens` if given, of exactly `exact` bytes each if given.
    #[allow(clippy::too_many_arguments)]
    fn take_run(
        &self,
        buf: &mut [u8],
        mut lens: Option<&mut [u64]>,
        max: usize,
        exact: Option<u64>,
        timeout: Option<Duration>,
        count: &mut u64,
        needed: &mut u64,
    ) -> Result<(), Status> {
        *count = 0;
        if max == 0 {
            return Ok(());
        }
        // What the next message may be: at least `min` bytes, at most what is left of `buf`
        // (and exactly `exact`, if given).
        let min = exact.unwrap_or(0);
        let limit = |space: usize| exact.map_or(space as u64, |k| k.min(space as u64));
        if self.redeliver() {
            // One lease per message: waits (as `timeout` allows) for the first only.
            let mut off = 0usize;
            while (*count as usize) < max {
                let t = if *count == 0 {
                    timeout
                } else {
                    Some(Duration::ZERO)
                };
                let c = match self.claim_read_sized(min, limit(buf.len() - off), t, needed) {
                    Ok(c) => c,
                    Err(e) if *count == 0 => return Err(e),
                    Err(_) => break,
                };
                // SAFETY: the lease entry holds c.len ≤ what is left of buf (checked by the
                // claim) bytes, ours until task_done; disjoint from the caller's buffer.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        self.payload(c.pos),
                        buf[off..].as_mut_ptr(),
                        c.len as usize,
                    )
                };
                if let Some(lens) = lens.as_deref_mut() {
                    lens[*count as usize] = c.len;
                }
                off += c.len as usize;
                *count += 1;
            }
            return Ok(());
        }
        // The first message as a get takes it (waiting as `timeout` allows); the others as a
        // run of consecutive positions, claimed straight at their slots (Ring::claim_read_at),
        // moving `head` once per run and waking producers once (see put_many).
        let c = self.claim_read_sized(min, limit(buf.len()), timeout, needed)?;
        let ring = self.ring();
        let me = self.me;
        let (mut first, mut pos, mut len) = (c.pos, c.pos, c.len);
        let mut off = 0usize;
        let mut skipped = 0;
        loop {
            // SAFETY: we hold the read claim on `pos`; len ≤ what is left of buf was checked by
            // the claim, and the segment cannot overlap the caller's buffer.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.payload(pos),
                    buf[off..].as_mut_ptr(),
                    len as usize,
                )
            };
            self.took(1);
            let released = ring.release(pos, me);
            debug_assert!(released, "a claim this call made and still holds");
            if let Some(lens) = lens.as_deref_mut() {
                lens[*count as usize] = len;
            }
            off += len as usize;
            *count += 1;
            if *count as usize == max {
                break;
            }
            let cap = limit(buf.len() - off);
            if pos + 1 - first >= self.geo.capacity {
                // Never a whole ring ahead of `head` (see put_many).
                ring.settle_head(first, pos + 1);
                first = pos + 1;
            }
            if let Some(n) = ring.claim_read_at_sized(pos + 1, me, min, cap) {
                (pos, len) = (pos + 1, n);
                continue;
            }
            ring.settle_head(first, pos + 1);
            match ring.try_claim_read_sized(me, min, cap, &mut skipped) {
                Ok(c) => (first, pos, len) = (c.pos, c.pos, c.len),
                Err(_) => break,
            }
        }
        ring.settle_head(first, pos + 1);
        self.note_skipped(skipped);
        self.freed((*count).min(u64::from(u32::MAX)) as u32);
        Ok(())
    }
}

/// A call waiting on a handle (from [`Queue::waiting`]); leaves the gate when dropped.
struct Waiting<'a>(&'a Gate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.exit();
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.me >= MAX_PARTICIPANTS || self.pid != std::process::id() {
            // An observer, never registered, or inherited across fork(): the entry belongs to
            // the parent.
            return;
        }
        // Claims this handle left open (zero-copy claims never finished) must not wedge others;
        // its leases go back for redelivery (or, without redeliver, what it took and did not
        // mark done counts as done).
        self.recover_as(self.me);
        // ORDERING: Release: the entry is free only after our slot work above; the lock is
        // dropped afterwards (when the mapping closes its descriptor), so a new owner that takes
        // the lock finds the entry already free.
        let _ = self.participant(self.me).state.compare_exchange(
            PARTICIPANT_USED,
            PARTICIPANT_FREE,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}
