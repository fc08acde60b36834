//! The queue on real shared memory: create/open/unlink rules, validation of hostile segments,
//! blocking with wake-ups and timeouts, zero-copy claims, and release of a closed handle's claims.
#![cfg(not(loom))]

use fastqueue::{Queue, Status};
use std::time::{Duration, Instant};

const NOW: Option<Duration> = Some(Duration::ZERO);

/// A unique segment name, unlinked on drop even if the test fails.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Name {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        Name(format!(
            "fq-rtest-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        // Forced: also junk a test wrote under the name.
        let _ = Queue::unlink_c(&std::ffi::CString::new(self.0.clone()).unwrap(), true);
    }
}

#[test]
fn create_open_unlink_rules() {
    let n = Name::new("rules");
    assert_eq!(Queue::open(&n.0).err(), Some(Status::NotFound));
    let q = Queue::create(&n.0, 32, 3, 0o600).unwrap();
    assert_eq!(
        Queue::create(&n.0, 32, 3, 0o600).err(),
        Some(Status::Exists)
    );
    let slash = format!("/{}", n.0);
    let p = Queue::open(&slash).unwrap();
    assert_eq!((p.capacity(), p.max_msg()), (3, 32));
    assert_ne!(p.participant_id(), q.participant_id());
    for bad in ["", "/", "a/b", "//x", &"x".repeat(251)] {
        assert_eq!(
            Queue::create(bad, 1, 1, 0o600).err(),
            Some(Status::Invalid),
            "{bad:?}"
        );
    }
    assert_eq!(
        Queue::create("fq-zero", 0, 1, 0o600).err(),
        Some(Status::Invalid)
    );
    assert_eq!(
        Queue::create("fq-zero", 1, 0, 0o600).err(),
        Some(Status::Invalid)
    );
    Queue::unlink(&n.0).unwrap();
    // Mappings stay valid after unlink.
    q.put(b"still here", NOW).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(p.get(&mut buf, NOW), Ok(10));
    assert_eq!(Queue::unlink(&n.0), Err(Status::NotFound));
}

