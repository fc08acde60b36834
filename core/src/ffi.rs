//! The flat C ABI. Every export is documented for C programmers in `include/fastqueue.h`;
//! this file only converts arguments, rejects NULL, and keeps panics from crossing the boundary.
//! No atomics and no shared-memory access happen here.
#![allow(non_camel_case_types)]

use crate::queue::Queue;
use crate::Status;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// The ABI version (`FQ_ABI_VERSION` in the header).
pub const ABI_VERSION: u32 = 1;

/// Success (`FQ_OK`).
pub const FQ_OK: i32 = 0;

/// `fq_wait`: until a get could take a message (`FQ_WAIT_READABLE`).
pub const FQ_WAIT_READABLE: i32 = 1;

/// `fq_wait`: until a put could claim a slot (`FQ_WAIT_WRITABLE`).
pub const FQ_WAIT_WRITABLE: i32 = 2;

/// The opaque handle C code holds (`fq_queue *`).
pub struct fq_queue(Queue);

fn code(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => FQ_OK,
        Err(s) => s as i32,
    }
}

/// Runs `f`, turning a panic into `FQ_ERR_INTERNAL`.
fn guard(f: impl FnOnce() -> Result<(), Status>) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).map_or(Status::Internal as i32, code)
}

fn timeout(ns: i64) -> Option<Duration> {
    (ns >= 0).then(|| Duration::from_nanos(ns as u64))
}

/// Borrows the queue behind a handle pointer for one call (`Closed` if another thread is
/// closing the handle). A call that waits also counts itself in flight while it does (see
/// `gate`), so that a concurrent `fq_close` wakes it and waits for it.
///
/// # Safety
/// `q` is NULL or a live handle from `fq_create`/`fq_open`.
unsafe fn queue<'a>(q: *const fq_queue) -> Result<&'a Queue, Status> {
    // SAFETY: per the contract, a non-NULL q points to a live fq_queue.
    unsafe { q.as_ref() }.ok_or(Status::Null)?.0.check_open()
}

/// Stores `v` through `out`, or fails with `Null`.
///
/// # Safety
/// `out` is NULL or valid for a write of T.
unsafe fn store<T>(out: *mut T, v: T) -> Result<(), Status> {
    if out.is_null() {
        return Err(Status::Null);
    }
    // SAFETY: non-NULL and valid per the contract.
    unsafe { out.write(v) };
    Ok(())
}

/// The ABI version the library was built with.
#[no_mangle]
pub extern "C" fn fq_abi_version() -> u32 {
    ABI_VERSION
}

/// The segment layout version this library creates and accepts.
#[no_mangle]
pub extern "C" fn fq_layout_version() -> u32 {
    crate::layout::LAYOUT_VERSION
}

/// A static description of a status code.
#[no_mangle]
pub extern "C" fn fq_status_str(status: i32) -> *const c_char {
    Status::describe(status).as_ptr().cast()
}

/// Size of the segment for these sizes.
///
/// # Safety
/// `out` is NULL or valid for writing a u64.
#[no_mangle]
pub unsafe extern "C" fn fq_segment_size(max_msg: u64, capacity: u64, out: *mut u64) -> i32 {
    guard(|| {
        let g = crate::layout::Geometry::new(max_msg, capacity)?;
        // SAFETY: forwarded contract.
        unsafe { store(out, g.total_size) }
    })
}

/// Creates a queue.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn fq_create(
    name: *const c_char,
    max_msg: u64,
    capacity: u64,
    mode: u32,
    out: *mut *mut fq_queue,
) -> i32 {
    guard(|| {
        if name.is_null() || out.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let name = unsafe { CStr::from_ptr(name) };
        let q = Queue::create_c(name, max_msg, capacity, mode)?;
        // SAFETY: forwarded contract.
        unsafe { store(out, Box::into_raw(Box::new(fq_queue(q)))) }
    })
}

/// `fq_create_ex` flag: acknowledged delivery (`FQ_CREATE_REDELIVER`).
pub const FQ_CREATE_REDELIVER: u32 = 1;
const _: () = assert!(FQ_CREATE_REDELIVER == crate::layout::FLAG_REDELIVER);

