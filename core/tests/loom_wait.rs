//! Loom model of the wake protocol of `wait.rs` (an eventcount with wake-one, counted spinners,
//! the hand-on rule and the hand-over of a wake-up by a waiter that gives up), checked with the
//! primitives that ship (`announce`, `sleep`, `retire`, `notify`, `notify_room`, `notify_all`,
//! `start_spinning`, `stop_spinning`, `hand_on`) and `wait.rs`'s model futex (under `--cfg loom`:
//! a mutex, a condition variable and a queue of waiters; a sleep with a timeout gives up at a
//! point of loom's choosing, one without blocks until it is woken).
//!
//! `block_on` itself is not compiled under loom (it reads the clock), so [`block_on`] below
//! follows its steps one for one, with time replaced by counts: the spin phase makes
//! `spin_attempts` attempts, and a deadline is "passed" after a given number of sleeps. What a
//! waiter waits for is a unit of a shared counter of available items (an attempt takes one with
//! a CAS); a waker adds items (Release) and then calls `notify(w, n)`, as a put or a get does
//! after its ring store.
//!
//! The property is that of the module docs: no wake-up is lost. Waiters that wait without a
//! deadline sleep without a timeout, so a lost wake-up leaves them asleep forever and loom
//! reports a deadlock; every item is taken exactly once.
//!
//! Models: wake-one with 2 sleepers and 2 wakers; the hand-over by a chosen waiter that leaves
//! without taking (a message too long for its buffer); a waiter whose deadline passes (its last
//! look, then the hand-over); a spinner that wakers count on instead of waking a sleeper (it
//! takes, or sleeps, or gives up: the hand-on); `notify_all` for a shutdown; a batch woken with
//! `notify(w, 2)`, with and without a spinner; `notify_room` with `low` = 1; a signal that ends a
//! sleep (`block_on`'s `EINTR` exit); the chain of gets (`notify_unless_behind`, `chain`,
//! `after_take`) on a ring of two positions, with and without a spinner; the woken taken out of
//! the count of sleepers by their waker (`wake`), with two sleepers woken one after the other;
//! wakers that skip their call while the mark of a call that found the kernel's queue empty
//! holds (`wake`, `WaitWord::quiet`), with one consumer that waits twice.
//! Every model that counts its items also checks that the count of sleepers returns to 0. Five
//! more show that the models can fail: without the hand-over, without the hand-on, without the
//! chain, with a chosen waiter that ends its announcement too, or with a waiter whose
//! announcement leaves no mark in `clears`, a sleeper is left asleep and loom reports the
//! deadlock.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --test loom_wait` (`just loom`).
#![cfg(loom)]

use fastqueue::layout::WaitWord;
use fastqueue::sync::{AtomicU32, Ordering};
use fastqueue::wait::{
    after_take, announce, chain, hand_on, notify, notify_all, notify_room, notify_unless_behind,
    retire, sleep, start_spinning, stop_spinning,
};
use loom::thread;
use std::time::Duration;

/// At most one spinner: the models have one waiter that spins.
const MAX_SPINNERS: u32 = 1;

/// The model's bounds: as in `loom.rs`, `LOOM_MAX_PREEMPTIONS` sets the preemption bound, but
/// these models are small and want 2 (the default here; `just loom` sets it): at 1, loom's
/// bounded search misses the lost wake-up of `fails_without_hand_on`, which 2 finds.
fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.max_branches = 100_000;
    b
}

/// One side's wait word and what its waiters wait for.
struct Side {
    w: WaitWord,
    /// Items available (messages, or free slots).
    items: AtomicU32,
    /// Items taken.
    taken: AtomicU32,
    /// Shutdown flag (model 4).
    shut: AtomicU32,
}

