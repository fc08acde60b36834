//! Named POSIX shared-memory segments: create, open, map, unlink; and the per-process liveness
//! locks of the participant table.
//!
//! * Creation is exclusive (`O_CREAT | O_EXCL`), sets the exact permission bits asked for
//!   (`fchmod`, so the umask does not silently narrow them), and reserves every page up front with
//!   `posix_fallocate`, so a full `/dev/shm` fails here with [`Status::NoSpace`] instead of a
//!   SIGBUS on first touch. On any failure the name is unlinked again.
//! * Opening checks the file size before mapping and maps exactly the file's size; validation of
//!   the contents is `layout`'s job.
//! * Liveness: each handle owns its own open file description of the segment and holds an
//!   open-file-description lock (`F_OFD_SETLK`) on one byte per participant entry, far beyond
//!   the data. The kernel drops the lock when the last descriptor of that description closes,
//!   including when the process dies; `F_OFD_GETLK` from any other description then tells
//!   "dead" from "alive" — immune to pid reuse and pid namespaces. Only *write* locks count:
//!   anyone who can read the file can take read locks, so a read lock proves nothing. A read
//!   lock on a free or dead entry's byte keeps the write lock from being taken there, so an
//!   attacher skips that entry (creation refuses modes that grant read without write).

use crate::Status;
use std::ffi::CStr;
use std::ptr::NonNull;

/// File offset of participant 0's lock byte. Locks are advisory and need no data at that offset.
const LOCK_BASE: i64 = 1 << 40;

/// Alignment of a snapshot's private buffer: that of a mapping's start, which the `#[repr(C)]`
/// views of the header and the participant table rely on.
const SNAPSHOT_ALIGN: usize = 4096;

/// Liveness-lock system calls made by this process (see [`lock_calls`]).
static LOCK_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many liveness-lock system calls (takes, probes, releases) this process has made: lets
/// tests check that attaching costs O(1) of them, not O(participants).
#[doc(hidden)]
pub fn lock_calls() -> u64 {
    // ORDERING: Relaxed: a statistic.
    LOCK_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A mapped segment and the descriptor it came from — or, for observers, a private copy of the
/// segment's first bytes read with `pread` (see [`Mapping::snapshot`]). Unmapped (or freed) and
/// closed on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: libc::c_int,
    /// Whether `ptr` is a private heap copy (`snapshot`) rather than a mapping of the segment.
    copy: bool,
}

// SAFETY: the mapping is plain shared memory; all concurrent access to it goes through atomics
// or through slot payloads whose ownership the ring hands over.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn status_of(err: i32) -> Status {
    match err {
        libc::EEXIST => Status::Exists,
        libc::ENOENT => Status::NotFound,
        libc::EACCES | libc::EPERM => Status::Permission,
        libc::ENOSPC | libc::ENOMEM | libc::EFBIG => Status::NoSpace,
        libc::EINVAL | libc::ENAMETOOLONG => Status::Invalid,
        _ => Status::Os,
    }
}

/// Checks a queue name (`"name"` or `"/name"`) and returns it in the `"/name"` form
/// `shm_open` wants, NUL-terminated, in a fixed buffer (no allocation).
pub fn normalize(name: &CStr, out: &mut [u8; 256]) -> Result<(), Status> {
    let bytes = name.to_bytes();
    let bare = bytes.strip_prefix(b"/").unwrap_or(bytes);
    if bare.is_empty() || bare.len() > 250 || bare.contains(&b'/') || bare == b"." || bare == b".."
    {
        return Err(Status::Invalid);
    }
    out[0] = b'/';
    out[1..=bare.len()].copy_from_slice(bare);
    out[bare.len() + 1] = 0;
    Ok(())
}