/// Creates a queue with creation flags (`FQ_CREATE_REDELIVER`) and, for a redeliver queue, the number
/// of lease entries (0: the capacity).
///
/// # Safety
/// As `fq_create`.
#[no_mangle]
pub unsafe extern "C" fn fq_create_ex(
    name: *const c_char,
    max_msg: u64,
    capacity: u64,
    mode: u32,
    flags: u32,
    leases: u64,
    out: *mut *mut fq_queue,
) -> i32 {
    guard(|| {
        if name.is_null() || out.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let name = unsafe { CStr::from_ptr(name) };
        let q = Queue::create_ex(name, max_msg, capacity, mode, flags, leases)?;
        // SAFETY: forwarded contract.
        unsafe { store(out, Box::into_raw(Box::new(fq_queue(q)))) }
    })
}

/// The queue's creation flags (0 for NULL).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_flags(q: *const fq_queue) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { queue(q) }.map_or(0, |q| {
        if q.redeliver() {
            FQ_CREATE_REDELIVER
        } else {
            0
        }
    })
}

/// Number of lease entries of a redeliver queue (0 otherwise, or for NULL).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_lease_count(q: *const fq_queue) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { queue(q) }.map_or(0, |q| q.lease_count())
}

/// Attaches to a queue.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn fq_open(name: *const c_char, out: *mut *mut fq_queue) -> i32 {
    guard(|| {
        if name.is_null() || out.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let name = unsafe { CStr::from_ptr(name) };
        let q = Queue::open_c(name)?;
        // SAFETY: forwarded contract.
        unsafe { store(out, Box::into_raw(Box::new(fq_queue(q)))) }
    })
}

/// A new handle on the same segment, with its own identity (for a child after fork()).
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn fq_clone(q: *const fq_queue, out: *mut *mut fq_queue) -> i32 {
    guard(|| {
        // SAFETY: per the contract, a non-NULL q points to a live fq_queue. (Not `queue(q)`: a
        // forked child clones the handles it inherited, which refuse every other call.)
        let q = unsafe { q.as_ref() }
            .ok_or(Status::Null)?
            .0
            .check_open_for_clone()?
            .try_clone()?;
        // SAFETY: forwarded contract.
        unsafe { store(out, Box::into_raw(Box::new(fq_queue(q)))) }
    })
}

/// Detaches and frees a handle, after the calls other threads are making on it returned
/// (blocked ones with `FQ_ERR_CLOSED`).
///
/// # Safety
/// `q` is NULL or a live handle, closed once, used by no call that starts after this one; it is
/// dangling afterwards.
#[no_mangle]
pub unsafe extern "C" fn fq_close(q: *mut fq_queue) {
    if !q.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: q is a live handle (contract); calls in flight only borrow it.
            unsafe { &(*q).0 }.close_shared();
            // SAFETY: q came from Box::into_raw in fq_create/fq_open/fq_clone, is closed once,
            // and no call is inside it any more.
            drop(unsafe { Box::from_raw(q) })
        }));
    }
}

/// Removes a queue's name.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fq_unlink(name: *const c_char) -> i32 {
    guard(|| {
        if name.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        Queue::unlink_c(unsafe { CStr::from_ptr(name) }, false)
    })
}

/// Removes a queue's name only if it still names the segment of `q` (not a later queue that
/// took the name).
///
/// # Safety
/// `q` is NULL or a live handle; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fq_unlink_same(q: *const fq_queue, name: *const c_char) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if name.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        q.unlink_same_c(unsafe { CStr::from_ptr(name) })
    })
}

/// Removes a name in the shared-memory directory whatever it holds (`fq_unlink` removes only
/// fastqueue segments).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fq_unlink_force(name: *const c_char) -> i32 {
    guard(|| {
        if name.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        Queue::unlink_c(unsafe { CStr::from_ptr(name) }, true)
    })
}

/// Removes a creation leftover (`.fq-tmp-<pid>-<n>`) whose creator is gone.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `removed` is NULL or valid for writing a u32.
#[no_mangle]
pub unsafe extern "C" fn fq_remove_leftover(name: *const c_char, removed: *mut u32) -> i32 {
    guard(|| {
        if name.is_null() || removed.is_null() {
            return Err(Status::Null);
        }
        let mut buf = [0u8; 256];
        // SAFETY: non-NULL and NUL-terminated per the contract.
        crate::shm::normalize(unsafe { CStr::from_ptr(name) }, &mut buf)?;
        let name = CStr::from_bytes_until_nul(&buf).map_err(|_| Status::Invalid)?;
        let gone = crate::shm::remove_leftover(name)?;
        // SAFETY: forwarded contract.
        unsafe { store(removed, u32::from(gone)) }
    })
}