impl Side {
    /// A side for one execution of a model. Leaked, so that threads share it without a loom
    /// `Arc` (each of whose clones and drops would be one more point for loom to interleave).
    fn new() -> &'static Side {
        Box::leak(Box::new(Side {
            w: WaitWord::default(),
            items: AtomicU32::new(0),
            taken: AtomicU32::new(0),
            shut: AtomicU32::new(0),
        }))
    }

    /// A waker: makes `n` items available, then wakes for them (a put, or a run of them).
    fn put(&self, n: u32) {
        // ORDERING: Release, as the ring's store that publishes a message.
        self.items.fetch_add(n, Ordering::Release);
        notify(&self.w, n);
    }

    /// An attempt: takes one item if there is one (the ring's CAS on its counter).
    fn attempt(&self) -> Outcome {
        // ORDERING: Acquire pairs with the waker's Release; the CAS makes each item taken once.
        match self
            .items
            .fetch_update(Ordering::Acquire, Ordering::Acquire, |n| n.checked_sub(1))
        {
            Ok(_) => {
                // ORDERING: Relaxed: a count read after every thread is joined.
                self.taken.fetch_add(1, Ordering::Relaxed);
                Outcome::Done
            }
            Err(_) => Outcome::Blocked,
        }
    }

    /// An attempt of a waiter that waits for shutdown: leaves once the flag is set.
    fn attempt_shut(&self) -> Outcome {
        // ORDERING: Acquire pairs with the Release store of the flag.
        if self.shut.load(Ordering::Acquire) != 0 {
            Outcome::Leave
        } else {
            Outcome::Blocked
        }
    }

    /// An attempt of a waiter whose buffer is too short for any item: leaves without taking
    /// once there is one (`Status::Buffer`: the message stays queued for others).
    fn attempt_too_long(&self) -> Outcome {
        // ORDERING: Acquire pairs with the waker's Release.
        if self.items.load(Ordering::Acquire) != 0 {
            Outcome::Leave
        } else {
            Outcome::Blocked
        }
    }

    /// What a waiter that spun hands on (`block_on`'s `more`): the items still available.
    fn more(&self) -> u32 {
        // ORDERING: Acquire: ordered by `stop_spinning`'s fence anyway; Acquire as an attempt.
        self.items.load(Ordering::Acquire)
    }

    /// The counts once every thread is joined: every item put was taken exactly once, and the
    /// count of sleepers is back to 0.
    fn check(&self, put: u32) {
        self.check_items(put);
        // ORDERING: Relaxed: every thread was joined.
        let sleepers = self.w.sleepers.load(Ordering::Relaxed);
        // Every announcement was ended once: by its waiter, or by the waker that chose it.
        assert_eq!(sleepers, 0, "the count of sleepers did not return to 0");
    }

    /// Every item put was taken exactly once.
    fn check_items(&self, put: u32) {
        // ORDERING: Relaxed: every thread was joined.
        let (left, taken) = (
            self.items.load(Ordering::Relaxed),
            self.taken.load(Ordering::Relaxed),
        );
        assert_eq!(left + taken, put, "an item was lost or taken twice");
    }
}

/// What one attempt found (`wait::Attempt` without the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It took what it waited for.
    Done,
    /// The wait ends without taking anything (here: shutdown, or an item too long).
    Leave,
    /// Nothing to take.
    Blocked,
}

/// How a waiter of the model waits (`block_on`'s parameters, with time replaced by counts).
#[derive(Clone, Copy)]
struct Waiter {
    /// Attempts of the spin phase (0: no spin phase).
    spin_attempts: u32,
    /// `None`: no deadline, each sleep without a timeout. `Some(k)`: each sleep with a timeout,
    /// and the deadline has passed after `k` sleeps (`Some(0)`: right after the spin phase).
    deadline: Option<u32>,
    /// Whether a chosen waiter that leaves passes its wake-up on (only off to show a failure).
    pass_on: bool,
    /// Whether a waiter that spun hands on when it leaves (only off to show a failure).
    hand_on: bool,
    /// Whether a signal may end a sleep (`block_on`'s `EINTR` exit with a caller whose
    /// `on_signal` says leave): each sleep then has a timeout, and one that ends without a
    /// wake-up choosing this waiter counts as a signal: the waiter leaves.
    signal: bool,
    /// Whether a chosen waiter also ends its announcement itself, which its waker already
    /// ended (only on to show a failure).
    retire_chosen: bool,
    /// Whether the waiter takes back the mark its announcement leaves in `clears` (only on to
    /// show a failure: wakers then skip a wake-up it needs).
    unmark: bool,
}

