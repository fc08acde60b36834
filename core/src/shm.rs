//! Named POSIX shared-memory segments: create, open, map, unlink; and the per-process liveness
//! locks of the participant table.
//!
//! * Creation first asks `memlimit` whether the machine and the process's memory cgroup can
//!   give the segment (with a margin), so that it never wakes the OOM killer. It then builds the
//!   segment without a name (`O_TMPFILE` in `/dev/shm`), sets the exact permission bits asked for
//!   (`fchmod`, so the umask does not silently narrow them), reserves every page up front with
//!   `posix_fallocate` (a full `/dev/shm` fails here with [`Status::NoSpace`] instead of a
//!   SIGBUS on first touch), and only once the caller has initialised it, `link()`s it to its
//!   name: `EEXIST` keeps creation exclusive, and a creator killed at any instant leaves no name
//!   behind. Without `O_TMPFILE` a locked temporary name takes its place ([`TEMP_PREFIX`],
//!   [`remove_leftover`]).
//! * Unlinking removes only what starts with the fastqueue magic, read through a descriptor of
//!   its own (never mapped), unless forced.
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

/// The directory of POSIX shared-memory names on Linux (where glibc's `shm_open` puts them),
/// NUL-terminated.
const SHM_DIR: &[u8] = b"/dev/shm\0";

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

/// Prefix of the temporary names of segments being created where `O_TMPFILE` is missing
/// (`.fq-tmp-<pid>-<n>`; the leading dot keeps them out of plain listings).
pub const TEMP_PREFIX: &str = ".fq-tmp-";

/// File offset of the byte a creator keeps write-locked while it builds a segment under a
/// temporary name (just below the participants' lock bytes).
pub const CREATING_LOCK: i64 = LOCK_BASE - 1;

/// A segment's temporary name, removed on drop unless [`Mapping::publish`] gave the segment its
/// real name first (then it is removed there). `None`: the segment is an unnamed `O_TMPFILE`.
pub struct Unpublished(Option<std::ffi::CString>);

impl Drop for Unpublished {
    fn drop(&mut self) {
        if let Some(name) = &self.0 {
            // SAFETY: a NUL-terminated name this process created.
            unsafe { libc::shm_unlink(name.as_ptr()) };
        }
    }
}

fn open_tmpfile(mode: u32) -> Result<libc::c_int, i32> {
    if std::env::var_os("FASTQUEUE_TEST_HOOK_NO_TMPFILE").is_some() {
        return Err(libc::EOPNOTSUPP); // test-only: take the path of kernels without O_TMPFILE
    }
    // SAFETY: SHM_DIR is NUL-terminated.
    let fd = unsafe {
        libc::open(
            SHM_DIR.as_ptr().cast(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

/// A new file `/.fq-tmp-<pid>-<n>`, with this description's write lock on [`CREATING_LOCK`].
fn open_named_temp(mode: u32) -> Result<(libc::c_int, Unpublished), Status> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..100 {
        // ORDERING: Relaxed: only uniqueness within the process matters (O_EXCL decides).
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = std::ffi::CString::new(format!("/{TEMP_PREFIX}{}-{n}", std::process::id()))
            .map_err(|_| Status::Internal)?;
        // SAFETY: `name` is NUL-terminated.
        let fd = unsafe {
            libc::shm_open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                mode as libc::mode_t,
            )
        };
        if fd < 0 {
            match errno() {
                libc::EEXIST => continue, // left by a dead process of the same pid
                e => return Err(status_of(e)),
            }
        }
        let temp = Unpublished(Some(name));
        if let Err(e) = lock_byte(fd, libc::F_OFD_SETLK, libc::F_WRLCK, CREATING_LOCK) {
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
            return Err(status_of(e)); // `temp` removes the name
        }
        return Ok((fd, temp));
    }
    Err(Status::Exists)
}

fn lock_byte(
    fd: libc::c_int,
    cmd: libc::c_int,
    ty: libc::c_int,
    at: i64,
) -> Result<libc::flock, i32> {
    // SAFETY: a zeroed flock is a valid value; the fields that matter are set below.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = at;
    fl.l_len = 1;
    fl.l_pid = 0; // required by OFD locks
                  // SAFETY: fd is a valid descriptor; fl is a valid flock for the call.
    if unsafe { libc::fcntl(fd, cmd, &mut fl) } == 0 {
        Ok(fl)
    } else {
        Err(errno())
    }
}

/// Removes `name` (already normalised) if it is a temporary segment name ([`TEMP_PREFIX`])
/// whose creator is gone: nobody holds its [`CREATING_LOCK`] and the pid in its name is not
/// running (the lock is the proof, immune to pid reuse; the pid covers the instant between
/// the file's creation and its locking). `Ok(true)`: removed; `Ok(false)`: its creator is
/// still at work; [`Status::Invalid`] for any other name.
pub fn remove_leftover(name: &CStr) -> Result<bool, Status> {
    let bare = name
        .to_bytes()
        .strip_prefix(b"/")
        .unwrap_or(name.to_bytes());
    let Some(rest) = bare.strip_prefix(TEMP_PREFIX.as_bytes()) else {
        return Err(Status::Invalid);
    };
    let pid = std::str::from_utf8(rest)
        .ok()
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<libc::pid_t>().ok())
        .ok_or(Status::Invalid)?;
    // SAFETY: `name` is NUL-terminated.
    let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(status_of(errno()));
    }
    let probe = lock_byte(fd, libc::F_OFD_GETLK, libc::F_WRLCK, CREATING_LOCK);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    let locked = probe.map_or(true, |fl| fl.l_type != libc::F_UNLCK as libc::c_short);
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let running = pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || errno() == libc::EPERM);
    if locked || running {
        return Ok(false);
    }
    unlink(name, true).map(|()| true)
}