/// The largest segment `fq_create` accepts now as far as memory is concerned.
///
/// # Safety
/// `out` is NULL or valid for writing a u64.
#[no_mangle]
pub unsafe extern "C" fn fq_memory_room(out: *mut u64) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { store(out, crate::memlimit::room()) }
    })
}

/// Capacity in messages (0 for NULL).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_capacity(q: *const fq_queue) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { queue(q) }.map_or(0, |q| q.capacity())
}

/// Largest message in bytes (0 for NULL).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_max_msg(q: *const fq_queue) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { queue(q) }.map_or(0, |q| q.max_msg())
}

/// Messages queued (0 for NULL).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_size(q: *const fq_queue) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { queue(q) }.map_or(0, |q| q.len())
}

/// Counters kept in the segment.
///
/// # Safety
/// `q` is NULL or a live handle; `out` is NULL or valid for writing `n` u64s.
#[no_mangle]
pub unsafe extern "C" fn fq_stats(q: *const fq_queue, out: *mut u64, n: u32) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if out.is_null() && n > 0 {
            return Err(Status::Null);
        }
        let stats = q.stats();
        for i in 0..n as usize {
            // SAFETY: out is valid for n writes per the contract.
            unsafe { out.add(i).write(stats.get(i).copied().unwrap_or(0)) };
        }
        Ok(())
    })
}

/// Copies a message into the queue.
///
/// # Safety
/// `q` is NULL or a live handle; `data` is NULL or valid for reading `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fq_put(
    q: *mut fq_queue,
    data: *const c_void,
    len: u64,
    timeout_ns: i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if len == 0 {
            return q.put(&[], timeout(timeout_ns));
        }
        if data.is_null() {
            return Err(Status::Null);
        }
        if len > q.max_msg() {
            return Err(Status::TooBig);
        }
        // SAFETY: data is valid for len bytes per the contract; len ≤ max_msg fits in usize.
        let data = unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
        q.put(data, timeout(timeout_ns))
    })
}

/// Takes the oldest message into a buffer.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `cap` bytes; `len` is NULL
/// or valid for writing a u64.
#[no_mangle]
pub unsafe extern "C" fn fq_get(
    q: *mut fq_queue,
    buf: *mut c_void,
    cap: u64,
    len: *mut u64,
    timeout_ns: i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if len.is_null() || (buf.is_null() && cap > 0) {
            return Err(Status::Null);
        }
        let cap = cap.min(q.max_msg()) as usize;
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else {
            // SAFETY: buf is valid for writing at least cap bytes per the contract.
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) }
        };
        let mut needed = 0;
        let r = q.get_sized(buf, timeout(timeout_ns), &mut needed);
        // SAFETY: len is non-NULL and valid per the contract.
        unsafe {
            match r {
                Ok(n) => len.write(n as u64),
                Err(Status::Buffer) => len.write(needed),
                Err(_) => {}
            }
        }
        r.map(|_| ())
    })
}

/// Added to `FQ_TRY_BIAS`-biased statuses (`FQ_TRY_BIAS` in the header): `fq_try_get` returns
/// `status - FQ_TRY_BIAS` on failure, always negative, never a length.
pub const FQ_TRY_BIAS: i64 = 1 << 32;

/// The result of a `fq_try_*` call that counts: `n` (a length or a number of messages, always
/// below 2⁴¹, so it fits) if `status` is `FQ_OK`, else `status - FQ_TRY_BIAS`.
fn try_result(status: i32, n: u64) -> i64 {
    if status == FQ_OK {
        n as i64
    } else {
        i64::from(status) - FQ_TRY_BIAS
    }
}

/// `fq_put` that never waits, with the fewest arguments: the hot path of bindings whose every
/// argument costs (ctypes).
///
/// # Safety
/// As `fq_put`.
#[no_mangle]
pub unsafe extern "C" fn fq_try_put(q: *mut fq_queue, data: *const c_void, len: u64) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { fq_put(q, data, len, 0) }
}

/// `fq_get` that never waits and returns the message's length (≥ 0), or `status - FQ_TRY_BIAS`.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn fq_try_get(q: *mut fq_queue, buf: *mut c_void, cap: u64) -> i64 {
    let mut len = 0u64;
    // SAFETY: forwarded contract; `len` is a valid local.
    let status = unsafe { fq_get(q, buf, cap, &mut len, 0) };
    try_result(status, len) // len ≤ max_msg ≤ MAX_MSG = 2^40
}

