//! A Rust process on a fastqueue queue, through the crate's safe API (`fastqueue::Queue`): the
//! same queue a Python `fastqueue.Queue` or a C program using `fastqueue.h` attaches to by name.
//!
//! ```text
//! rust_peer produce NAME COUNT                     attach to NAME (waiting up to 10 s for it),
//!                                                  put COUNT messages
//! rust_peer consume NAME COUNT                     attach to NAME, get COUNT messages and check
//!                                                  every byte
//! rust_peer consume NAME COUNT MAX_MSG CAPACITY    create NAME first (mode 0600), remove it at
//!                                                  the end
//! ```
//!
//! Message `i` is the pattern of `examples/c/pattern.h` (so Rust, C and Python peers can check
//! each other): `len(i)` bytes, where `len(i)` is `max_msg` for every 16th message from 1 on and
//! `(i * 2654435761 mod 2^64) mod (max_msg + 1)` otherwise, and byte `j` is `(7 i + j) mod 256`.
//! Every put and get waits at most 10 s, so a vanished peer ends the program with an error
//! instead of a hang. Exit status 0 on success, 1 on any failure (with a message on stderr).
//!
//! Build and run (`tests/test_rust_interop.py` does this against Python peers):
//!
//! ```text
//! cargo build --release --example rust_peer
//! target/release/examples/rust_peer consume demo-q 1000 4096 64 &
//! target/release/examples/rust_peer produce demo-q 1000
//! ```
use fastqueue::{Queue, Status};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long one put or get, or waiting for the queue to appear, may take.
const WAIT: Duration = Duration::from_secs(10);

/// Length of message `i` for a queue whose largest message is `max_msg` bytes.
fn msg_len(i: u64, max_msg: u64) -> u64 {
    if i % 16 == 1 {
        max_msg
    } else {
        i.wrapping_mul(2_654_435_761) % (max_msg + 1)
    }
}

/// Writes message `i` into `buf` and returns it.
fn fill(buf: &mut [u8], i: u64, max_msg: u64) -> &[u8] {
    let len = msg_len(i, max_msg) as usize;
    for (j, b) in buf[..len].iter_mut().enumerate() {
        *b = (i.wrapping_mul(7).wrapping_add(j as u64)) as u8;
    }
    &buf[..len]
}

/// `Ok` if `msg` is message `i`, or a description of the first difference.
fn check(msg: &[u8], i: u64, max_msg: u64) -> Result<(), String> {
    let want = msg_len(i, max_msg);
    if msg.len() as u64 != want {
        return Err(format!(
            "message {i} is {} bytes long, not {want}",
            msg.len()
        ));
    }
    match msg
        .iter()
        .enumerate()
        .find(|&(j, &b)| b != (i.wrapping_mul(7).wrapping_add(j as u64)) as u8)
    {
        Some((j, _)) => Err(format!("message {i} is wrong at byte {j}")),
        None => Ok(()),
    }
}

/// `Queue::open`, retried every 10 ms while the queue does not exist (or is still being
/// created), for up to [`WAIT`].
fn open_when_there(name: &str) -> Result<Queue, Status> {
    let start = Instant::now();
    loop {
        match Queue::open(name) {
            Err(Status::NotFound | Status::NotReady) if start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn produce(name: &str, count: u64) -> Result<String, String> {
    let q = open_when_there(name).map_err(|s| format!("cannot open {name}: {s:?}"))?;
    let max_msg = q.max_msg();
    let mut buf = vec![0u8; max_msg as usize];
    for i in 0..count {
        q.put(fill(&mut buf, i, max_msg), Some(WAIT))
            .map_err(|s| format!("put of message {i} failed: {s:?}"))?;
    }
    Ok(format!("rust producer: sent {count} messages"))
}

fn consume(name: &str, count: u64, create: Option<(u64, u64)>) -> Result<String, String> {
    let q = match create {
        Some((max_msg, capacity)) => Queue::create(name, max_msg, capacity, 0o600),
        None => open_when_there(name),
    }
    .map_err(|s| format!("cannot attach to {name}: {s:?}"))?;
    // Whatever happens below, a queue this program created is removed when it ends.
    struct Unlink<'a>(Option<&'a str>);
    impl Drop for Unlink<'_> {
        fn drop(&mut self) {
            if let Some(name) = self.0 {
                let _ = Queue::unlink(name);
            }
        }
    }
    let _unlink = Unlink(create.map(|_| name));
    let max_msg = q.max_msg();
    let mut buf = vec![0u8; max_msg as usize];
    for i in 0..count {
        let n = q
            .get(&mut buf, Some(WAIT))
            .map_err(|s| format!("get of message {i} failed: {s:?}"))?;
        check(&buf[..n], i, max_msg)?;
    }
    Ok(format!(
        "rust consumer: received {count} messages, all correct"
    ))
}

fn number(arg: Option<&String>, what: &str) -> Result<u64, String> {
    arg.ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("{what} must be a non-negative integer"))
}

fn run(args: &[String]) -> Result<String, String> {
    let usage =
        "usage: rust_peer produce NAME COUNT | rust_peer consume NAME COUNT [MAX_MSG CAPACITY]";
    let (Some(cmd), Some(name)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let count = number(args.get(2), "COUNT")?;
    match (cmd.as_str(), args.len()) {
        ("produce", 3) => produce(name, count),
        ("consume", 3) => consume(name, count, None),
        ("consume", 5) => {
            let sizes = (
                number(args.get(3), "MAX_MSG")?,
                number(args.get(4), "CAPACITY")?,
            );
            consume(name, count, Some(sizes))
        }
        _ => Err(usage.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("rust_peer: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_round_trips_and_matches_pattern_h() {
        let mut buf = [0u8; 100];
        assert_eq!(fill(&mut buf, 0, 100), b"");
        assert_eq!(msg_len(1, 100), 100);
        for i in 0..500 {
            let msg = fill(&mut buf, i, 100).to_vec();
            assert!(check(&msg, i, 100).is_ok());
            if !msg.is_empty() {
                assert!(check(&msg, i + 1, 100).is_err());
            }
        }
        assert_eq!(fill(&mut buf, 1, 100)[..3], [7, 8, 9]);
    }
}