impl Mapping {
    /// Creates a segment of `size` bytes in `/dev/shm` with permission bits `mode`, all pages
    /// reserved and zeroed, and maps it. It has no name yet: the caller initialises it, then
    /// gives it its name with [`Mapping::publish`], which consumes the returned [`Unpublished`].
    ///
    /// The segment is an unnamed file (`O_TMPFILE`): if the process dies before publishing, the
    /// kernel frees it with the last descriptor and nothing is left behind. Where the kernel or
    /// file system has no `O_TMPFILE`, it is a file named `.fq-tmp-<pid>-<n>` instead, whose
    /// creator holds a write lock on byte [`CREATING_LOCK`] until the segment is published:
    /// [`remove_leftover`] (`fastqueue gc`) removes such a file once that lock is free.
    pub fn create(size: u64, mode: u32) -> Result<(Mapping, Unpublished), Status> {
        let len = usize::try_from(size).map_err(|_| Status::Invalid)?;
        let off = libc::off_t::try_from(size).map_err(|_| Status::Invalid)?;
        // The check and the reservation are one step among all creators (see `memlimit`).
        let guard = crate::memlimit::lock()?;
        crate::memlimit::check(size)?;
        let mode = mode & 0o777;
        let (fd, temp) = match open_tmpfile(mode) {
            Ok(fd) => (fd, Unpublished(None)),
            Err(e) if e == libc::EISDIR || e == libc::EOPNOTSUPP || e == libc::EINVAL => {
                open_named_temp(mode)?
            }
            Err(e) => return Err(status_of(e)),
        };
        let fail = |status: Status| {
            // SAFETY: fd is ours; closing it frees an unnamed file (dropping `temp`, when the
            // caller returns, removes a named one).
            unsafe { libc::close(fd) };
            Err(status)
        };
        // SAFETY: fd is a valid descriptor we own.
        if unsafe { libc::fchmod(fd, mode as libc::mode_t) } != 0 {
            return fail(status_of(errno()));
        }
        // SAFETY: fd is a valid descriptor; posix_fallocate returns an error number.
        let rc = unsafe { libc::posix_fallocate(fd, 0, off) };
        if rc != 0 {
            return fail(status_of(rc));
        }
        // Checked again now that the pages are counted: closing the file frees them.
        if !crate::memlimit::still_fits() {
            return fail(Status::NoSpace);
        }
        drop(guard); // the next creator's check sees these pages
        Ok((Self::map(fd, len)?, temp))
    }