/// Makes the handle's blocked calls leave with `FQ_INTERRUPTED` when a signal interrupts their
/// sleep (`on` ≠ 0), or sleep on through signals (`on` = 0, the default).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_set_interruptible(q: *mut fq_queue, on: i32) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        q.set_interruptible(on != 0);
        Ok(())
    })
}

/// `fq_get` into a receive buffer with a *held word* (see `held`): returns the message's
/// length (≥ 0) or `status - FQ_TRY_BIAS`. A message kept in the buffer is handed over again
/// first; a buffer whose message is still being consumed gives `FQ_ERR_BUSY`.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `cap` bytes; `held` is NULL
/// or an aligned `int64_t` that only `fq_take` and its caller change, beside `buf`.
#[no_mangle]
pub unsafe extern "C" fn fq_take(
    q: *mut fq_queue,
    buf: *mut c_void,
    cap: u64,
    held: *mut i64,
    timeout_ns: i64,
) -> i64 {
    // SAFETY: forwarded contract.
    unsafe {
        take_held(held, || {
            let mut len = 0u64;
            let status = fq_get(q, buf, cap, &mut len, timeout_ns);
            (status, len)
        })
    }
}

/// `fq_take(q, buf, cap, held, 0)` with one argument fewer: never waits. For bindings where
/// every argument costs (Python's ctypes).
///
/// # Safety
/// As `fq_take`.
#[no_mangle]
pub unsafe extern "C" fn fq_try_take(
    q: *mut fq_queue,
    buf: *mut c_void,
    cap: u64,
    held: *mut i64,
) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { fq_take(q, buf, cap, held, 0) }
}

/// Bytes before the receive buffer in `fq_try_take_in`'s block: the handle, the buffer's
/// size and the held word, 8 bytes each (fastqueue.h).
const TAKE_IN_HEADER: usize = 24;

/// `fq_try_take` with a single argument: a block that holds the handle, the buffer's size
/// and the held word, followed by the buffer (see fastqueue.h). For bindings where every
/// argument costs (Python's ctypes: one argument instead of four).
///
/// # Safety
/// `hot` is NULL, or points to an 8-byte aligned block of `24 + cap` bytes laid out as the
/// header says, whose handle is NULL or live and whose word only these calls and their caller
/// change.
#[no_mangle]
pub unsafe extern "C" fn fq_try_take_in(hot: *mut c_void) -> i64 {
    if hot.is_null() || (hot as usize) % core::mem::align_of::<u64>() != 0 {
        return try_result(Status::Null as i32, 0);
    }
    let base = hot.cast::<u64>();
    // SAFETY: an aligned block of at least 24 bytes per the contract: the handle at 0, the
    // size at 8, the word at 16 (aligned: the block is), the buffer from 24 on (cap bytes).
    unsafe {
        let q = base.cast::<*mut fq_queue>().read();
        let cap = base.add(1).read();
        let held = base.add(2).cast::<i64>();
        let buf = hot.cast::<u8>().add(TAKE_IN_HEADER).cast::<c_void>();
        fq_take(q, buf, cap, held, 0)
    }
}

/// `fq_try_put_noted` with the handle and the flag in one block (see fastqueue.h): the handle
/// at offset 0, the flag at offset 8, which every call sets, to 1 if it put and to 0 if not
/// (so that a caller needs no store before the call). For bindings where every argument costs.
///
/// # Safety
/// As `fq_put`; `hot` is NULL or points to an 8-byte aligned block of 16 bytes whose handle
/// is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn fq_try_put_in(hot: *mut c_void, data: *const c_void, len: u64) -> i32 {
    if hot.is_null() || (hot as usize) % core::mem::align_of::<u64>() != 0 {
        return Status::Null as i32;
    }
    // SAFETY: an aligned block of 16 bytes per the contract: the handle at 0.
    let q = unsafe { hot.cast::<*mut fq_queue>().read() };
    // SAFETY: forwarded contract.
    let status = unsafe { fq_put(q, data, len, 0) };
    // SAFETY: the flag at offset 8 of the block: valid, and aligned for AtomicU8 (which has
    // the size and bit validity of u8). Atomic, since threads that share a block may call at
    // the same time where the binding releases its lock around calls (PyPy).
    let flag = unsafe { &*hot.cast::<u8>().add(8).cast::<AtomicU8>() };
    // ORDERING: Relaxed: the flag pairs with no other memory; its reader is the caller of
    // this call, in the same thread, after the call returns (program order).
    flag.store(u8::from(status == FQ_OK), Ordering::Relaxed);
    status
}

