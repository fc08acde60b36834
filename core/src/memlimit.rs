//! How much memory a new segment may still take without waking the OOM killer.
//!
//! A segment's pages live in `/dev/shm` (tmpfs): they are reserved when the segment is created
//! and cannot be swapped out without swap, nor reclaimed while the name exists. `/dev/shm`'s own
//! size limit (half of RAM by default, often all of it) does not protect the machine: a queue
//! larger than free memory yet smaller than that limit makes the kernel kill *other* processes.
//! So before reserving anything, creation asks two sources what they can still give:
//!
//! * the machine: `MemAvailable` of `/proc/meminfo` (the kernel's estimate of what can be
//!   allocated without swapping), against `MemTotal`;
//! * the process's memory cgroup and each of its ancestors (the tightest wins): cgroup v2
//!   `memory.max - memory.current` under `/sys/fs/cgroup/<path of the "0::" line of
//!   /proc/self/cgroup>`, cgroup v1 `memory.limit_in_bytes - memory.usage_in_bytes` under
//!   `/sys/fs/cgroup/memory/<path of the "memory" line>`. A limit of `max` (v2) or ≥ 2^62 (v1,
//!   "unlimited") is no limit; a file that cannot be read is no limit either (no cgroup, a
//!   container that hides it): the guard then rests on the sources it could read.
//!
//! A segment is accepted when `size + margin <= room` for every source, where the margin is
//! `min(256 MiB, total / 16)` of that source's total (`MemTotal`, or the cgroup's limit): the
//! kernel's own reserves, page tables and the other processes' next allocations need some room,
//! and 1/16 keeps a small container (a 512 MiB cgroup keeps 32 MiB) usable while a big machine
//! keeps a fixed 256 MiB. The figures are read from the files on every creation (never cached),
//! so that a test can stand a small `/proc/meminfo` in front of the real one.
//!
//! **Concurrent creators.** A check followed by a reservation is a race: two creators that check
//! at the same instant both see the same room and together take twice what it allows (the OOM
//! killer then kills a creator, or a bystander). So every fastqueue creator on the machine makes
//! the check and the reservation one step, under the *guard lock* ([`GuardLock`]): an
//! exclusive `flock` on the `/dev/shm` directory itself, which every creator can open
//! (read-only is enough), no user can remove or replace, and which leaves no file behind. Under
//! the lock a creator checks ([`check`]), reserves (`posix_fallocate`: the pages are then
//! charged to its cgroup and counted out of `MemAvailable`), and checks again ([`still_fits`]):
//! if the sources no longer keep their margin (something else allocated meanwhile), it undoes
//! the reservation and fails with [`Status::NoSpace`]. The next creator's check sees the pages.
//! The kernel drops the lock when its holder dies. Since anyone can take it, a hostile holder
//! could stall creation: a creator waits at most [`GUARD_WAIT`] for it and then fails with
//! [`Status::Os`] and `ETIMEDOUT` (it never reserves without the lock: the guarantee is never
//! silently dropped).

use crate::Status;
use std::path::{Path, PathBuf};

/// The most a source keeps free, in bytes.
const MAX_MARGIN: u64 = 256 << 20;

/// What one source (the machine, or one cgroup level) can still give.
#[derive(Debug, Clone, Copy)]
struct Source {
    /// Bytes it can still give.
    room: u64,
    /// Its total (MemTotal, or the cgroup's limit): the margin is a share of it.
    total: u64,
}

impl Source {
    fn margin(self) -> u64 {
        MAX_MARGIN.min(self.total / 16)
    }

    /// The largest segment this source accepts.
    fn allows(self) -> u64 {
        self.room.saturating_sub(self.margin())
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A `/proc/meminfo` value in bytes (`Key:   123 kB`).
fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut words = rest.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => n.checked_mul(1024),
            None => Some(n),
            Some(_) => None,
        }
    })
}

fn machine() -> Option<Source> {
    let text = read(Path::new("/proc/meminfo"))?;
    Some(Source {
        room: meminfo_field(&text, "MemAvailable")?,
        total: meminfo_field(&text, "MemTotal").unwrap_or(u64::MAX),
    })
}