/// Blocks forever, without spinning.
const SLEEPER: Waiter = Waiter {
    spin_attempts: 0,
    deadline: None,
    pass_on: true,
    hand_on: true,
    signal: false,
    retire_chosen: false,
    unmark: false,
};

/// How a wait ended (`block_on`'s `Ok(Done)`, `Ok(Leave)`, `Err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Done,
    Left,
    TimedOut,
    /// A signal ended a sleep and the caller left (`Status::Interrupted`).
    Interrupted,
}

/// `wait::block_on`, step for step, less the clock, `on_stuck` and the
/// dead-spinner recovery (`napped` / `clear_spinners`: no spinner dies in these models).
fn block_on(
    w: &WaitWord,
    p: Waiter,
    mut attempt: impl FnMut() -> Outcome,
    mut more: impl FnMut() -> u32,
) -> Exit {
    let exit = |o: Outcome| match o {
        Outcome::Done => Exit::Done,
        Outcome::Leave => Exit::Left,
        Outcome::Blocked => unreachable!(),
    };
    let mut blocked = false;
    // Whether wakers may have counted on this waiter as a spinner for changes that its last look
    // did not take.
    let mut owe = false;
    if p.spin_attempts > 0 && start_spinning(w, MAX_SPINNERS) {
        let mut spins = 0;
        loop {
            match attempt() {
                o @ (Outcome::Done | Outcome::Leave) => {
                    stop_spinning(w);
                    if p.hand_on {
                        hand_on(w, &mut more);
                    }
                    return exit(o);
                }
                Outcome::Blocked => {
                    spins += 1;
                    if spins == p.spin_attempts {
                        blocked = true;
                        break;
                    }
                }
            }
            fastqueue::sync::spin_hint();
        }
        stop_spinning(w);
        owe = true;
    }
    if !blocked {
        match attempt() {
            Outcome::Blocked => {}
            o => return exit(o),
        }
    }
    let mut chosen = false;
    let mut sleeps = 0;
    let leave = |chosen: bool, owe: bool, more: &mut dyn FnMut() -> u32| {
        if chosen && p.pass_on {
            notify(w, 1);
        }
        if owe && p.hand_on {
            hand_on(w, more);
        }
    };
    loop {
        if p.deadline.is_some_and(|k| sleeps >= k) {
            // The last look.
            match attempt() {
                Outcome::Done => {
                    leave(false, owe, &mut more);
                    return Exit::Done;
                }
                Outcome::Leave => {
                    leave(chosen, owe, &mut more);
                    return Exit::Left;
                }
                Outcome::Blocked => {}
            }
            leave(chosen, owe, &mut more);
            return Exit::TimedOut;
        }
        let mut ticket = announce(w);
        if p.unmark {
            // ORDERING: SeqCst, as `announce`'s own increment (the mutant takes it back).
            w.clears.fetch_sub(1, Ordering::SeqCst);
        }
        let outcome = attempt();
        if outcome == Outcome::Blocked {
            owe = false;
            let timeout = (p.deadline.is_some() || p.signal).then(|| Duration::from_millis(1));
            chosen = sleep(w, &mut ticket, timeout);
            sleeps += 1;
            retire(w, ticket);
            if chosen && p.retire_chosen {
                // ORDERING: Relaxed, as `retire`'s own decrement (the mutant's second one).
                w.sleepers.fetch_sub(1, Ordering::Relaxed);
            }
            if p.signal && !chosen {
                // The EINTR exit: nothing taken, no wake-up of its own to pass on (a sleep a
                // signal ended was not chosen), what a spin was counted on handed on.
                leave(chosen, owe, &mut more);
                return Exit::Interrupted;
            }
            continue;
        }
        retire(w, ticket);
        match outcome {
            Outcome::Done => {
                leave(false, owe, &mut more);
                return Exit::Done;
            }
            Outcome::Leave => {
                leave(chosen, owe, &mut more);
                return Exit::Left;
            }
            Outcome::Blocked => {}
        }
    }
}