/// `fq_get_many` into a batch buffer with a held word (as `fq_take`; the word holds the number
/// of messages, whose lengths stay in `lens`): returns that number (≥ 1) or
/// `status - FQ_TRY_BIAS`.
///
/// # Safety
/// As `fq_get_many` and `fq_take` (`held` beside `buf` and `lens`).
#[no_mangle]
pub unsafe extern "C" fn fq_take_many(
    q: *mut fq_queue,
    buf: *mut c_void,
    cap: u64,
    lens: *mut u64,
    max_items: u64,
    held: *mut i64,
    timeout_ns: i64,
) -> i64 {
    // SAFETY: forwarded contract.
    unsafe {
        take_held(held, || {
            let mut count = 0u64;
            let status = fq_get_many(q, buf, cap, lens, max_items, &mut count, timeout_ns);
            (status, count)
        })
    }
}

/// `fq_get_many_exact` into a buffer with a held word (as `fq_take`; the word holds the number
/// of messages): returns that number (≥ 1) or `status - FQ_TRY_BIAS`.
///
/// # Safety
/// As `fq_get_many_exact` and `fq_take`.
#[no_mangle]
pub unsafe extern "C" fn fq_take_many_exact(
    q: *mut fq_queue,
    buf: *mut c_void,
    itemsize: u64,
    max_items: u64,
    held: *mut i64,
    timeout_ns: i64,
) -> i64 {
    // SAFETY: forwarded contract.
    unsafe {
        take_held(held, || {
            let mut count = 0u64;
            let status = fq_get_many_exact(q, buf, itemsize, max_items, &mut count, timeout_ns);
            (status, count)
        })
    }
}

/// The held-word protocol around a take (see `held`): `take` runs only when the word's buffer
/// is free; it returns (status, how much it took).
///
/// # Safety
/// `held` is NULL, or an aligned `int64_t` that only these calls and their caller change.
unsafe fn take_held(held: *mut i64, take: impl FnOnce() -> (i32, u64)) -> i64 {
    // SAFETY: forwarded contract.
    let Some(word) = (unsafe { crate::held::word(held) }) else {
        return try_result(Status::Null as i32, 0);
    };
    match crate::held::claim(word) {
        crate::held::Claim::Busy => try_result(Status::Busy as i32, 0),
        crate::held::Claim::Kept(n) => try_result(FQ_OK, n),
        crate::held::Claim::Take => {
            let (status, n) = take();
            crate::held::settle(word, (status == FQ_OK).then_some(n));
            try_result(status, n)
        }
    }
}

/// Keeps the message of a zero-copy read claim (`fq_read_begin`'s `token` and `len`): copies
/// it into `buf` (`cap` bytes), marks it kept in the held word `*held` (see `fq_take`: the next
/// take into this buffer hands it over), and returns the slot to producers. For a caller
/// interrupted between claiming and using a message that must not lose it.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `cap` bytes; `held` as in
/// `fq_take`.
#[no_mangle]
pub unsafe extern "C" fn fq_read_keep(
    q: *mut fq_queue,
    token: u64,
    len: u64,
    buf: *mut c_void,
    cap: u64,
    held: *mut i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        // SAFETY: forwarded contract.
        let word = unsafe { crate::held::word(held) }.ok_or(Status::Null)?;
        if buf.is_null() && len > 0 {
            return Err(Status::Null);
        }
        if len > cap || len > q.max_msg() {
            return Err(Status::Invalid);
        }
        if !crate::held::claim_free(word) {
            return Err(Status::Busy);
        }
        let src = q.payload(token);
        if src.is_null() {
            crate::held::settle(word, None);
            return Err(Status::Invalid);
        }
        // SAFETY: src is the payload of a slot (in bounds of the mapping for max_msg ≥ len
        // bytes); buf is valid for cap ≥ len bytes and does not overlap the segment. If the
        // caller does not hold this claim, the bytes copied are discarded below.
        unsafe { core::ptr::copy_nonoverlapping(src.cast_const(), buf.cast::<u8>(), len as usize) };
        match q.release_read(token) {
            Ok(()) => {
                crate::held::settle_kept(word, len);
                Ok(())
            }
            Err(e) => {
                crate::held::settle(word, None);
                Err(e)
            }
        }
    })
}