#[test]
fn mode_is_applied_exactly() {
    use std::os::unix::fs::PermissionsExt;
    let n = Name::new("mode");
    let _q = Queue::create(&n.0, 8, 1, 0o660).unwrap();
    let meta = std::fs::metadata(format!("/dev/shm/{}", n.0)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

fn write_segment(name: &str, bytes: &[u8]) {
    std::fs::write(format!("/dev/shm/{name}"), bytes).unwrap();
}

#[test]
fn hostile_segments_are_refused_with_a_status() {
    let n = Name::new("hostile");
    // Foreign content.
    write_segment(&n.0, &[0xAB; 4096]);
    assert_eq!(Queue::open(&n.0).err(), Some(Status::BadSegment));
    // Truncated below a header.
    write_segment(&n.0, b"FASTQUE1");
    assert_eq!(Queue::open(&n.0).err(), Some(Status::BadSegment));
    // Never finished (magic 0).
    write_segment(&n.0, &[0; 4096]);
    assert_eq!(Queue::open(&n.0).err(), Some(Status::NotReady));
    // A real segment, then damaged field by field.
    let good = {
        let m = Name::new("good");
        let _q = Queue::create(&m.0, 64, 4, 0o600).unwrap();
        std::fs::read(format!("/dev/shm/{}", m.0)).unwrap()
    };
    write_segment(&n.0, &good);
    Queue::open(&n.0).unwrap();
    let mut v = good.clone();
    v[8] = 99; // layout_version
    write_segment(&n.0, &v);
    assert_eq!(Queue::open(&n.0).err(), Some(Status::Version));
    for (offset, what) in [
        (16, "capacity"),
        (24, "max_msg"),
        (32, "stride"),
        (56, "total"),
    ] {
        let mut v = good.clone();
        v[offset + 5] ^= 0x40;
        write_segment(&n.0, &v);
        assert_eq!(Queue::open(&n.0).err(), Some(Status::BadSegment), "{what}");
    }
    // Truncated after the header: the slots would lie outside the file.
    write_segment(&n.0, &good[..good.len() - 64]);
    assert_eq!(Queue::open(&n.0).err(), Some(Status::BadSegment));
}

#[test]
fn unlink_removes_only_fastqueue_segments() {
    let n = Name::new("unlink");
    let path = format!("/dev/shm/{}", n.0);
    for (junk, status) in [
        (&[0xABu8; 4096][..], Status::BadSegment),
        (b"FASTQUE".as_slice(), Status::BadSegment),
        (&[0u8; 64][..], Status::NotReady),
        (b"".as_slice(), Status::NotReady),
    ] {
        write_segment(&n.0, junk);
        assert_eq!(Queue::unlink(&n.0), Err(status));
        assert_eq!(std::fs::read(&path).unwrap(), junk, "the file stays");
    }
    let c = std::ffi::CString::new(n.0.clone()).unwrap();
    Queue::unlink_c(&c, true).unwrap();
    assert!(std::fs::metadata(&path).is_err());
    // A queue of another layout version is still fastqueue's: removed.
    let good = {
        let m = Name::new("good");
        let _q = Queue::create(&m.0, 64, 4, 0o600).unwrap();
        std::fs::read(format!("/dev/shm/{}", m.0)).unwrap()
    };
    let mut old = good.clone();
    old[8] = 1;
    write_segment(&n.0, &old);
    Queue::unlink(&n.0).unwrap();
    assert!(std::fs::metadata(&path).is_err());
}

#[test]
fn blocked_get_is_woken_by_a_put_and_blocked_put_by_a_get() {
    let n = Name::new("wake");
    let q = Queue::create(&n.0, 8, 1, 0o600).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let c = Queue::open(&n.0).unwrap();
            let mut buf = [0u8; 8];
            let mut got = Vec::new();
            for _ in 0..3 {
                let k = c.get(&mut buf, None).unwrap();
                got.push(buf[..k].to_vec());
                std::thread::sleep(Duration::from_millis(20));
            }
            got
        });
        std::thread::sleep(Duration::from_millis(50));
        for m in [b"one".as_slice(), b"two", b"three"] {
            q.put(m, None).unwrap(); // the second and third block on a full queue
        }
        assert_eq!(
            t.join().unwrap(),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    });
}

#[test]
fn timeouts_wait_at_least_as_long_as_asked() {
    let n = Name::new("timeout");
    let q = Queue::create(&n.0, 8, 1, 0o600).unwrap();
    let mut buf = [0u8; 8];
    let t0 = Instant::now();
    assert_eq!(
        q.get(&mut buf, Some(Duration::from_millis(30))),
        Err(Status::Empty)
    );
    assert!(t0.elapsed() >= Duration::from_millis(30));
    q.put(b"x", NOW).unwrap();
    let t0 = Instant::now();
    assert_eq!(
        q.put(b"y", Some(Duration::from_millis(30))),
        Err(Status::Full)
    );
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.put(b"y", NOW), Err(Status::Full));
    assert_eq!(q.put(&[0; 9], NOW), Err(Status::TooBig));
    assert_eq!(q.len(), 1);
    let [_, _, full_hits, empty_hits, ..] = q.stats();
    assert!(full_hits >= 2 && empty_hits >= 1);
}

