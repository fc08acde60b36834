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
//!   "dead" from "alive" — immune to pid reuse and pid namespaces.

use crate::Status;
use std::ffi::CStr;
use std::ptr::NonNull;

/// The directory of POSIX shared-memory names on Linux (where glibc's `shm_open` puts them),
/// NUL-terminated.
const SHM_DIR: &[u8] = b"/dev/shm\0";

/// File offset of participant 0's lock byte. Locks are advisory and need no data at that offset.
const LOCK_BASE: i64 = 1 << 40;

/// A mapped segment and the descriptor it came from. Unmapped and closed on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: libc::c_int,
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
    /// Creates an anonymous segment of `size` bytes in `/dev/shm` with permission bits `mode`,
    /// all pages reserved and zeroed, and maps it. It has no name yet: the caller initialises
    /// it, then gives it its name with [`Mapping::publish`]. If the process dies before that,
    /// the kernel frees it with the last descriptor; nothing is left behind.
    pub fn create(size: u64, mode: u32) -> Result<Mapping, Status> {
        let len = usize::try_from(size).map_err(|_| Status::Invalid)?;
        let off = libc::off_t::try_from(size).map_err(|_| Status::Invalid)?;
        crate::memlimit::check(size)?;
        // SAFETY: SHM_DIR is NUL-terminated.
        let fd = unsafe {
            libc::open(
                SHM_DIR.as_ptr().cast(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                (mode & 0o777) as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(status_of(errno()));
        }
        let fail = |status: Status| {
            // SAFETY: fd is ours; closing it frees the unnamed file.
            unsafe { libc::close(fd) };
            Err(status)
        };
        // SAFETY: fd is a valid descriptor we own.
        if unsafe { libc::fchmod(fd, (mode & 0o777) as libc::mode_t) } != 0 {
            return fail(status_of(errno()));
        }
        // SAFETY: fd is a valid descriptor; posix_fallocate returns an error number.
        let rc = unsafe { libc::posix_fallocate(fd, 0, off) };
        if rc != 0 {
            return fail(status_of(rc));
        }
        Self::map(fd, len)
    }

    /// Gives a segment made by [`Mapping::create`] the name `name` (already normalised), which
    /// must not exist ([`Status::Exists`] otherwise: creation stays exclusive). `link()` makes
    /// the name appear at once with the complete segment behind it.
    pub fn publish(&self, name: &CStr) -> Result<(), Status> {
        let mut buf = [0u8; 8 + 256];
        let path = shm_path(name, &mut buf)?;
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
        // SAFETY: `name` is a valid NUL-terminated string.
        let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
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
                return Self::map(fd, len);
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
        })
    }

    /// A second mapping of the same segment through a new open file description (so it can
    /// hold liveness locks of its own), via `/proc/self/fd`; works after the name was unlinked.
    pub fn reopen(&self) -> Result<Mapping, Status> {
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

    /// Whether some other open file description holds participant `index`'s lock. Errors count
    /// as alive: recovery must never take a slot from a process that may be running.
    pub fn participant_alive(&self, index: u32) -> bool {
        match self.lock_op(libc::F_OFD_GETLK, libc::F_WRLCK, index) {
            Ok(fl) => fl.l_type != libc::F_UNLCK as libc::c_short,
            Err(_) => true,
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping we own; fd is ours. Closing the descriptor drops
        // every OFD lock this handle holds.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
            libc::close(self.fd);
        }
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
    // SAFETY: `path` is NUL-terminated. O_NONBLOCK: never wait on a FIFO someone put there.
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
    // SAFETY: a zeroed stat is a valid out-parameter; fd is valid.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
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

/// Removes the name `name` (already normalised) if it names a fastqueue segment (of any layout
/// version); anything else fails ([`Status::BadSegment`], or [`Status::NotReady`] for an empty
/// or zeroed file) and stays. `force` removes whatever the name holds.
///
/// The check and the removal are two steps: the file is identified through a descriptor, then
/// the name is looked up again right before `shm_unlink` and must still lead to the same inode.
/// What remains is the instant between that last look-up and the unlink; `/dev/shm` is sticky,
/// so only the owner of the file there (or root) can swap it in that instant.
pub fn unlink(name: &CStr, force: bool) -> Result<(), Status> {
    if !force {
        let mut buf = [0u8; 8 + 256];
        let path = shm_path(name, &mut buf)?;
        let mut tries = 0;
        loop {
            let id = identify(path)?;
            // SAFETY: a zeroed stat is a valid out-parameter.
            let mut st: libc::stat = unsafe { core::mem::zeroed() };
            // SAFETY: path is NUL-terminated; st is a valid out-pointer.
            if unsafe { libc::lstat(path.as_ptr(), &mut st) } != 0 {
                return Err(status_of(errno()));
            }
            if (st.st_dev as u64, st.st_ino as u64) == id {
                break;
            }
            tries += 1;
            if tries == 3 {
                return Err(Status::BadSegment); // the name keeps changing under us
            }
        }
    }
    // SAFETY: `name` is a valid NUL-terminated string.
    if unsafe { libc::shm_unlink(name.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(status_of(errno()))
    }
}