    /// Gives a segment made by [`Mapping::create`] the name `name` (already normalised), which
    /// must not exist ([`Status::Exists`] otherwise: creation stays exclusive). `link()` makes
    /// the name appear at once with the complete segment behind it.
    pub fn publish(&self, name: &CStr, temp: Unpublished) -> Result<(), Status> {
        let mut buf = [0u8; 8 + 256];
        let path = shm_path(name, &mut buf)?;
        if let Some(temp_name) = &temp.0 {
            let mut tbuf = [0u8; 8 + 256];
            let temp_path = shm_path(temp_name, &mut tbuf)?;
            // SAFETY: both paths are NUL-terminated.
            if unsafe { libc::link(temp_path.as_ptr(), path.as_ptr()) } != 0 {
                return Err(status_of(errno()));
            }
            drop(temp); // removes the temporary name
            let _ = lock_byte(self.fd, libc::F_OFD_SETLK, libc::F_UNLCK, CREATING_LOCK);
            return Ok(());
        }
        let mut proc_fd = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
        let digits = self.fd.to_string();
        proc_fd[14..14 + digits.len()].copy_from_slice(digits.as_bytes());
        // SAFETY: both paths are NUL-terminated; linking through /proc/self/fd needs no
        // privilege (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_fd.as_ptr().cast(),
                libc::AT_FDCWD,
                path.as_ptr().cast(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = errno();
        if e != libc::ENOENT {
            return Err(status_of(e));
        }
        // No /proc mounted: link the descriptor itself (works with CAP_DAC_READ_SEARCH).
        // SAFETY: as above; "" with AT_EMPTY_PATH names `self.fd`.
        let rc = unsafe {
            libc::linkat(
                self.fd,
                b"\0".as_ptr().cast(),
                libc::AT_FDCWD,
                path.as_ptr().cast(),
                libc::AT_EMPTY_PATH,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(status_of(errno()))
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
            return Err(match errno() {
                // shm_open never follows a symbolic link (ELOOP) and reports a directory as
                // EINVAL (the name itself was checked): what is there is not a segment.
                libc::ELOOP | libc::EINVAL | libc::EISDIR => Status::BadSegment,
                e => status_of(e),
            });
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
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                // A FIFO, a device...: not a segment, and nothing to wait for.
                // SAFETY: fd is ours.
                unsafe { libc::close(fd) };
                return Err(Status::BadSegment);
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

/// The path of the segment `name` (already normalised, `"/name"`) in [`SHM_DIR`],
/// NUL-terminated, in `out`.
fn shm_path<'a>(name: &CStr, out: &'a mut [u8; 8 + 256]) -> Result<&'a CStr, Status> {
    let dir = &SHM_DIR[..SHM_DIR.len() - 1];
    let name = name.to_bytes_with_nul();
    if dir.len() + name.len() > out.len() {
        return Err(Status::Invalid);
    }
    out[..dir.len()].copy_from_slice(dir);
    out[dir.len()..dir.len() + name.len()].copy_from_slice(name);
    CStr::from_bytes_until_nul(&out[..]).map_err(|_| Status::Invalid)
}

/// What the file `path` is, read through a descriptor of its own (never mapped): `Ok((dev,
/// ino))` if it starts with a fastqueue segment's magic (of any layout version),
/// [`Status::NotReady`] if it is empty or starts with zeros (a segment an older fastqueue's
/// creator never finished, or a foreign file: nobody can tell), [`Status::BadSegment`] if it is
/// anything else (not a regular file, a symbolic link, other bytes).
fn identify(path: &CStr) -> Result<(u64, u64), Status> {
    // Only a regular file is opened (opening a device can have effects of its own).
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is a valid out-pointer.
    if unsafe { libc::lstat(path.as_ptr(), &mut st) } != 0 {
        return Err(status_of(errno()));
    }
    if (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return Err(Status::BadSegment);
    }
    // SAFETY: `path` is NUL-terminated. O_NONBLOCK: never wait on a FIFO swapped in meanwhile.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(match errno() {
            libc::ELOOP => Status::BadSegment,
            e => status_of(e),
        });
    }
    // SAFETY: fd is valid; st is a valid out-pointer.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    let mut head = [0u8; 8];
    let n = if ok && (st.st_mode & libc::S_IFMT) == libc::S_IFREG {
        // SAFETY: fd is valid; head is 8 writable bytes.
        unsafe { libc::pread(fd, head.as_mut_ptr().cast(), head.len(), 0) }
    } else {
        -1
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if !ok {
        return Err(Status::Os);
    }
    if n < 0 {
        return Err(Status::BadSegment);
    }
    let head = &head[..n as usize];
    if head == crate::layout::MAGIC.to_le_bytes() {
        Ok((st.st_dev as u64, st.st_ino as u64))
    } else if head.iter().all(|&b| b == 0) {
        Err(Status::NotReady)
    } else {
        Err(Status::BadSegment)
    }
}

/// Removes the name `name` only if it still names the segment this mapping maps (same device
/// and inode): a creator's close must not remove a later queue that took its name after it was
/// unlinked. `NotFound` if the name is gone or names another file (which stays).
pub fn unlink_same(name: &CStr, map: &Mapping) -> Result<(), Status> {
    if map.copy {
        return Err(Status::Invalid); // an observer's copy names no segment
    }
    let mut buf = [0u8; 8 + 256];
    let path = shm_path(name, &mut buf)?;
    // SAFETY: zeroed stats are valid out-parameters.
    let (mut ours, mut there): (libc::stat, libc::stat) =
        unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
    // SAFETY: map.fd is the mapping's open descriptor; `ours` is a valid out-pointer.
    if unsafe { libc::fstat(map.fd, &mut ours) } != 0 {
        return Err(status_of(errno()));
    }
    // SAFETY: path is NUL-terminated; `there` is a valid out-pointer.
    if unsafe { libc::lstat(path.as_ptr(), &mut there) } != 0 {
        return Err(status_of(errno()));
    }
    if (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino) {
        return Err(Status::NotFound);
    }
    // The same check again on the file that was moved out of the name (see `remove_if`).
    remove_if(path, |moved| {
        // SAFETY: a zeroed stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: `moved` is NUL-terminated; st is a valid out-pointer.
        if unsafe { libc::lstat(moved.as_ptr(), &mut st) } != 0 {
            return Err(status_of(errno()));
        }
        if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino) {
            Ok(())
        } else {
            Err(Status::NotFound)
        }
    })
}