#[test]
fn zero_copy_claims_and_a_closed_handles_open_claims() {
    let n = Name::new("zc");
    let q = Queue::create(&n.0, 16, 2, 0o600).unwrap();
    let tok = q.claim_write(NOW).unwrap();
    // SAFETY: we hold the claim; the payload has 16 bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"zero-copy".as_ptr(), q.payload(tok), 9) };
    assert_eq!(q.commit_write(tok, 17), Err(Status::TooBig));
    q.commit_write(tok, 9).unwrap();
    assert_eq!(
        q.commit_write(tok, 9),
        Err(Status::Invalid),
        "a token commits once"
    );
    let mut needed = 0;
    let c = q.claim_read(u64::MAX, NOW, &mut needed).unwrap();
    // SAFETY: we hold the read claim on c.len bytes.
    let got = unsafe { std::slice::from_raw_parts(q.payload(c.pos), c.len as usize) }.to_vec();
    assert_eq!(got, b"zero-copy");
    q.release_read(c.pos).unwrap();
    // A second handle claims a slot and a message, then closes without finishing either.
    q.put(b"kept?", NOW).unwrap();
    {
        let other = Queue::open(&n.0).unwrap();
        let _r = other.claim_read(u64::MAX, NOW, &mut needed).unwrap();
        let _w = other.claim_write(NOW).unwrap();
    }
    // Neither claim wedges the queue: the read message died with its reader, the write is skipped.
    q.put(b"after", NOW).unwrap();
    let mut buf = [0u8; 16];
    let k = q.get(&mut buf, NOW).unwrap();
    assert_eq!(&buf[..k], b"after");
    assert_eq!(q.get(&mut buf, NOW), Err(Status::Empty));
    assert!(q.stats()[4] >= 2, "recoveries counted");
}

/// A large-message queue uses the pooled layout: a put+get loop keeps writing into the buffer
/// the last get read (one warm buffer instead of `capacity` cold ones), and messages queued
/// together still each have their own buffer.
#[test]
fn pooled_queue_reuses_the_warm_buffer() {
    let n = Name::new("pooled");
    let q = Queue::create(&n.0, 1 << 16, 8, 0o600).unwrap();
    assert!(q.stats()[12] >= 8 << 16, "segment size");
    let mut needed = 0;
    let mut seen = std::collections::HashSet::new();
    for i in 0..40u8 {
        let tok = q.claim_write(NOW).unwrap();
        let p = q.payload(tok);
        seen.insert(p as usize);
        // SAFETY: we hold the write claim; the payload has 64 KiB.
        unsafe { std::ptr::write_bytes(p, i, 1 << 16) };
        q.commit_write(tok, 1 << 16).unwrap();
        let c = q.claim_read(u64::MAX, NOW, &mut needed).unwrap();
        assert_eq!(q.payload(c.pos), p);
        // SAFETY: we hold the read claim on c.len bytes.
        let got = unsafe { std::slice::from_raw_parts(q.payload(c.pos), c.len as usize) };
        assert!(got.iter().all(|&b| b == i));
        q.release_read(c.pos).unwrap();
    }
    assert_eq!(
        seen.len(),
        1,
        "every put after the first used the warm buffer"
    );
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..8u8 {
        q.put(&[i; 1 << 16], NOW).unwrap();
    }
    for i in 0..8u8 {
        assert_eq!(q.get(&mut buf, NOW).unwrap(), 1 << 16);
        assert!(buf.iter().all(|&b| b == i), "message {i} was overwritten");
    }
}

#[test]
fn small_buffer_reports_the_needed_size() {
    let n = Name::new("buf");
    let q = Queue::create(&n.0, 64, 2, 0o600).unwrap();
    q.put(&[7; 40], NOW).unwrap();
    let mut small = [0u8; 10];
    let mut needed = 0;
    assert_eq!(
        q.get_sized(&mut small, NOW, &mut needed),
        Err(Status::Buffer)
    );
    assert_eq!(needed, 40);
    let mut buf = [0u8; 64];
    assert_eq!(q.get(&mut buf, NOW), Ok(40));
}