/// `fq_put` that also stores 1 in `*done` if it put the message (and leaves it alone if it did
/// not): a caller interrupted on its way back from the call reads there whether it put.
///
/// # Safety
/// As `fq_put`; `done` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn fq_put_noted(
    q: *mut fq_queue,
    data: *const c_void,
    len: u64,
    timeout_ns: i64,
    done: *mut u8,
) -> i32 {
    if done.is_null() {
        return Status::Null as i32;
    }
    // SAFETY: forwarded contract.
    let status = unsafe { fq_put(q, data, len, timeout_ns) };
    if status == FQ_OK {
        // SAFETY: done is non-NULL and valid per the contract.
        unsafe { done.write(1) };
    }
    status
}

/// `fq_put_noted(q, data, len, 0, done)` with the arguments a binding binds first: never waits.
///
/// # Safety
/// As `fq_put_noted`.
#[no_mangle]
pub unsafe extern "C" fn fq_try_put_noted(
    q: *mut fq_queue,
    done: *mut u8,
    data: *const c_void,
    len: u64,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { fq_put_noted(q, data, len, 0, done) }
}

/// Zero-copy write, step 1.
///
/// # Safety
/// `q` is NULL or a live handle; `data` and `token` are NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn fq_write_begin(
    q: *mut fq_queue,
    data: *mut *mut c_void,
    token: *mut u64,
    timeout_ns: i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if data.is_null() || token.is_null() {
            return Err(Status::Null);
        }
        let pos = q.claim_write(timeout(timeout_ns))?;
        // SAFETY: both are non-NULL and valid per the contract.
        unsafe {
            data.write(q.payload(pos).cast());
            token.write(pos);
        }
        Ok(())
    })
}

/// Zero-copy write, step 2: publish.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_write_commit(q: *mut fq_queue, token: u64, len: u64) -> i32 {
    // SAFETY: forwarded contract.
    guard(|| unsafe { queue(q) }?.commit_write(token, len))
}

/// Zero-copy write, alternative step 2: abort.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_write_abort(q: *mut fq_queue, token: u64) -> i32 {
    // SAFETY: forwarded contract.
    guard(|| unsafe { queue(q) }?.abort_write(token))
}

/// Zero-copy read, step 1.
///
/// # Safety
/// `q` is NULL or a live handle; `data`, `len` and `token` are NULL or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn fq_read_begin(
    q: *mut fq_queue,
    data: *mut *const c_void,
    len: *mut u64,
    token: *mut u64,
    timeout_ns: i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if data.is_null() || len.is_null() || token.is_null() {
            return Err(Status::Null);
        }
        let mut needed = 0;
        let c = q.claim_read(u64::MAX, timeout(timeout_ns), &mut needed)?;
        // SAFETY: all three are non-NULL and valid per the contract.
        unsafe {
            data.write(q.payload(c.pos).cast_const().cast());
            len.write(c.len);
            token.write(c.pos);
        }
        Ok(())
    })
}

/// Zero-copy read, step 2: release.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_read_end(q: *mut fq_queue, token: u64) -> i32 {
    // SAFETY: forwarded contract.
    guard(|| unsafe { queue(q) }?.release_read(token))
}

/// Attaches without registering (read-only tools).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn fq_observe(name: *const c_char, out: *mut *mut fq_queue) -> i32 {
    guard(|| {
        if name.is_null() || out.is_null() {
            return Err(Status::Null);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let q = Queue::observe_c(unsafe { CStr::from_ptr(name) })?;
        // SAFETY: forwarded contract.
        unsafe { store(out, Box::into_raw(Box::new(fq_queue(q)))) }
    })
}

/// Number of live processes attached (0 for NULL).
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_live_participants(q: *const fq_queue) -> u64 {
    // SAFETY: forwarded contract.
    unsafe { queue(q) }.map_or(0, |q| q.live_participants())
}

/// Shuts the queue down for every process.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_shutdown(q: *mut fq_queue, immediate: i32) -> i32 {
    // SAFETY: forwarded contract.
    guard(|| unsafe { queue(q) }?.shutdown(immediate != 0))
}

/// Marks `n` fetched messages as processed.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_task_done(q: *mut fq_queue, n: u64) -> i32 {
    // SAFETY: forwarded contract.
    guard(|| unsafe { queue(q) }?.task_done(n))
}