/// Spawns a consumer that waits as `p` for one item.
fn consumer(s: &'static Side, p: Waiter) -> thread::JoinHandle<Exit> {
    thread::spawn(move || block_on(&s.w, p, || s.attempt(), || s.more()))
}

/// Spawns a producer of `n` items.
fn producer(s: &'static Side, n: u32) -> thread::JoinHandle<()> {
    thread::spawn(move || s.put(n))
}

/// The shape of most models: two consumers, waiting as `kinds`, each need one item; `wakers`
/// (threads it spawns and joins) make two available. Both consumers finish with an item of
/// their own, and nothing is left over.
fn two_consumers_take_two(kinds: [Waiter; 2], wakers: fn(&'static Side)) {
    builder().check(move || {
        let s = Side::new();
        let c = kinds.map(|k| consumer(s, k));
        wakers(s);
        for c in c {
            assert_eq!(c.join().unwrap(), Exit::Done);
        }
        s.check(2);
        assert_eq!(s.more(), 0);
    });
}

/// Two producers add one item each, concurrently.
fn two_producers_of_one(s: &'static Side) {
    for p in [producer(s, 1), producer(s, 1)] {
        p.join().unwrap();
    }
}

/// One producer adds two items and wakes for both at once (`notify(w, 2)`).
fn one_batch_of_two(s: &'static Side) {
    producer(s, 2).join().unwrap();
}

/// Model 1, wake-one: two consumers sleep without a timeout, two producers add one item each
/// and wake one sleeper each. Both consumers finish, each with its own item.
#[test]
fn wake_one_two_sleepers_two_wakers() {
    two_consumers_take_two([SLEEPER, SLEEPER], two_producers_of_one);
}

/// Model 2, the hand-over: consumer A sleeps without a timeout but cannot take any item (too
/// long for its buffer: it leaves, and the item stays); consumer B sleeps without a timeout;
/// one producer adds one item and wakes one sleeper. If the wake-up chose A, A passes it on: B
/// takes the item. (If B takes it first, A has nothing to wake up for: a shutdown then ends its
/// wait.)
fn hand_over(pass_on: bool) {
    builder().check(move || {
        let s = Side::new();
        let p = Waiter { pass_on, ..SLEEPER };
        let a = thread::spawn(move || {
            block_on(
                &s.w,
                p,
                || match s.attempt_too_long() {
                    Outcome::Blocked => s.attempt_shut(),
                    o => o,
                },
                || s.more(),
            )
        });
        let b = consumer(s, SLEEPER);
        producer(s, 1).join().unwrap();
        assert_eq!(b.join().unwrap(), Exit::Done);
        // ORDERING: Release pairs with the waiters' Acquire load of the flag.
        s.shut.store(1, Ordering::Release);
        notify_all(&s.w);
        assert_eq!(a.join().unwrap(), Exit::Left);
        s.check(1);
    });
}

#[test]
fn hand_over_by_a_waiter_that_leaves() {
    hand_over(true);
}

/// Model 2b, a deadline: consumer A sleeps once with a timeout (woken or not, at a point of
/// loom's choosing), then its deadline has passed: a last look, and if it was chosen and takes
/// nothing, the hand-over. Consumer B sleeps without a timeout. One item is put and woken for;
/// if A took it, a second one is put for B. B finishes either way.
#[test]
fn waiter_whose_deadline_passes() {
    builder().check(|| {
        let s = Side::new();
        let a = consumer(
            s,
            Waiter {
                deadline: Some(1),
                ..SLEEPER
            },
        );
        let b = consumer(s, SLEEPER);
        producer(s, 1).join().unwrap();
        let a = a.join().unwrap();
        assert!(matches!(a, Exit::Done | Exit::TimedOut));
        if a == Exit::Done {
            s.put(1);
        }
        assert_eq!(b.join().unwrap(), Exit::Done);
        s.check(if a == Exit::Done { 2 } else { 1 });
        assert_eq!(s.more(), 0, "an item was left");
    });
}

/// One attempt of spinning, then sleeping without a timeout.
const SPINNER: Waiter = Waiter {
    spin_attempts: 1,
    ..SLEEPER
};

/// Model 3, counted spinners: consumer S spins (one attempt) and then sleeps without a timeout;
/// consumer B sleeps without one; two producers add one item each. A waker that finds S
/// registered does not wake a sleeper, counting on S's look after `stop_spinning`; S hands on
/// what it did not take. Both consumers finish.
#[test]
fn spinner_counted_on_by_wakers() {
    two_consumers_take_two([SPINNER, SLEEPER], two_producers_of_one);
}

/// Model 3b, a spinner that gives up: S spins once and its deadline passes as the spin ends
/// (`block_on` makes its last look at the top of its loop, then leaves, handing on); B sleeps
/// without a timeout; one producer adds two items, one at a time, each woken for with
/// `notify(w, 1)`: wakers may count on S for both. B finishes.
fn spinner_gives_up(hand_on: bool) {
    builder().check(move || {
        let s = Side::new();
        let spinner = Waiter {
            deadline: Some(0),
            hand_on,
            ..SPINNER
        };
        let a = consumer(s, spinner);
        let b = consumer(s, SLEEPER);
        let p = thread::spawn(move || {
            s.put(1);
            s.put(1);
        });
        p.join().unwrap();
        assert!(matches!(a.join().unwrap(), Exit::Done | Exit::TimedOut));
        assert_eq!(b.join().unwrap(), Exit::Done);
        s.check(2);
    });
}

#[test]
fn spinner_that_gives_up_hands_on() {
    spinner_gives_up(true);
}

/// Model 4, `notify_all`: two consumers sleep without a timeout until shutdown; one thread sets
/// the flag and wakes everyone. Both leave (and, chosen, pass their wake-ups on).
#[test]
fn notify_all_wakes_every_sleeper() {
    builder().check(|| {
        let s = Side::new();
        let c: Vec<_> = (0..2)
            .map(|_| thread::spawn(move || block_on(&s.w, SLEEPER, || s.attempt_shut(), || 0)))
            .collect();
        let t = thread::spawn(move || {
            // ORDERING: Release pairs with the waiters' Acquire load of the flag.
            s.shut.store(1, Ordering::Release);
            notify_all(&s.w);
        });
        t.join().unwrap();
        for c in c {
            assert_eq!(c.join().unwrap(), Exit::Left);
        }
    });
}

/// Model 5, a batch: one producer adds two items and wakes for both (`notify(w, 2)`); two
/// consumers sleep without a timeout. Both finish.
#[test]
fn batch_wakes_as_many_as_it_made_available() {
    two_consumers_take_two([SLEEPER, SLEEPER], one_batch_of_two);
}

/// Model 5b, a batch and a spinner: S spins once, then sleeps; B sleeps; one producer adds two
/// items with `notify(w, 2)`, which wakes one sleeper fewer while S is registered. Both finish.
#[test]
fn batch_with_a_spinner() {
    two_consumers_take_two([SPINNER, SLEEPER], one_batch_of_two);
}

/// Model 6, `notify_room` as a small ring uses it (`low` = 1: capacities below 32): a waker
/// frees two slots one at a time, each followed by `notify_room(w, 1, 1, free)`; S spins once,
/// then sleeps; B sleeps. Both finish. (With `low` > 1 a wake-up is deferred by design, even for
/// a run of `low` slots of which awake waiters took some before `free()` was read: a sleeper then
/// stays asleep until its timeout, which these models do not count on.)
#[test]
fn notify_room_low_1() {
    two_consumers_take_two([SPINNER, SLEEPER], |s| {
        let p = thread::spawn(move || {
            for _ in 0..2 {
                // ORDERING: Release, as the ring's store that frees a slot.
                s.items.fetch_add(1, Ordering::Release);
                notify_room(&s.w, 1, 1, || s.more());
            }
        });
        p.join().unwrap();
    });
}

/// Model 7, a signal (`block_on`'s `EINTR` exit): consumer A sleeps with a caller that leaves
/// when a signal ends its sleep (a sleep that no wake-up chose counts as one, at a point of
/// loom's choosing); consumer B sleeps without a timeout. One item is put and woken for; if A
/// took it, a second one is put for B. B finishes either way: a wake-up that chose A is used
/// (A took the item), and a sleep a signal ended leaves no wake-up behind.
#[test]
fn waiter_that_a_signal_interrupts() {
    builder().check(|| {
        let s = Side::new();
        let a = consumer(
            s,
            Waiter {
                signal: true,
                ..SLEEPER
            },
        );
        let b = consumer(s, SLEEPER);
        producer(s, 1).join().unwrap();
        let a = a.join().unwrap();
        assert!(matches!(a, Exit::Done | Exit::Interrupted));
        if a == Exit::Done {
            s.put(1);
        }
        assert_eq!(b.join().unwrap(), Exit::Done);
        s.check(if a == Exit::Done { 2 } else { 1 });
        assert_eq!(s.more(), 0, "an item was left");
    });
}

/// The positions of a small ring for the chain models (8): a put publishes its position and
/// leaves the wake-up to the chain of gets while the position before it is unclaimed
/// (`notify_unless_behind`, as `commit_write`); a get claims the oldest message, in order, and
/// then runs the chain (`after_take`, as `freed`).
struct Chain {
    w: WaitWord,
    /// The producers' word (`after_take` also wakes for room; nobody sleeps there here).
    room: WaitWord,
    /// One state per position: `WRITING` (claimed by its producer), `FULL`, `READING`.
    slots: [AtomicU32; 2],
    /// The oldest position not yet claimed (a hint kept exact by helping, as the ring's).
    head: AtomicU32,
    taken: AtomicU32,
}

const WRITING: u32 = 1;
const FULL: u32 = 2;
const READING: u32 = 3;

impl Chain {
    fn new() -> &'static Chain {
        Box::leak(Box::new(Chain {
            w: WaitWord::default(),
            room: WaitWord::default(),
            slots: [AtomicU32::new(WRITING), AtomicU32::new(WRITING)],
            head: AtomicU32::new(0),
            taken: AtomicU32::new(0),
        }))
    }

    /// The put of position `t` (already claimed): publish, then wake unless behind.
    fn put(&self, t: usize) {
        // ORDERING: Release, as the ring's publish.
        self.slots[t].store(FULL, Ordering::Release);
        notify_unless_behind(&self.w, || {
            // ORDERING: Acquire, as `Ring::unclaimed_before` (after notify's fence).
            t > 0 && matches!(self.slots[t - 1].load(Ordering::Acquire), WRITING | FULL)
        });
    }

    /// A get's attempt: claims the oldest message if it is published (CAS, then helps head).
    fn attempt(&self) -> Outcome {
        loop {
            // ORDERING: Acquire, as the ring's head.
            let h = self.head.load(Ordering::Acquire) as usize;
            if h >= self.slots.len() {
                return Outcome::Blocked;
            }
            // ORDERING: Acquire pairs with the publish.
            match self.slots[h].load(Ordering::Acquire) {
                FULL => {
                    if self.slots[h]
                        // ORDERING: Acquire, as the ring's claim.
                        .compare_exchange(FULL, READING, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.help(h);
                        // ORDERING: Relaxed: a count read after every thread is joined.
                        self.taken.fetch_add(1, Ordering::Relaxed);
                        return Outcome::Done;
                    }
                }
                READING => self.help(h),
                _ => return Outcome::Blocked,
            }
        }
    }

    fn help(&self, h: usize) {
        // ORDERING: AcqRel, as the ring's `help`.
        let _ =
            self.head
                .compare_exchange(h as u32, h as u32 + 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Messages a get could take now (`Ring::ready_now`: 0 or 1 is all the chain asks).
    fn ready(&self) -> u32 {
        // ORDERING: Acquire, as `ready_now`.
        let h = self.head.load(Ordering::Acquire) as usize;
        self.slots[h.min(self.slots.len())..]
            .iter()
            // ORDERING: Acquire, as `ready_now`.
            .map(|s| s.load(Ordering::Acquire))
            .find(|&s| s != READING)
            .map_or(0, |s| u32::from(s == FULL))
    }

    /// A consumer that waits as `p` for one message, then runs the chain (`chain_on`: only off
    /// to show a failure).
    fn consumer(&'static self, p: Waiter, chain_on: bool) -> thread::JoinHandle<Exit> {
        thread::spawn(move || {
            let e = block_on(&self.w, p, || self.attempt(), || self.ready());
            if e == Exit::Done && chain_on {
                after_take(&self.room, 1, 1, || 1, &self.w, || self.ready());
            }
            e
        })
    }
}

/// Model 9, the woken leave the count: a waker takes the waiters it woke out of `sleepers`
/// (`wait::wake`), so that later wakers read 0 while the woken have not yet run, instead of
/// making a system call that wakes nobody. Two consumers sleep without a timeout, two producers
/// add one item each, one after the other: the second one's waker must still see the sleeper
/// the first did not wake, and every announcement ends once (`Side::check`).
fn woken_leave_the_count(retire_chosen: bool, count: bool) {
    builder().check(move || {
        let s = Side::new();
        let k = Waiter {
            retire_chosen,
            ..SLEEPER
        };
        let c = [consumer(s, k), consumer(s, k)];
        producer(s, 1).join().unwrap();
        producer(s, 1).join().unwrap();
        for c in c {
            assert_eq!(c.join().unwrap(), Exit::Done);
        }
        if count {
            s.check(2);
        } else {
            s.check_items(2);
        }
    });
}

#[test]
fn woken_leave_the_count_of_sleepers() {
    woken_leave_the_count(false, true);
}

/// Model 10, wakers skip a call that can wake nobody (`wait::wake`): a waker whose
/// `FUTEX_WAKE` emptied the kernel's queue records `seq` and `clears`; while both still hold
/// these values, every waiter still counted read its ticket before that bump and cannot sleep,
/// and later wakers make no call. One consumer takes two items, one wait after the other; two
/// producers add one item each, one after the other. The first producer may find the consumer
/// announced and not yet asleep (its call wakes nobody and records the mark); the second must
/// still wake the consumer if it went to sleep again since.
fn wakers_skip_when_quiet(unmark: bool) {
    builder().check(move || {
        let s = Side::new();
        let k = Waiter { unmark, ..SLEEPER };
        let c = thread::spawn(move || {
            let a = block_on(&s.w, k, || s.attempt(), || s.more());
            let b = block_on(&s.w, k, || s.attempt(), || s.more());
            (a, b)
        });
        producer(s, 1).join().unwrap();
        producer(s, 1).join().unwrap();
        assert_eq!(c.join().unwrap(), (Exit::Done, Exit::Done));
        s.check(2);
    });
}

#[test]
fn wakers_skip_only_while_quiet() {
    wakers_skip_when_quiet(false);
}

/// Model 8, the chain of gets: two producers publish positions 0 and 1 (each already claimed:
/// a put of 1 may find 0 still `WRITING` or `FULL`, and then wakes nobody); two consumers wait
/// for one message each, `kinds`. Both finish, each with a message: the claimer of 0 wakes a
/// sleeper for 1 when it finds it waiting.
fn chain_of_gets(kinds: [Waiter; 2], chain_on: bool) {
    builder().check(move || {
        let c = Chain::new();
        let cs = kinds.map(|k| c.consumer(k, chain_on));
        let ps = [0, 1].map(|t| thread::spawn(move || c.put(t)));
        for p in ps {
            p.join().unwrap();
        }
        for h in cs {
            assert_eq!(h.join().unwrap(), Exit::Done);
        }
        // ORDERING: Relaxed: every thread was joined.
        assert_eq!(c.taken.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn chain_of_gets_two_sleepers() {
    chain_of_gets([SLEEPER, SLEEPER], true);
}

/// Model 8b, the chain with a spinner: a put (or the chain) that finds a spinner registered
/// counts on it (its look after `stop_spinning`, its hand-on) instead of waking.
#[test]
fn chain_of_gets_with_a_spinner() {
    chain_of_gets([SPINNER, SLEEPER], true);
}

/// Model 8c, `chain` itself (a zero-copy claim, `Queue::claim_read`) with `notify_unless_behind`.
#[test]
fn chain_alone() {
    builder().check(|| {
        let c = Chain::new();
        let a = thread::spawn(move || {
            let e = block_on(&c.w, SLEEPER, || c.attempt(), || c.ready());
            chain(&c.w, || c.ready());
            e
        });
        let b = c.consumer(SLEEPER, true);
        let ps = [0, 1].map(|t| thread::spawn(move || c.put(t)));
        for p in ps {
            p.join().unwrap();
        }
        assert_eq!(a.join().unwrap(), Exit::Done);
        assert_eq!(b.join().unwrap(), Exit::Done);
    });
}

// The models fail when a rule is left out: loom then reports a deadlock (a sleeper left asleep
// forever). Loom's deadlock panic aborts the process (a second panic, in a destructor), which
// `#[should_panic]` cannot catch: each test below runs its model in a child process (this test
// binary running an ignored test, `fails_...`) and expects it to die with loom's report.

/// Runs the ignored test `name` of this binary in a child process; asserts that loom reported
/// a deadlock there.
fn expect_deadlock(name: &str) {
    expect_failure(name, "deadlock; threads");
}

/// Runs the ignored test `name` of this binary in a child process; asserts that it failed
/// with `what` in its report.
fn expect_failure(name: &str, what: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "0")
        // The hand-on's failure needs two preemptions.
        .env("LOOM_MAX_PREEMPTIONS", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(what),
        "{name}: expected loom to report {what:?}, got {:?}:\n{stderr}",
        out.status
    );
}

#[test]
#[ignore = "fails by design: run by without_hand_over_a_wake_up_is_lost"]
fn fails_without_hand_over() {
    hand_over(false);
}

/// Without the hand-over, a wake-up that chose A is lost when A leaves: B sleeps forever.
#[test]
fn without_hand_over_a_wake_up_is_lost() {
    expect_deadlock("fails_without_hand_over");
}

#[test]
#[ignore = "fails by design: run by without_hand_on_a_wake_up_is_lost"]
fn fails_without_hand_on() {
    spinner_gives_up(false);
}

/// Without the hand-on, a spinner that takes one item, after wakers counted on it for two,
/// leaves the other to nobody: B sleeps forever.
#[test]
fn without_hand_on_a_wake_up_is_lost() {
    expect_deadlock("fails_without_hand_on");
}

#[test]
#[ignore = "fails by design: run by a_waker_ends_the_announcement_it_chose_once"]
fn fails_if_the_chosen_retire_too() {
    woken_leave_the_count(true, false);
}

#[test]
#[ignore = "fails by design: run by a_waker_ends_the_announcement_it_chose_once"]
fn fails_to_count_if_the_chosen_retire_too() {
    woken_leave_the_count(true, true);
}

/// If a chosen waiter ended its announcement as well as its waker (a second decrement), the
/// count drops below the sleepers still asleep: the second waker reads 0 and wakes nobody, and
/// loom reports the sleeper left asleep; with the count checked, the count is off.
#[test]
fn a_waker_ends_the_announcement_it_chose_once() {
    expect_deadlock("fails_if_the_chosen_retire_too");
    expect_failure(
        "fails_to_count_if_the_chosen_retire_too",
        "the count of sleepers did not return to 0",
    );
}

#[test]
#[ignore = "fails by design: run by a_waiter_marks_each_ticket_it_reads"]
fn fails_if_a_waiter_leaves_no_mark() {
    wakers_skip_when_quiet(true);
}

/// If a waiter's announcement left no mark in `clears`, a waker could take a waiter that read
/// its ticket after the recorded bump for a stale one and skip its wake-up: the consumer sleeps
/// forever.
#[test]
fn a_waiter_marks_each_ticket_it_reads() {
    expect_deadlock("fails_if_a_waiter_leaves_no_mark");
}

#[test]
#[ignore = "fails by design: run by without_the_chain_a_wake_up_is_lost"]
fn fails_without_the_chain() {
    chain_of_gets([SLEEPER, SLEEPER], false);
}

/// Without the chain, a put that left its wake-up to the claimer of the message before it is
/// lost when that claimer does not wake anyone: the other consumer sleeps forever.
#[test]
fn without_the_chain_a_wake_up_is_lost() {
    expect_deadlock("fails_without_the_chain");
}