#[test]
fn batches_go_in_order_and_stop_at_what_fits() {
    let n = Name::new("batch");
    let q = Queue::create(&n.0, 8, 5, 0o600).unwrap();
    let mut done = 0;
    let data = b"aabbbcdddd";
    assert_eq!(
        q.put_many(data, &[2, 9], NOW, &mut done),
        Err(Status::TooBig)
    );
    assert_eq!(
        q.put_many(data, &[2, 9, 9], NOW, &mut done),
        Err(Status::TooBig)
    );
    assert_eq!(
        q.put_many(data, &[8, 8], NOW, &mut done),
        Err(Status::Invalid)
    );
    assert_eq!((done, q.len()), (0, 0), "a rejected batch puts nothing");
    q.put_many(data, &[2, 3, 1, 4, 0], NOW, &mut done).unwrap();
    assert_eq!(done, 5);
    assert_eq!(q.put_many(b"x", &[1], NOW, &mut done), Err(Status::Full));
    let mut buf = [0u8; 6];
    let mut lens = [0u64; 4];
    let mut count = 0;
    q.get_many(&mut buf, &mut lens, NOW, &mut count).unwrap();
    // "dddd" does not fit in the 1 byte left: it stays queued.
    assert_eq!(
        (count, &lens[..3], &buf[..6]),
        (3, &[2u64, 3, 1][..], &b"aabbbc"[..])
    );
    q.get_many(&mut buf, &mut lens, NOW, &mut count).unwrap();
    assert_eq!(
        (count, &lens[..2], &buf[..4]),
        (2, &[4u64, 0][..], &b"dddd"[..])
    );
    assert_eq!(
        q.get_many(&mut buf, &mut lens, NOW, &mut count),
        Err(Status::Empty)
    );
    assert_eq!(count, 0);
}

/// Exact-size batches take messages of exactly `itemsize` bytes, back to back, and stop before
/// one of another length, which stays queued; a first message of another length is reported
/// with its length and stays queued too.
#[test]
fn exact_batches_take_records_of_one_size_and_leave_the_rest() {
    let n = Name::new("exact");
    let q = Queue::create(&n.0, 8, 8, 0o600).unwrap();
    let mut done = 0;
    q.put_many(b"aaaabbbbccccdddddeeee", &[4, 4, 4, 5, 4], NOW, &mut done)
        .unwrap();
    let mut buf = [0u8; 16];
    let mut count = 0;
    assert_eq!(
        q.get_many_exact(&mut buf, 4, 5, NOW, &mut count),
        Err(Status::Invalid),
        "a buffer smaller than itemsize x max_items is refused"
    );
    q.get_many_exact(&mut buf, 4, 4, NOW, &mut count).unwrap();
    assert_eq!((count, &buf[..12]), (3, &b"aaaabbbbcccc"[..]));
    // "ddddd" is 5 bytes: it stays, reported with its length, whether longer or shorter.
    for k in [4, 6] {
        assert_eq!(
            q.get_many_exact(&mut buf, k, 2, NOW, &mut count),
            Err(Status::Buffer)
        );
        assert_eq!(count, 5);
    }
    let mut one = [0u8; 8];
    assert_eq!(q.get(&mut one, NOW), Ok(5));
    q.get_many_exact(&mut buf, 4, 4, NOW, &mut count).unwrap();
    assert_eq!((count, &buf[..4]), (1, &b"eeee"[..]));
    assert_eq!(
        q.get_many_exact(&mut buf, 4, 4, NOW, &mut count),
        Err(Status::Empty)
    );
    // Zero-length records are records too.
    q.put_many(b"", &[0, 0, 0], NOW, &mut done).unwrap();
    q.get_many_exact(&mut [], 0, 8, NOW, &mut count).unwrap();
    assert_eq!(count, 3);
    assert_eq!(q.len(), 0);
}