/// Waits until every message put was marked done.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_join(q: *mut fq_queue, timeout_ns: i64) -> i32 {
    // SAFETY: forwarded contract.
    guard(|| unsafe { queue(q) }?.join(timeout(timeout_ns)))
}

/// Puts a batch of messages laid out back to back in `data`.
///
/// # Safety
/// `q` is NULL or a live handle; `lens` is NULL or valid for reading `count` u64s; `data` is
/// NULL or valid for reading the sum of those lengths; `done` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn fq_put_many(
    q: *mut fq_queue,
    data: *const c_void,
    lens: *const u64,
    count: u64,
    timeout_ns: i64,
    done: *mut u64,
) -> i32 {
    guard(|| {
        if done.is_null() {
            return Err(Status::Null);
        }
        // `*done` is written on every return but a NULL `done` (the header promises the count
        // also on failure): 0 until the checks below pass and something is put.
        // SAFETY: done is non-NULL and valid per the contract.
        unsafe { done.write(0) };
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if lens.is_null() && count > 0 {
            return Err(Status::Null);
        }
        let count = usize::try_from(count).map_err(|_| Status::Invalid)?;
        let lens: &[u64] = if count == 0 {
            &[]
        } else {
            // SAFETY: lens is valid for count reads per the contract.
            unsafe { core::slice::from_raw_parts(lens, count) }
        };
        let mut total: u64 = 0;
        for &len in lens {
            if len > q.max_msg() {
                return Err(Status::TooBig);
            }
            total = total.checked_add(len).ok_or(Status::Invalid)?;
        }
        if data.is_null() && total > 0 {
            return Err(Status::Null);
        }
        let total = usize::try_from(total).map_err(|_| Status::Invalid)?;
        let data: &[u8] = if total == 0 {
            &[]
        } else {
            // SAFETY: data is valid for the sum of the lengths per the contract.
            unsafe { core::slice::from_raw_parts(data.cast::<u8>(), total) }
        };
        let mut n = 0;
        let r = q.put_many(data, lens, timeout(timeout_ns), &mut n);
        // SAFETY: done is non-NULL and valid per the contract.
        unsafe { done.write(n) };
        r
    })
}

/// Takes up to `max_items` messages into `buf`, back to back.
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `cap` bytes; `lens` is NULL
/// or valid for writing `max_items` u64s; `count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn fq_get_many(
    q: *mut fq_queue,
    buf: *mut c_void,
    cap: u64,
    lens: *mut u64,
    max_items: u64,
    count: *mut u64,
    timeout_ns: i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        if count.is_null() || (lens.is_null() && max_items > 0) || (buf.is_null() && cap > 0) {
            return Err(Status::Null);
        }
        let max_items = usize::try_from(max_items).map_err(|_| Status::Invalid)?;
        let cap = usize::try_from(cap).map_err(|_| Status::Invalid)?;
        let lens: &mut [u64] = if max_items == 0 {
            &mut []
        } else {
            // SAFETY: lens is valid for max_items writes per the contract.
            unsafe { core::slice::from_raw_parts_mut(lens, max_items) }
        };
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else {
            // SAFETY: buf is valid for cap writes per the contract.
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) }
        };
        let mut n = 0;
        let r = q.get_many(buf, lens, timeout(timeout_ns), &mut n);
        // SAFETY: count is non-NULL and valid per the contract.
        unsafe { count.write(n) };
        r
    })
}

/// `fq_put_many` that never waits, for bindings where every argument costs: the data comes
/// last (so a binding can fix the others), and the result is the number of messages put (the
/// first ones; fewer than `count` if the ring filled up or the queue was shut down meanwhile),
/// or `status - FQ_TRY_BIAS` when it put none for another reason than a full ring.
///
/// # Safety
/// As `fq_put_many`.
#[no_mangle]
pub unsafe extern "C" fn fq_try_put_many(
    q: *mut fq_queue,
    lens: *const u64,
    count: u64,
    data: *const c_void,
) -> i64 {
    let mut done = 0u64;
    // SAFETY: forwarded contract; `done` is a valid local.
    let status = unsafe { fq_put_many(q, data, lens, count, 0, &mut done) };
    // A full ring, or any stop after the first message, is a count (done ≤ count: a number of
    // messages held by one buffer).
    let counted = status == Status::Full as i32 || done > 0;
    try_result(if counted { FQ_OK } else { status }, done)
}