impl Mapping {
    /// Creates the segment `name` (already normalised) of `size` bytes with permission bits
    /// `mode`, all pages reserved and zeroed, and maps it.
    pub fn create(name: &CStr, size: u64, mode: u32) -> Result<Mapping, Status> {
        let len = usize::try_from(size).map_err(|_| Status::Invalid)?;
        let off = libc::off_t::try_from(size).map_err(|_| Status::Invalid)?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let fd = unsafe {
            libc::shm_open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                (mode & 0o777) as libc::mode_t,
            )
        };
        if fd < 0 {
            return Err(status_of(errno()));
        }
        let fail = |status: Status| {
            // SAFETY: fd is ours; the name was created by us just above.
            unsafe {
                libc::close(fd);
                libc::shm_unlink(name.as_ptr());
            }
            Err(status)
        };
        // SAFETY: fd is a valid descriptor we own.
        if unsafe { libc::fchmod(fd, (mode & 0o777) as libc::mode_t) } != 0 {
            return fail(status_of(errno()));
        }
        // SAFETY: fd is a valid descriptor; posix_fallocate returns an error number.
        let rc = unsafe { libc::posix_fallocate(fd, 0, off) };
        if rc == libc::EOPNOTSUPP || rc == libc::EINVAL {
            // A file system without fallocate: fall back to sizing the file.
            // SAFETY: fd is valid.
            if unsafe { libc::ftruncate(fd, off) } != 0 {
                return fail(status_of(errno()));
            }
        } else if rc != 0 {
            return fail(status_of(rc));
        }
        match Self::map(fd, len) {
            Ok(m) => Ok(m),
            Err(status) => {
                // `map` closed fd on failure.
                // SAFETY: the name was created by us.
                unsafe { libc::shm_unlink(name.as_ptr()) };
                Err(status)
            }
        }
    }

    /// Opens the segment `name` (already normalised) for reading and writing and maps all of it.
    /// `min_len` is the size below which the segment cannot be a queue: a smaller file is waited
    /// for (its creator may still be sizing it) until `deadline`, then refused.
    pub fn open(
        name: &CStr,
        min_len: u64,
        deadline: std::time::Instant,
    ) -> Result<Mapping, Status> {
        let (fd, len) = Self::open_sized(name, libc::O_RDWR, min_len, deadline)?;
        Self::map(fd, len)
    }

    /// Opens the segment `name` read-only and copies its first `want` bytes (zeros past the end
    /// of a shorter file) with `pread` into private memory; returns the copy and the file's size.
    /// For observers (`fastqueue ls/stat/gc`, `fq_observe`): they never map a segment, so no
    /// writer can crash them with SIGBUS by shrinking the file. `min_len` and `deadline` as in
    /// [`Mapping::open`]. The copy holds the descriptor, for liveness probes.
    pub fn snapshot(
        name: &CStr,
        want: usize,
        min_len: u64,
        deadline: std::time::Instant,
    ) -> Result<(Mapping, u64), Status> {
        let (fd, size) = Self::open_sized(name, libc::O_RDONLY, min_len, deadline)?;
        let fail = |status: Status| {
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
            Err(status)
        };
        let Ok(layout) = std::alloc::Layout::from_size_align(want.max(1), SNAPSHOT_ALIGN) else {
            return fail(Status::Invalid);
        };
        // SAFETY: the layout has a non-zero size.
        let Some(ptr) = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }) else {
            return fail(Status::NoSpace);
        };
        let copy = Mapping {
            ptr,
            len: want,
            fd,
            copy: true,
        };
        let mut done = 0usize;
        while done < want {
            // SAFETY: fd is valid; the destination lies inside the `want`-byte buffer.
            let n = unsafe {
                libc::pread(
                    fd,
                    ptr.as_ptr().add(done).cast(),
                    want - done,
                    done as libc::off_t,
                )
            };
            match n {
                0 => break, // a shorter file: the rest stays zero, validation refuses it
                n if n > 0 => done += n as usize,
                _ if errno() == libc::EINTR => {}
                _ => return Err(status_of(errno())), // drops `copy`: frees and closes
            }
        }
        Ok((copy, size as u64))
    }

    /// Opens the segment `name` with `flags` and waits (until `deadline`) for its size to reach
    /// `min_len`; returns the descriptor and the size.
    fn open_sized(
        name: &CStr,
        flags: libc::c_int,
        min_len: u64,
        deadline: std::time::Instant,
    ) -> Result<(libc::c_int, usize), Status> {
        // SAFETY: `name` is a valid NUL-terminated string.
        let fd = unsafe { libc::shm_open(name.as_ptr(), flags | libc::O_CLOEXEC, 0) };
        if fd < 0 {
            return Err(status_of(errno()));
        }
        loop {
            // SAFETY: a zeroed stat is a valid out-parameter.
            let mut st: libc::stat = unsafe { core::mem::zeroed() };
            // SAFETY: fd is valid; st is a valid out-pointer.
            if unsafe { libc::fstat(fd, &mut st) } != 0 {
                let e = errno();
                // SAFETY: fd is ours.
                unsafe { libc::close(fd) };
                return Err(status_of(e));
            }
            let size = st.st_size.max(0) as u64;
            if size >= min_len {
                let Ok(len) = usize::try_from(size) else {
                    // SAFETY: fd is ours.
                    unsafe { libc::close(fd) };
                    return Err(Status::BadSegment);
                };
                return Ok((fd, len));
            }
            // A creator sizes the file in one step, so a non-empty file shorter than a header is
            // not a queue being created: refuse it at once.
            if size > 0 || std::time::Instant::now() >= deadline {
                // SAFETY: fd is ours.
                unsafe { libc::close(fd) };
                return Err(if size == 0 {
                    Status::NotReady
                } else {
                    Status::BadSegment
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn map(fd: libc::c_int, len: usize) -> Result<Mapping, Status> {
        // SAFETY: mapping a shared file we hold open; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = errno();
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
            return Err(status_of(e));
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or(Status::Os)?,
            len,
            fd,
            copy: false,
        })
    }

    /// A second mapping of the same segment through a new open file description (so it can
    /// hold liveness locks of its own), via `/proc/self/fd`; works after the name was unlinked.
    pub fn reopen(&self) -> Result<Mapping, Status> {
        if self.copy {
            return Err(Status::Invalid);
        }
        let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
        let digits = self.fd.to_string();
        path[14..14 + digits.len()].copy_from_slice(digits.as_bytes());
        // SAFETY: `path` is NUL-terminated (the fd has at most 10 digits).
        let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(status_of(errno()));
        }
        Self::map(fd, self.len)
    }

    /// Start of the mapping (page-aligned).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never true for a mapped segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn lock_op(&self, cmd: libc::c_int, ty: libc::c_int, index: u32) -> Result<libc::flock, i32> {
        // ORDERING: Relaxed: a statistic for tests (see `lock_calls`).
        LOCK_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: a zeroed flock is a valid value; the fields that matter are set below.
        let mut fl: libc::flock = unsafe { core::mem::zeroed() };
        fl.l_type = ty as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = LOCK_BASE + i64::from(index);
        fl.l_len = 1;
        fl.l_pid = 0; // required by OFD locks
                      // SAFETY: self.fd is a valid descriptor; fl is a valid flock for the call.
        let rc = unsafe { libc::fcntl(self.fd, cmd, &mut fl) };
        if rc == 0 {
            Ok(fl)
        } else {
            Err(errno())
        }
    }

    /// Takes this handle's liveness lock for participant `index`. Fails if another open file
    /// description holds it (that participant is alive).
    pub fn lock_participant(&self, index: u32) -> bool {
        self.lock_op(libc::F_OFD_SETLK, libc::F_WRLCK, index)
            .is_ok()
    }

    /// Drops this handle's liveness lock for participant `index`.
    pub fn unlock_participant(&self, index: u32) {
        let _ = self.lock_op(libc::F_OFD_SETLK, libc::F_UNLCK, index);
    }

    /// Whether some other open file description holds participant `index`'s lock. Only a write
    /// lock counts: participants take write locks (which needs the segment open for writing),
    /// while a read lock can be taken by anyone who can merely read the file, so it proves
    /// nothing (the probe asks about a read lock, which only a write lock conflicts with). Errors
    /// count as alive: recovery must never take a slot from a process that may be running.
    pub fn participant_alive(&self, index: u32) -> bool {
        match self.lock_op(libc::F_OFD_GETLK, libc::F_RDLCK, index) {
            Ok(fl) => fl.l_type == libc::F_WRLCK as libc::c_short,
            Err(_) => true,
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.copy {
            // SAFETY: `snapshot` allocated ptr with exactly this layout (which it checked).
            unsafe {
                std::alloc::dealloc(
                    self.ptr.as_ptr(),
                    std::alloc::Layout::from_size_align_unchecked(self.len.max(1), SNAPSHOT_ALIGN),
                )
            };
        } else {
            // SAFETY: ptr/len describe a mapping we own.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
        // SAFETY: fd is ours. Closing the descriptor drops every OFD lock this handle holds.
        unsafe { libc::close(self.fd) };
    }
}

/// Removes the name `name` (already normalised).
pub fn unlink(name: &CStr) -> Result<(), Status> {
    // SAFETY: `name` is a valid NUL-terminated string.
    if unsafe { libc::shm_unlink(name.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(status_of(errno()))
    }
}