/// Batches claim runs of consecutive slots; runs break where another producer got in between,
/// at an abandoned slot, and at a full ring. Two producers putting batches of 1..7 and two
/// consumers taking batches of 1..6 on a ring of capacity 5 (not a power of two): every
/// message arrives exactly once, each producer's in order, and the counters end exact.
#[test]
fn batches_race_as_runs_exactly_once_and_in_order() {
    let n = Name::new("runs");
    let q = Queue::create(&n.0, 8, 5, 0o600).unwrap();
    const PER_PRODUCER: u32 = 20_000;
    let got = std::thread::scope(|s| {
        for p in 0..2u32 {
            let q = q.try_clone().unwrap();
            s.spawn(move || {
                let mut i = 0;
                let mut size = 1;
                while i < PER_PRODUCER {
                    let k = size.min(PER_PRODUCER - i);
                    let data: Vec<u8> = (i..i + k)
                        .flat_map(|v| (p << 24 | v).to_le_bytes())
                        .collect();
                    let lens = vec![4u64; k as usize];
                    let mut done = 0;
                    q.put_many(&data, &lens, Some(Duration::from_secs(30)), &mut done)
                        .unwrap();
                    assert_eq!(done, u64::from(k));
                    if i % 97 == 0 {
                        // An abandoned slot inside someone's run: consumers skip it.
                        let t = q.claim_write(Some(Duration::from_secs(30))).unwrap();
                        q.abort_write(t).unwrap();
                    }
                    i += k;
                    size = size % 7 + 1;
                }
            });
        }
        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let q = q.try_clone().unwrap();
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 64];
                    let mut lens = [0u64; 6];
                    let mut want = c + 1;
                    let mut count = 0;
                    while got.len() < PER_PRODUCER as usize {
                        match q.get_many(
                            &mut buf[..want * 4],
                            &mut lens[..want],
                            Some(Duration::from_millis(200)),
                            &mut count,
                        ) {
                            Ok(()) => {}
                            Err(Status::Empty) => break,
                            Err(e) => panic!("{e:?}"),
                        }
                        for (k, &len) in lens[..count as usize].iter().enumerate() {
                            assert_eq!(len, 4);
                            let v = u32::from_le_bytes(buf[k * 4..k * 4 + 4].try_into().unwrap());
                            got.push(v);
                        }
                        want = want % 6 + 1;
                    }
                    got
                })
            })
            .collect();
        consumers
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    let mut all: Vec<u32> = got.iter().flatten().copied().collect();
    for each in &got {
        for p in 0..2u32 {
            let mine: Vec<u32> = each.iter().copied().filter(|v| v >> 24 == p).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {p} out of order"
            );
        }
    }
    all.sort_unstable();
    let mut sent: Vec<u32> = (0..2u32)
        .flat_map(|p| (0..PER_PRODUCER).map(move |v| p << 24 | v))
        .collect();
    sent.sort_unstable();
    assert_eq!(all.len(), sent.len(), "lost or duplicated messages");
    assert_eq!(all, sent);
    assert_eq!(q.len(), 0, "tail and head settled on the same position");
}