/// `fq_get_many` that never waits and returns the number of messages taken (≥ 1), or
/// `status - FQ_TRY_BIAS` (FQ_EMPTY, FQ_SHUTDOWN, FQ_ERR_BUFFER with `lens[0]` the size
/// needed, ...).
///
/// # Safety
/// As `fq_get_many`.
#[no_mangle]
pub unsafe extern "C" fn fq_try_get_many(
    q: *mut fq_queue,
    buf: *mut c_void,
    cap: u64,
    lens: *mut u64,
    max_items: u64,
) -> i64 {
    let mut count = 0u64;
    // SAFETY: forwarded contract; `count` is a valid local.
    let status = unsafe { fq_get_many(q, buf, cap, lens, max_items, &mut count, 0) };
    try_result(status, count) // count ≤ max_items, lengths held by one buffer
}

/// Takes up to `max_items` messages of exactly `itemsize` bytes each into `buf`, back to back.
/// On `FQ_ERR_BUFFER` the first message has another length, which `count` receives (it stays
/// queued).
///
/// # Safety
/// `q` is NULL or a live handle; `buf` is NULL or valid for writing `itemsize × max_items`
/// bytes; `count` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn fq_get_many_exact(
    q: *mut fq_queue,
    buf: *mut c_void,
    itemsize: u64,
    max_items: u64,
    count: *mut u64,
    timeout_ns: i64,
) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        let bytes = itemsize.checked_mul(max_items).ok_or(Status::Invalid)?;
        if count.is_null() || (buf.is_null() && bytes > 0) {
            return Err(Status::Null);
        }
        let max_items = usize::try_from(max_items).map_err(|_| Status::Invalid)?;
        let bytes = usize::try_from(bytes)
            .ok()
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(Status::Invalid)?;
        let buf: &mut [u8] = if bytes == 0 {
            &mut []
        } else {
            // SAFETY: buf is valid for itemsize × max_items writes per the contract.
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), bytes) }
        };
        let mut n = 0;
        let r = q.get_many_exact(buf, itemsize, max_items, timeout(timeout_ns), &mut n);
        // SAFETY: count is non-NULL and valid per the contract.
        unsafe { count.write(n) };
        r
    })
}

/// `fq_get_many_exact` that never waits and returns the number of messages taken (≥ 1), or
/// `status - FQ_TRY_BIAS` (FQ_EMPTY, FQ_SHUTDOWN, FQ_ERR_BUFFER when the first message has
/// another length: `fq_get_many_exact` with timeout 0 tells which, ...).
///
/// # Safety
/// As `fq_get_many_exact`.
#[no_mangle]
pub unsafe extern "C" fn fq_try_get_many_exact(
    q: *mut fq_queue,
    buf: *mut c_void,
    itemsize: u64,
    max_items: u64,
) -> i64 {
    let mut count = 0u64;
    // SAFETY: forwarded contract; `count` is a valid local.
    let status = unsafe { fq_get_many_exact(q, buf, itemsize, max_items, &mut count, 0) };
    try_result(status, count) // count ≤ max_items, messages held by one buffer
}

/// Waits until a get (`what` = 1) or a put (`what` = 2) could proceed, taking nothing.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_wait(q: *mut fq_queue, what: i32, timeout_ns: i64) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        match what {
            FQ_WAIT_READABLE => q.wait_ready(true, timeout(timeout_ns)),
            FQ_WAIT_WRITABLE => q.wait_ready(false, timeout(timeout_ns)),
            _ => Err(Status::Invalid),
        }
    })
}

/// Passes on a wake-up after an `fq_wait` that returned `FQ_OK` whose caller will not take
/// (`what` = 1) or put (`what` = 2) after all: wakes one other waiter of that side, if any.
///
/// # Safety
/// `q` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fq_wake(q: *mut fq_queue, what: i32) -> i32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let q = unsafe { queue(q) }?;
        match what {
            FQ_WAIT_READABLE => q.pass_on(true),
            FQ_WAIT_WRITABLE => q.pass_on(false),
            _ => Err(Status::Invalid),
        }
    })
}

/// Does nothing: measures the cost of a call.
///
/// # Safety
/// `q` is NULL or a live handle (it is not dereferenced).
#[no_mangle]
pub unsafe extern "C" fn fq_noop(
    q: *mut fq_queue,
    _data: *const c_void,
    _len: u64,
    _timeout_ns: i64,
) -> i32 {
    if q.is_null() {
        Status::Null as i32
    } else {
        FQ_OK
    }
}