/// Prefix of the private directories [`remove_if`] makes in `/dev/shm` for an instant.
pub const UNLINK_DIR_PREFIX: &str = ".fq-unlink-";

/// Removes the file at `path` (in [`SHM_DIR`]) only if `accept` approves it, with no window
/// between the check and the removal: Linux removes by name, and a name can be swapped (by the
/// file's owner, even in the sticky `/dev/shm`) between any check and the `unlink`. So the name
/// is first *moved* (`rename`, atomic) into a directory this process has just made (mode 0700,
/// so nobody else can reach what is inside), `accept` checks the file that was moved, there,
/// and it is unlinked there, or put back under its name if refused (`link`, which never
/// replaces a file; if the name was taken meanwhile, the file stays under `<name>.fq-kept-<n>`
/// rather than being lost). Renaming needs what unlinking needs (in a sticky directory: owning
/// the file, or root), so nothing is allowed that was refused before. While the file is moved
/// the name does not exist: an attach at that instant finds no queue, as it would an instant
/// later. A process killed in between leaves the directory behind (`.fq-unlink-*`). Where no
/// directory can be made, it falls back to checking the name and then removing it.
fn remove_if(path: &CStr, accept: impl FnOnce(&CStr) -> Result<(), Status>) -> Result<(), Status> {
    let dir_len = SHM_DIR.len() - 1;
    let mut dir = [0u8; 64];
    let template = b"/.fq-unlink-XXXXXX\0";
    dir[..dir_len].copy_from_slice(&SHM_DIR[..dir_len]);
    dir[dir_len..dir_len + template.len()].copy_from_slice(template);
    // SAFETY: `dir` is a NUL-terminated template ending in XXXXXX, which mkdtemp fills in.
    if unsafe { libc::mkdtemp(dir.as_mut_ptr().cast()) }.is_null() {
        // No directory can be made (no inode left in /dev/shm...): check the name, then remove
        // it, in two steps, as before (only the file's owner or root can swap it in between).
        accept(path)?;
        // SAFETY: `path` is NUL-terminated.
        return if unsafe { libc::unlink(path.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(status_of(errno()))
        };
    }
    let dir_end = dir_len + template.len() - 1;
    let mut moved = dir;
    moved[dir_end..dir_end + 3].copy_from_slice(b"/s\0");
    let (dir, moved) = (
        CStr::from_bytes_until_nul(&dir).map_err(|_| Status::Internal)?,
        CStr::from_bytes_until_nul(&moved).map_err(|_| Status::Internal)?,
    );
    // SAFETY: both paths are NUL-terminated; `moved` does not exist in the new directory.
    let result = if unsafe { libc::rename(path.as_ptr(), moved.as_ptr()) } != 0 {
        Err(status_of(errno()))
    } else {
        let verdict = accept(moved);
        if verdict.is_err() && !put_back(moved, path) {
            // Neither removed nor put back: leave it where it is (the directory stays).
            return verdict;
        }
        // SAFETY: `moved` is NUL-terminated: removing the name in our own directory.
        if verdict.is_ok() && unsafe { libc::unlink(moved.as_ptr()) } != 0 {
            let e = errno();
            let _ = put_back(moved, path);
            Err(status_of(e))
        } else {
            verdict
        }
    };
    // SAFETY: `dir` is NUL-terminated; it is empty by now (else rmdir fails and it stays).
    unsafe { libc::rmdir(dir.as_ptr()) };
    result
}

/// Puts the file at `moved` back under `path` without replacing anything there (`link` then
/// `unlink`); if `path` was taken meanwhile, under `<path>.fq-kept-<n>`. `false` if it stays.
fn put_back(moved: &CStr, path: &CStr) -> bool {
    // SAFETY: both paths are NUL-terminated.
    let mut linked = unsafe { libc::link(moved.as_ptr(), path.as_ptr()) } == 0;
    let mut n = 0u32;
    while !linked && errno() == libc::EEXIST && n < 100 {
        let mut kept = path.to_bytes().to_vec();
        kept.extend_from_slice(format!(".fq-kept-{n}").as_bytes());
        let Ok(kept) = std::ffi::CString::new(kept) else {
            return false;
        };
        // SAFETY: both paths are NUL-terminated.
        linked = unsafe { libc::link(moved.as_ptr(), kept.as_ptr()) } == 0;
        n += 1;
    }
    // SAFETY: `moved` is NUL-terminated; it has another name now.
    linked && unsafe { libc::unlink(moved.as_ptr()) } == 0
}

/// Removes the name `name` (already normalised) if it names a fastqueue segment (of any layout
/// version); anything else fails ([`Status::BadSegment`], or [`Status::NotReady`] for an empty
/// or zeroed file) and stays. `force` removes whatever file the name holds, but a directory
/// (which no fastqueue makes, and unlink cannot remove) is [`Status::BadSegment`].
///
/// The file is identified through a descriptor first (what is not a segment is refused without
/// touching the name); then the name is moved into a private directory and the file that was
/// moved is identified again there, and removed only if it is still a segment: no window between
/// the check and the removal, even if the file's owner swaps names in a loop (see `remove_if`).
pub fn unlink(name: &CStr, force: bool) -> Result<(), Status> {
    if !force {
        let mut buf = [0u8; 8 + 256];
        let path = shm_path(name, &mut buf)?;
        identify(path)?;
        return remove_if(path, |moved| identify(moved).map(|_| ()));
    }
    // SAFETY: `name` is a valid NUL-terminated string.
    if unsafe { libc::shm_unlink(name.as_ptr()) } == 0 {
        Ok(())
    } else {
        match errno() {
            // A directory is never a segment, and unlink cannot remove one (even when forced):
            // say what the name holds rather than "an OS error".
            libc::EISDIR => Err(Status::BadSegment),
            err => Err(status_of(err)),
        }
    }
}