/// Batches far longer than the ring (64 messages on a ring of 2), single puts, and a batch and
/// a single consumer emptying it: every message arrives, none is reported corrupt. (Runs must
/// settle `tail`/`head` once per ring's worth of claims, or the others read a slot two laps
/// ahead of the counter; threads in one process rarely interleave so, the cross-process
/// `tests/test_crash.py -k batches` catches it.)
#[test]
fn runs_longer_than_the_ring_keep_the_counters_within_a_lap() {
    let n = Name::new("laps");
    let q = Queue::create(&n.0, 8, 2, 0o600).unwrap();
    const BATCHES: u64 = 300;
    const SINGLES: u64 = 5_000;
    let wait = Some(Duration::from_secs(30));
    let got = std::thread::scope(|s| {
        let batcher = {
            let q = q.try_clone().unwrap();
            s.spawn(move || {
                let data = [1u8; 64];
                for _ in 0..BATCHES {
                    let mut done = 0;
                    q.put_many(&data, &[1; 64], wait, &mut done).unwrap();
                }
            })
        };
        let single = {
            let q = q.try_clone().unwrap();
            s.spawn(move || {
                for _ in 0..SINGLES {
                    q.put(&[2], wait).unwrap();
                }
            })
        };
        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let q = q.try_clone().unwrap();
                s.spawn(move || {
                    let (mut buf, mut lens, mut count, mut got) = ([0u8; 64], [0u64; 64], 0, 0u64);
                    loop {
                        let r = if c == 0 {
                            q.get_many(
                                &mut buf,
                                &mut lens,
                                Some(Duration::from_millis(300)),
                                &mut count,
                            )
                        } else {
                            q.get(&mut buf, Some(Duration::from_millis(300)))
                                .map(|_| count = 1)
                        };
                        match r {
                            Ok(()) => got += count,
                            Err(Status::Empty) => return got,
                            Err(e) => panic!("consumer {c}: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        batcher.join().unwrap();
        single.join().unwrap();
        consumers
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum::<u64>()
    });
    assert_eq!(got, BATCHES * 64 + SINGLES);
}

/// A batch that finds the ring full waits a little for room for several messages, but never
/// more than a spin: here the consumer takes a message only while the ring is full, so there is
/// never room for two, and the batch must go in slot by slot, as single puts do.
#[test]
fn a_batch_waiting_for_room_settles_for_one_slot_at_a_time() {
    let n = Name::new("room");
    let q = Queue::create(&n.0, 8, 8, 0o600).unwrap();
    let mut done = 0;
    q.put_many(&[1; 8], &[1; 8], NOW, &mut done).unwrap();
    let got = std::thread::scope(|s| {
        let consumer = {
            let q = q.try_clone().unwrap();
            s.spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 8];
                while got.len() < 18 {
                    while q.len() < 8 && got.len() < 10 {
                        std::thread::yield_now(); // take only from a full ring
                    }
                    let len = q.get(&mut buf, Some(Duration::from_secs(30))).unwrap();
                    got.extend_from_slice(&buf[..len]);
                }
                got
            })
        };
        q.put_many(&[2; 10], &[1; 10], Some(Duration::from_secs(30)), &mut done)
            .unwrap();
        assert_eq!(done, 10);
        consumer.join().unwrap()
    });
    assert_eq!(got, [[1u8; 8].as_slice(), &[2; 10]].concat());
}

#[test]
fn shutdown_wakes_waiters_drains_then_refuses() {
    let n = Name::new("shut");
    let q = Queue::create(&n.0, 8, 2, 0o600).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let c = Queue::open(&n.0).unwrap();
            let mut buf = [0u8; 8];
            c.get(&mut buf, None).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(50));
        let other = Queue::open(&n.0).unwrap();
        other.shutdown(false).unwrap();
        assert_eq!(waiter.join().unwrap(), Err(Status::ShutDown));
    });
    assert_eq!(q.put(b"late", None), Err(Status::ShutDown));
    let n2 = Name::new("shut2");
    let q = Queue::create(&n2.0, 8, 2, 0o600).unwrap();
    q.put(b"left", NOW).unwrap();
    q.shutdown(false).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        q.get(&mut buf, NOW),
        Ok(4),
        "a graceful shutdown lets gets drain"
    );
    assert_eq!(q.get(&mut buf, None), Err(Status::ShutDown));
    let n3 = Name::new("shut3");
    let q = Queue::create(&n3.0, 8, 2, 0o600).unwrap();
    q.put(b"gone", NOW).unwrap();
    q.shutdown(true).unwrap();
    assert_eq!(q.get(&mut buf, None), Err(Status::ShutDown));
    assert_eq!(q.len(), 0);
    assert_eq!(q.unfinished(), 0, "discarded messages count as done");
}

#[test]
fn task_done_and_join_across_handles() {
    let n = Name::new("join");
    let q = Queue::create(&n.0, 8, 4, 0o600).unwrap();
    assert_eq!(q.join(NOW), Ok(()));
    assert_eq!(q.task_done(1), Err(Status::Invalid));
    q.put(b"1", NOW).unwrap();
    q.put(b"2", NOW).unwrap();
    assert_eq!(q.unfinished(), 2);
    assert_eq!(
        q.join(Some(Duration::from_millis(10))),
        Err(Status::Timeout)
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            let c = Queue::open(&n.0).unwrap();
            let mut buf = [0u8; 8];
            for _ in 0..2 {
                c.get(&mut buf, None).unwrap();
                std::thread::sleep(Duration::from_millis(10));
                c.task_done(1).unwrap();
            }
        });
        assert_eq!(q.join(None), Ok(()));
    });
    assert_eq!(q.task_done(1), Err(Status::Invalid));
    let s = q.stats();
    assert_eq!((s[0], s[1], s[9], s[10]), (2, 2, 2, 0));
}