fn number(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// The tightest cgroup level from `leaf` up to `base` (inclusive), with the limit and usage
/// file names of that cgroup version; `unlimited(limit)` says which limits mean none.
fn cgroup_levels(
    base: &Path,
    leaf: &Path,
    limit_file: &str,
    usage_file: &str,
    unlimited: fn(&str) -> bool,
) -> Option<Source> {
    let mut best: Option<Source> = None;
    let mut dir = if leaf.is_dir() {
        leaf.to_path_buf()
    } else {
        base.to_path_buf() // a container without a cgroup namespace: its own cgroup is the base
    };
    loop {
        if let Some(limit_text) = read(&dir.join(limit_file)) {
            let limit_text = limit_text.trim();
            if !unlimited(limit_text) {
                if let (Ok(limit), Some(usage)) =
                    (limit_text.parse::<u64>(), number(&dir.join(usage_file)))
                {
                    let s = Source {
                        room: limit.saturating_sub(usage),
                        total: limit,
                    };
                    if best.map_or(true, |b| s.allows() < b.allows()) {
                        best = Some(s);
                    }
                }
            }
        }
        if dir == base || !dir.pop() || !dir.starts_with(base) {
            return best;
        }
    }
}

/// The process's memory cgroup (v2, then v1), if one limits it.
fn cgroup() -> Option<Source> {
    let text = read(Path::new("/proc/self/cgroup"))?;
    let mut best: Option<Source> = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        let found = if id == "0" && controllers.is_empty() {
            let base = PathBuf::from("/sys/fs/cgroup");
            cgroup_levels(
                &base,
                &base.join(rel),
                "memory.max",
                "memory.current",
                |l| l == "max",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            let base = PathBuf::from("/sys/fs/cgroup/memory");
            cgroup_levels(
                &base,
                &base.join(rel),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                |l| l.parse::<u64>().map_or(true, |v| v >= 1 << 62),
            )
        } else {
            None
        };
        if let Some(s) = found {
            if best.map_or(true, |b| s.allows() < b.allows()) {
                best = Some(s);
            }
        }
    }
    best
}

/// The largest segment, in bytes, that creation accepts now as far as memory is concerned
/// (`u64::MAX` when no source could be read). `/dev/shm`'s own free space is checked by the
/// reservation itself (it fails with `ENOSPC`, which harms nobody).
pub fn room() -> u64 {
    [machine(), cgroup()]
        .into_iter()
        .flatten()
        .map(Source::allows)
        .min()
        .unwrap_or(u64::MAX)
}

/// Fails with [`Status::NoSpace`] if a segment of `size` bytes would leave the machine or the
/// process's memory cgroup with less than the margin.
pub fn check(size: u64) -> Result<(), Status> {
    if size > room() {
        Err(Status::NoSpace)
    } else {
        Ok(())
    }
}

/// Whether every source still keeps its margin, checked once a reservation was made (its
/// pages are then counted as used): `false` means the reservation must be undone.
pub fn still_fits() -> bool {
    [machine(), cgroup()]
        .into_iter()
        .flatten()
        .all(|s| s.room >= s.margin())
}

/// The directory whose lock serialises every creator's check and reservation, NUL-terminated.
pub const GUARD_LOCK_PATH: &[u8] = b"/dev/shm\0";

/// The longest a creator waits for the guard lock (a reservation takes milliseconds per
/// hundred MiB; only a stuck or hostile holder keeps it longer).
pub const GUARD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The guard lock, held until dropped (closing the descriptor drops the lock).
pub struct GuardLock {
    fd: libc::c_int,
}

impl Drop for GuardLock {
    fn drop(&mut self) {
        // SAFETY: fd is ours; closing its only descriptor releases the flock.
        unsafe { libc::close(self.fd) };
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets errno to `e` and returns the status creation fails with when the guard is unusable.
fn guard_error(e: i32) -> Status {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
    match e {
        libc::EACCES | libc::EPERM => Status::Permission,
        _ => Status::Os,
    }
}

/// Takes the guard lock (see the module's documentation), waiting up to [`GUARD_WAIT`]
/// (`FASTQUEUE_TEST_HOOK_GUARD_WAIT_MS` shortens it, for tests).
pub fn lock() -> Result<GuardLock, Status> {
    let wait = std::env::var("FASTQUEUE_TEST_HOOK_GUARD_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(GUARD_WAIT, std::time::Duration::from_millis);
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe {
        libc::open(
            GUARD_LOCK_PATH.as_ptr().cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(guard_error(errno()));
    }
    let guard = GuardLock { fd };
    let deadline = std::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_micros(200);
    loop {
        // SAFETY: fd is a valid descriptor.
        if unsafe { libc::flock(guard.fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(guard);
        }
        let e = errno();
        if e != libc::EWOULDBLOCK && e != libc::EINTR {
            return Err(guard_error(e)); // (drops `guard`)
        }
        if std::time::Instant::now() >= deadline {
            return Err(guard_error(libc::ETIMEDOUT));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        let text = "MemTotal:       16384 kB\nMemFree:  10 kB\nMemAvailable:    8192 kB\n";
        assert_eq!(meminfo_field(text, "MemTotal"), Some(16384 * 1024));
        assert_eq!(meminfo_field(text, "MemAvailable"), Some(8192 * 1024));
        assert_eq!(meminfo_field(text, "Mem"), None);
        assert_eq!(meminfo_field(text, "SwapTotal"), None);
    }

    #[test]
    fn the_margin_is_a_sixteenth_up_to_256_mib() {
        let small = Source {
            room: 100 << 20,
            total: 512 << 20,
        };
        assert_eq!(small.allows(), (100 << 20) - (32 << 20));
        let big = Source {
            room: 20 << 30,
            total: 64 << 30,
        };
        assert_eq!(big.allows(), (20 << 30) - (256 << 20));
        let full = Source {
            room: 1 << 20,
            total: 1 << 30,
        };
        assert_eq!(full.allows(), 0);
    }

    #[test]
    fn the_tightest_cgroup_level_wins() {
        let base = std::env::temp_dir().join(format!("fq-memlimit-{}", std::process::id()));
        let leaf = base.join("parent").join("leaf");
        std::fs::create_dir_all(&leaf).unwrap();
        let write = |dir: &Path, limit: &str, usage: u64| {
            std::fs::write(dir.join("memory.max"), format!("{limit}\n")).unwrap();
            std::fs::write(dir.join("memory.current"), format!("{usage}\n")).unwrap();
        };
        let v2 = |l: &str| l == "max";
        write(&base, "max", 1 << 30);
        write(&base.join("parent"), &(1u64 << 30).to_string(), 900 << 20);
        write(&leaf, &(4u64 << 30).to_string(), 100 << 20);
        let s = cgroup_levels(&base, &leaf, "memory.max", "memory.current", v2).unwrap();
        assert_eq!((s.room, s.total), (124 << 20, 1 << 30)); // the parent's
        write(&base.join("parent"), "max", 0);
        let s = cgroup_levels(&base, &leaf, "memory.max", "memory.current", v2).unwrap();
        assert_eq!(s.total, 4 << 30); // the leaf's
        write(&leaf, "max", 0);
        assert!(cgroup_levels(&base, &leaf, "memory.max", "memory.current", v2).is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn cgroup_v1_files_are_read_and_unlimited_is_no_limit() {
        let base = std::env::temp_dir().join(format!("fq-memlimit-v1-{}", std::process::id()));
        let leaf = base.join("leaf");
        std::fs::create_dir_all(&leaf).unwrap();
        let write = |dir: &Path, limit: u64, usage: u64| {
            std::fs::write(dir.join("memory.limit_in_bytes"), format!("{limit}\n")).unwrap();
            std::fs::write(dir.join("memory.usage_in_bytes"), format!("{usage}\n")).unwrap();
        };
        let v1 = |l: &str| l.parse::<u64>().map_or(true, |v| v >= 1 << 62);
        write(&base, 9_223_372_036_854_771_712, 1 << 30); // v1's "unlimited"
        write(&leaf, 512 << 20, 120 << 20);
        let (limit, usage) = ("memory.limit_in_bytes", "memory.usage_in_bytes");
        let s = cgroup_levels(&base, &leaf, limit, usage, v1).unwrap();
        assert_eq!((s.room, s.total), (392 << 20, 512 << 20));
        assert_eq!(s.allows(), 360 << 20); // a 512 MiB cgroup keeps 32 MiB
        write(&leaf, 9_223_372_036_854_771_712, 0);
        assert!(cgroup_levels(&base, &leaf, limit, usage, v1).is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_guard_lock_is_taken_and_released() {
        let first = lock().unwrap();
        drop(first); // closing the descriptor releases it
        let again = lock().unwrap();
        drop(again);
    }

    #[test]
    fn this_machine_has_some_room() {
        assert!(room() > 0);
    }
}