#[test]
fn observers_read_but_never_claim() {
    let n = Name::new("observe");
    let q = Queue::create(&n.0, 8, 2, 0o600).unwrap();
    q.put(b"x", NOW).unwrap();
    let name = std::ffi::CString::new(n.0.clone()).unwrap();
    let o = Queue::observe_c(&name).unwrap();
    assert_eq!(o.len(), 1);
    assert_eq!(o.live_participants(), 1);
    assert_eq!(o.put(b"y", NOW), Err(Status::Invalid));
    let mut buf = [0u8; 8];
    assert_eq!(o.get(&mut buf, NOW), Err(Status::Invalid));
    let p = Queue::open(&n.0).unwrap();
    assert_eq!(o.live_participants(), 2);
    drop(p);
    assert_eq!(o.live_participants(), 1);
    drop(q);
    assert_eq!(o.live_participants(), 0);
}

#[test]
fn wait_ready_takes_nothing() {
    let n = Name::new("ready");
    let q = Queue::create(&n.0, 8, 1, 0o600).unwrap();
    assert_eq!(q.wait_ready(true, NOW), Err(Status::Timeout));
    assert_eq!(q.wait_ready(false, NOW), Ok(()));
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let c = Queue::open(&n.0).unwrap();
            c.wait_ready(true, None)
        });
        std::thread::sleep(Duration::from_millis(30));
        q.put(b"x", NOW).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
    });
    assert_eq!(q.len(), 1, "waiting took nothing");
    assert_eq!(
        q.wait_ready(false, Some(Duration::from_millis(5))),
        Err(Status::Timeout)
    );
    q.shutdown(false).unwrap();
    assert_eq!(q.wait_ready(true, NOW), Ok(()), "still one to drain");
    assert_eq!(q.wait_ready(false, NOW), Err(Status::ShutDown));
    let mut buf = [0u8; 8];
    q.get(&mut buf, NOW).unwrap();
    assert_eq!(q.wait_ready(true, None), Err(Status::ShutDown));
}

#[test]
fn what_is_not_a_segment_is_refused_at_once() {
    // A layout version no fastqueue writes (random bytes after the magic) is corrupt, not
    // "another version".
    let good = {
        let m = Name::new("good2");
        let _q = Queue::create(&m.0, 64, 4, 0o600).unwrap();
        std::fs::read(format!("/dev/shm/{}", m.0)).unwrap()
    };
    let n = Name::new("garbage-version");
    let mut v = good.clone();
    v[8..12].copy_from_slice(&0xFDF5_3FEFu32.to_ne_bytes());
    write_segment(&n.0, &v);
    assert_eq!(Queue::open(&n.0).err(), Some(Status::BadSegment));
    // A directory, a FIFO (never waited on for its size) and a symbolic link (never followed).
    let path = |n: &Name| format!("/dev/shm/{}", n.0);
    let dir = Name::new("dir");
    std::fs::create_dir(path(&dir)).unwrap();
    let fifo = Name::new("fifo");
    let c = std::ffi::CString::new(path(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let link = Name::new("link");
    let target = Name::new("target");
    let _t = Queue::create(&target.0, 8, 1, 0o600).unwrap();
    std::os::unix::fs::symlink(path(&target), path(&link)).unwrap();
    let refused = [&dir, &fifo, &link].map(|n| Queue::open(&n.0).err());
    let _ = std::fs::remove_dir(path(&dir));
    let _ = std::fs::remove_file(path(&fifo));
    let _ = std::fs::remove_file(path(&link));
    assert_eq!(refused, [Some(Status::BadSegment); 3]);
}
