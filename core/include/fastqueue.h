/*
 * fastqueue.h — the C ABI of fastqueue.
 *
 * A bounded multi-producer / multi-consumer queue of byte messages that lives in a named POSIX
 * shared-memory segment (/dev/shm/<name> on Linux). Any process on the machine that links or
 * dlopen()s the fastqueue library attaches to the queue by name; messages are copied into and out
 * of the segment by the library, never through the kernel.
 *
 * General rules (they hold for every function unless its comment says otherwise):
 *
 *  - Status: functions return an int32_t status. FQ_OK (0) is success; FQ_EMPTY, FQ_FULL,
 *    FQ_SHUTDOWN, FQ_TIMEOUT and FQ_INTERRUPTED (> 0) are ordinary outcomes (nothing to do, or the queue was shut
 *    down); every negative value is an error. fq_status_str() turns any status into a static English sentence.
 *  - NULL: every pointer argument is checked; NULL where a pointer is required gives FQ_ERR_NULL.
 *    `data` may be NULL when `len` is 0.
 *  - Timeouts: `timeout_ns` < 0 waits forever, 0 never waits (try once), > 0 waits until the call
 *    can do what it was asked or `timeout_ns` nanoseconds (CLOCK_MONOTONIC, from the call) have
 *    passed. It never gives up before that deadline: a wake-up that finds nothing (another
 *    process was faster) goes back to sleep; it may return a little after it (scheduling). Before
 *    the deadline it ends only with success or another outcome: FQ_SHUTDOWN (the queue was shut
 *    down) or an error. A timed-out call returns FQ_EMPTY / FQ_FULL (fq_wait, fq_join:
 *    FQ_TIMEOUT) and changes nothing. Blocking never polls: the caller spins briefly (only while fewer than half the CPUs'
 *    worth of callers spin on that side), then sleeps in the kernel (futex) and is woken by the
 *    operation it waits for. A put wakes at most one sleeping get per message (a batch of n, at
 *    most n); a get wakes sleeping puts once a sixteenth of the ring (at most 64 slots) is free,
 *    not slot by slot, so a put blocked on a full queue may see a single freed slot only when its
 *    own deadline comes (it makes a last attempt then) or after 250 ms.
 *  - Signals: by default a signal handler that runs while a call sleeps does not end the call:
 *    it sleeps on until it can do what it was asked or its deadline passes. A program that wants
 *    to act on its own handler at once (a Ctrl-C handler that sets a flag) calls
 *    fq_set_interruptible(q, 1): then a call whose sleep a signal interrupts returns
 *    FQ_INTERRUPTED, having taken, put and claimed nothing (check your flag, then call again).
 *    A signal that arrives while the call is not asleep (spinning, copying) does not end it. A
 *    signal never loses or duplicates a message inside the library; what a caller does on its
 *    way back from a call is its own (fq_take and fq_put_noted help bindings whose handlers
 *    raise, such as Python's).
 *  - Threads: a fq_queue handle may be used by any number of threads at once. fq_close() may
 *    run while other threads are waiting in calls on the same handle (blocked in fq_get(),
 *    fq_put(), a batch, a zero-copy begin, fq_wait() or fq_join(), e.g. to shut a worker down):
 *    those calls return FQ_ERR_CLOSED, and fq_close() returns once they have. A call that is
 *    not waiting when fq_close() begins (one that finds what it needs at once, or never waits),
 *    a call that starts after fq_close() began, and a second fq_close() of the same handle use
 *    freed memory: undefined behaviour, as with free(). Stop such threads first (after
 *    fq_shutdown(), puts return FQ_SHUTDOWN, and gets do once the queue is drained).
 *  - Processes: handles are per process. After fork() the child must fq_clone() each inherited
 *    handle it wants to use and fq_close() the inherited one: an inherited handle is the
 *    parent's participant (if the child died mid-claim through it, crash recovery could not tell
 *    the child from the parent and the slot would stay claimed while the parent lives), so in
 *    the child it refuses every call but fq_clone() and fq_close() with FQ_ERR_TOO_MANY.
 *  - Ownership: a handle from fq_create(), fq_open(), fq_clone() or fq_observe() is owned by the
 *    caller and freed by fq_close(); those functions write *out only on success. Buffers passed
 *    in stay the caller's: the library copies what it needs before returning and keeps no
 *    pointer to them. Strings returned by the library are static; never free them.
 *  - Corruption: a call that finds the ring's state impossible (another program wrote into the
 *    segment) returns FQ_ERR_BAD_SEGMENT instead of guessing.
 *  - No function allocates on the put/get path, and no Rust panic ever crosses this boundary
 *    (an internal bug is reported as FQ_ERR_INTERNAL).
 *  - Names: "name" or "/name": 1..250 bytes not counting the leading '/', no other '/', no NUL, not
 *    "." or ".." (else FQ_ERR_INVALID). Both spellings are the same queue (/dev/shm/name).
 *
 * Versioning: FQ_ABI_VERSION changes whenever a signature, status value or rule here changes in an
 * incompatible way; fq_abi_version() returns the version the library was built with. The segment
 * layout carries its own version; a library refuses a segment of another layout with FQ_ERR_VERSION.
 */
#ifndef FASTQUEUE_H
#define FASTQUEUE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Constants. Each one is an enumerator of an unnamed enum (an int, in C89 as in C++) or, for
 * FQ_TRY_BIAS, which does not fit in an int, a static const int64_t: never a macro, so that
 * they outlive the preprocessor for tools that read the header after `cc -E` (cffi's cdef) and
 * keep their types for binding generators (bindgen: the statuses are one enum with negative
 * members, so every status is an i32 like the functions' results; enums of non-negative values,
 * the FQ_WAIT_* flags and FQ_STAT_* indices, come out as u32 there: cast a flag to the int32_t
 * `what`). New statuses go at the end of their enum; FQ_TRY_STATUS below stays a macro (a
 * helper, not a constant).
 */

/** Version of this C ABI. Compare with fq_abi_version() at run time. */
enum { FQ_ABI_VERSION = 1 };

/** Status codes: what every int32_t-returning function returns (see "Status" above). */
enum {
    /** Success. */
    FQ_OK = 0,
    /** A get found no message within its timeout (or at once, for timeout 0). Nothing changed. */
    FQ_EMPTY = 1,
    /** A put found no free slot within its timeout (or at once, for timeout 0). Nothing changed. */
    FQ_FULL = 2,
    /** The queue was shut down (fq_shutdown): puts fail at once; gets fail once it is drained (at
     *  once after an immediate shutdown); fq_wait returns it the same way. */
    FQ_SHUTDOWN = 3,
    /** fq_wait, fq_join: the wait ran out before what it waited for. */
    FQ_TIMEOUT = 4,
    /** A signal interrupted the call's sleep, on a handle made interruptible with
     *  fq_set_interruptible(); nothing was taken, put or claimed. */
    FQ_INTERRUPTED = 5,

    /** A required pointer argument was NULL. */
    FQ_ERR_NULL = -1,
    /** An argument is out of range or does not apply: sizes 0 or too large (capacity, max_msg,
     *  a batch or item size), a bad name, a refused `mode` (fq_create), a token this handle does
     *  not hold, a `what` other than one FQ_WAIT_* flag, more tasks done than messages put,
     *  not a ".fq-tmp-" name (fq_remove_leftover), or an observer handle (fq_observe) passed to
     *  a call that changes the queue or waits on it. */
    FQ_ERR_INVALID = -2,
    /** The message is longer than the queue's max_msg. Nothing was written. */
    FQ_ERR_TOO_BIG = -3,
    /** The caller's buffer is smaller than the next message; the message stays in the queue. The
     *  size needed is in *len (fq_get), lens[0] (fq_get_many, fq_try_get_many) or *count
     *  (fq_get_many_exact: the first message's length, when it is not `itemsize`). fq_try_get
     *  cannot return it: call fq_get(q, NULL, 0, &len, 0) to learn it (see fq_try_get). */
    FQ_ERR_BUFFER = -4,
    /** fq_create: a file with this name already exists (a queue or anything else). */
    FQ_ERR_EXISTS = -5,
    /** Nothing has this name: fq_open, fq_observe, fq_unlink, fq_unlink_force,
     *  fq_remove_leftover; fq_unlink_same also when the name leads to another file. */
    FQ_ERR_NOT_FOUND = -6,
    /** The operating system refused access (permissions of the segment). */
    FQ_ERR_PERMISSION = -7,
    /** Not enough shared memory (/dev/shm full or size limits); nothing was left behind. */
    FQ_ERR_NO_SPACE = -8,
    /** The segment is not a valid fastqueue queue: foreign, truncated or corrupted, or not a
     *  regular file at all (a directory, a FIFO, a symbolic link: never followed or waited on);
     *  also any call that finds the ring's state impossible (see "Corruption" above). */
    FQ_ERR_BAD_SEGMENT = -9,
    /** The segment is a fastqueue queue of another layout version (1..65535; a larger value after
     *  a valid magic is FQ_ERR_BAD_SEGMENT). */
    FQ_ERR_VERSION = -10,
    /** The segment was never finished by its creator (it died during creation, or is still at
     *  it); fq_unlink: an empty or zeroed file (see there). */
    FQ_ERR_NOT_READY = -11,
    /** The queue's participant table is full: too many processes have it open. */
    FQ_ERR_TOO_MANY = -12,
    /** Another operating-system error; errno is left as the system call set it. */
    FQ_ERR_OS = -13,
    /** A bug inside the library (a caught panic). Please report it. */
    FQ_ERR_INTERNAL = -14,
    /** Another thread closed the handle (fq_close) while this call was waiting on it: the call
     *  stopped (a blocked put/get/wait/join returns at once) and did nothing more. */
    FQ_ERR_CLOSED = -15,
    /** fq_take: the receive buffer still holds a message whose caller has not consumed it (its
     *  held word is >= 0, or another fq_take is using it). Nothing was taken. */
    FQ_ERR_BUSY = -16
};

/** Opaque handle to an attached queue. */
typedef struct fq_queue fq_queue;

/** The ABI version the library was built with (FQ_ABI_VERSION of its header). Never fails. */
uint32_t fq_abi_version(void);

/** The layout version of segments this library creates and accepts. Never fails. */
uint32_t fq_layout_version(void);

/** A static, NUL-terminated English description of `status` (also for unknown values). Never
 *  fails, never returns NULL; thread-safe. */
const char *fq_status_str(int32_t status);

/**
 * Size in bytes of the segment fq_create() would make for these sizes, in *out.
 * Returns FQ_OK, FQ_ERR_NULL, or FQ_ERR_INVALID (zero or too-large sizes).
 */
int32_t fq_segment_size(uint64_t max_msg, uint64_t capacity, uint64_t *out);

/**
 * Creates a new queue named `name` that holds up to `capacity` (>= 1, any integer) messages of
 * 0..`max_msg` (>= 1) bytes each, with permission bits `mode` (e.g. 0600), reserves all its
 * memory up front, and attaches to it. Fails with FQ_ERR_EXISTS if the name is taken; on any
 * failure nothing is left behind. On success *out is a new handle (free it with fq_close()).
 * Creation is atomic: the segment is built unnamed in /dev/shm (O_TMPFILE; on kernels without
 * it, under a locked temporary name, see fq_remove_leftover()) and linked to `name` only once
 * complete, so a concurrent fq_open() never sees a half-initialised segment and a creator
 * killed mid-way leaves no name behind. It never asks for more memory than
 * fq_memory_room() reports (FQ_ERR_NO_SPACE, before anything is reserved), so creating a queue
 * cannot wake the OOM killer; a full /dev/shm also fails with FQ_ERR_NO_SPACE.
 * Does not block (beyond the time it takes to reserve the memory). The creator does not own the
 * name: fq_close() keeps it, fq_unlink() removes it. `mode` is permission bits (at most 0777:
 * setuid, setgid and sticky bits such as 04600 are refused, never dropped) in which the owner
 * can read and write, and the group and others each can read and write or neither: e.g. 0600,
 * 0660, 0666. Any other mode is refused with FQ_ERR_INVALID (0640, 0644, 0400: read access
 * without write would let its holders take locks that keep others from attaching; 0620: write
 * access without read could never attach; 04600: not permission bits). Execute bits are ignored.
 * Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_INVALID, FQ_ERR_EXISTS, FQ_ERR_PERMISSION, FQ_ERR_NO_SPACE
 * or FQ_ERR_OS.
 */
int32_t fq_create(const char *name, uint64_t max_msg, uint64_t capacity, uint32_t mode,
                  fq_queue **out);

/** fq_create_ex() flags. */
enum {
    /** Acknowledged delivery (at-least-once). */
    FQ_CREATE_REDELIVER = 1
};

/**
 * fq_create() with creation `flags` (0 or FQ_CREATE_REDELIVER) and, for a redeliver queue, the number of
 * `leases` (0: the capacity). With FQ_CREATE_REDELIVER every get (fq_get, fq_try_get, the batches, the
 * zero-copy read) LEASES the message it returns to the calling handle until fq_task_done()
 * acknowledges it (fq_task_done(q, n) acknowledges the handle's n oldest leases). A handle that
 * is closed, or whose process dies (SIGKILL included), gives its unacknowledged messages back:
 * the next gets of any handle take them again, before any new message, oldest first (they are
 * counted in FQ_STAT_REDELIVERED), and a blocked get, fq_wait or fq_join notices a dead holder
 * within about half a second. Delivery is at-least-once: a message whose consumer died after
 * processing it and before acknowledging it is processed again. Leases do not take ring slots:
 * producers keep the whole capacity. At most `leases` messages are leased at once; a get beyond
 * that waits (as its timeout allows) for an acknowledgement. The lease table costs
 * 128 + leases x round_up(32 + max_msg, 64) bytes of the segment (see fq_segment_size for the
 * rest); a get copies the message into its lease (one more copy per get). In the pooled layout
 * (max_msg >= 64 KiB, capacity <= 65536) the get hands the message's pool buffer over to its
 * lease instead (no copy): the pool holds `leases` more buffers and the table costs
 * 128 + leases x (64 + round_up(max_msg, 4096)) bytes. fq_read_end() of a lease keeps the lease (its data stays valid until fq_task_done).
 * First deliveries keep the queue's FIFO order. fq_join() waits for every acknowledgement.
 * FQ_ERR_INVALID for unknown flags or `leases` without FQ_CREATE_REDELIVER; otherwise as fq_create().
 */
int32_t fq_create_ex(const char *name, uint64_t max_msg, uint64_t capacity, uint32_t mode,
                     uint32_t flags, uint64_t leases, fq_queue **out);

/** The queue's creation flags, stored in the segment (FQ_CREATE_REDELIVER or 0); 0 if q is NULL. */
uint32_t fq_flags(const fq_queue *q);

/** Number of lease entries of a FQ_CREATE_REDELIVER queue; 0 for other queues or NULL. */
uint64_t fq_lease_count(const fq_queue *q);

/**
 * Attaches to the existing queue `name`. The segment is validated before use (size, magic,
 * layout version, every offset); a segment still being created is waited for up to 1 s.
 * On success *out is a new handle (free it with fq_close()). Returns FQ_OK, FQ_ERR_NULL,
 * FQ_ERR_INVALID (bad name), FQ_ERR_NOT_FOUND, FQ_ERR_PERMISSION, FQ_ERR_BAD_SEGMENT,
 * FQ_ERR_VERSION (another layout version), FQ_ERR_NOT_READY, FQ_ERR_TOO_MANY or FQ_ERR_OS.
 */
int32_t fq_open(const char *name, fq_queue **out);

/**
 * A new handle on the same segment as `q`, with its own identity for crash recovery, even if the
 * name was unlinked. In a child after fork(): clone each inherited handle, then fq_close() the
 * inherited one (closing an inherited handle in the child never disturbs the parent). `q` stays
 * valid and the caller's. Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_TOO_MANY (the participant table has
 * no entry for a new handle: the child then has no handle it may use; retry later), or an error
 * of fq_open() reopening the segment (e.g. FQ_ERR_OS).
 */
int32_t fq_clone(const fq_queue *q, fq_queue **out);

/** Detaches and frees the handle. NULL is ignored. Does not remove the name. Calls other
 *  threads are waiting in on `q` when fq_close() begins are woken at once and return
 *  FQ_ERR_CLOSED; fq_close() waits for them to return, and blocks for nothing else. No call may
 *  be running on `q` without waiting, or start, once fq_close() began, and closing it twice is
 *  undefined behaviour: it is dangling (see "Threads" above).
 *  Zero-copy claims still open on the handle are given up: an unfinished write is skipped by
 *  consumers, a message still being read is lost (and counted in FQ_STAT_LOST). */
void fq_close(fq_queue *q);

/** Removes the name if it holds a fastqueue segment (of any layout version: the first 8 bytes
 *  are the magic "FASTQUE1"); attached handles keep working, and the memory is freed when the
 *  last detaches. Anything else stays where it is: FQ_ERR_BAD_SEGMENT for a foreign file (other
 *  bytes, not a regular file, a symbolic link), FQ_ERR_NOT_READY for an empty or zeroed file
 *  (a segment an older fastqueue's creator never finished, or a foreign file: nobody can tell;
 *  fq_unlink_force() removes it). The file is read through a descriptor of its own, never
 *  mapped, and the name must still lead to the same file right before it is removed (what is
 *  left is that instant, in which only the file's owner or root can swap it: /dev/shm is
 *  sticky). Needs no handle. Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_INVALID, FQ_ERR_NOT_FOUND,
 *  FQ_ERR_PERMISSION, FQ_ERR_BAD_SEGMENT, FQ_ERR_NOT_READY or FQ_ERR_OS. */
int32_t fq_unlink(const char *name);

/** Removes the name whatever file it holds (a queue, a leftover, a foreign or empty file, a
 *  symbolic link, a FIFO), without looking at it (the command line's `rm --force`): for
 *  leftovers fq_unlink() refuses. A directory is not a file it can remove (no fastqueue makes
 *  one): FQ_ERR_BAD_SEGMENT, and it stays. Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_INVALID,
 *  FQ_ERR_NOT_FOUND, FQ_ERR_PERMISSION, FQ_ERR_BAD_SEGMENT or FQ_ERR_OS. */
int32_t fq_unlink_force(const char *name);

/** Removes `name` only if it still names the segment `q` is attached to (the same file): what a
 *  creator calls on close, so that it never removes a later queue that took the name after this
 *  one was unlinked. FQ_ERR_NOT_FOUND if the name is gone or names another file, which stays.
 *  Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_INVALID (also for an observer handle), FQ_ERR_NOT_FOUND,
 *  FQ_ERR_PERMISSION or FQ_ERR_OS. */
int32_t fq_unlink_same(const fq_queue *q, const char *name);

/** Removes `name` if it is a creation leftover whose creator is gone, and sets *removed to 1
 *  (0: its creator is still at work, nothing done). Where the kernel or file system has no
 *  O_TMPFILE, fq_create() builds a segment under a temporary name ".fq-tmp-<pid>-<n>" and holds
 *  a write lock (F_OFD_SETLK) on its byte 2^40 - 1 until the segment has its real name; a
 *  creator killed meanwhile leaves that file. It counts as gone when nobody holds that lock
 *  and no process has the pid in its name. `fastqueue gc` calls this for every such name.
 *  Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_INVALID (not a ".fq-tmp-" name), FQ_ERR_NOT_FOUND,
 *  FQ_ERR_PERMISSION or FQ_ERR_OS. */
int32_t fq_remove_leftover(const char *name, uint32_t *removed);

/** The largest segment, in bytes, that fq_create() accepts now as far as memory is concerned,
 *  in *out: the least of what the machine (MemAvailable of /proc/meminfo) and the process's
 *  memory cgroup and its ancestors (v2 memory.max - memory.current, v1 memory.limit_in_bytes -
 *  memory.usage_in_bytes) can still give, each less a margin of min(256 MiB, 1/16 of its total);
 *  UINT64_MAX when none can be read. /dev/shm's own free space is not included (the reservation
 *  itself checks it). Read afresh on every call. Returns FQ_OK or FQ_ERR_NULL. */
int32_t fq_memory_room(uint64_t *out);

/** The queue's capacity in messages; 0 if q is NULL. */
uint64_t fq_capacity(const fq_queue *q);

/** The largest message the queue takes, in bytes; 0 if q is NULL. */
uint64_t fq_max_msg(const fq_queue *q);

/** Approximate number of messages in the queue, 0..fq_capacity(q) (exact when nothing runs
 *  concurrently; a slot given up by fq_write_abort counts until a get skips it); 0 if q is NULL. */
uint64_t fq_size(const fq_queue *q);

/** Indices of the counters fq_stats() reports. */
enum {
    FQ_STAT_PUTS = 0,           /* messages ever claimed by puts (the enqueue counter) */
    FQ_STAT_GETS = 1,           /* messages ever claimed or skipped by gets (the dequeue counter) */
    FQ_STAT_FULL_HITS = 2,      /* puts that found the queue full (once per call) */
    FQ_STAT_EMPTY_HITS = 3,     /* gets that found the queue empty (once per call) */
    FQ_STAT_RECOVERIES = 4,     /* slots taken back from processes that died (or closed) mid-operation */
    FQ_STAT_RECLAIMED = 5,      /* participant entries of dead processes reused */
    FQ_STAT_DEPTH = 6,          /* messages queued now (approximate under concurrency) */
    FQ_STAT_SKIPPED = 7,        /* abandoned slots (aborted writes, dead writers) skipped by gets */
    FQ_STAT_LOST = 8,           /* messages that died with the consumer reading them */
    FQ_STAT_TASKS_DONE = 9,     /* fq_task_done() total */
    FQ_STAT_UNFINISHED = 10,    /* puts not yet marked done (nor skipped or lost) */
    FQ_STAT_CREATOR_PID = 11,   /* process id of the creator (informational) */
    FQ_STAT_SEGMENT_SIZE = 12,  /* size of the segment in bytes */
    FQ_STAT_SHUTDOWN = 13,      /* 0 open, 1 shut down, 2 shut down immediately */
    FQ_STAT_GETTERS_WOKEN = 14, /* blocked gets woken by puts (one per message made available) */
    FQ_STAT_PUTTERS_WOKEN = 15, /* blocked puts woken by gets (when room was made) */
    FQ_STAT_GETTER_SLEEPS = 16, /* times a blocked get (or fq_wait) slept in the kernel */
    FQ_STAT_PUTTER_SLEEPS = 17, /* times a blocked put (or fq_wait) slept in the kernel */
    FQ_STAT_REDELIVERED = 18,   /* FQ_CREATE_REDELIVER: messages delivered again after their holder
                                   died or closed */
    FQ_STAT_LEASED = 19,        /* FQ_CREATE_REDELIVER: messages leased or waiting for redelivery now */
    FQ_STAT_ABANDONED = 20,     /* without FQ_CREATE_REDELIVER: messages that handles took and did not
                                   mark done before they closed or died, counted as done */
    FQ_STAT_COUNT = 21
};

/**
 * Copies up to `n` counters (indices FQ_STAT_*) kept in the segment into out[0..n). Counters
 * beyond FQ_STAT_COUNT are set to 0. Each counter is read atomically, but they are not a
 * consistent snapshot while other processes work. Never blocks. Returns FQ_OK or FQ_ERR_NULL
 * (`out` may be NULL when `n` is 0).
 */
int32_t fq_stats(const fq_queue *q, uint64_t *out, uint32_t n);

/**
 * Copies `len` bytes from `data` into the queue as one message. Blocks while the queue is full,
 * as `timeout_ns` allows. `data` may be reused as soon as the call returns. Returns FQ_OK,
 * FQ_FULL, FQ_SHUTDOWN, FQ_ERR_NULL, FQ_ERR_TOO_BIG, or FQ_ERR_INVALID (an observer handle).
 */
int32_t fq_put(fq_queue *q, const void *data, uint64_t len, int64_t timeout_ns);

/**
 * Takes the oldest message into `buf` (capacity `cap` bytes) and stores its length in *len.
 * Blocks while the queue is empty, as `timeout_ns` allows. Returns FQ_OK, FQ_EMPTY, FQ_SHUTDOWN
 * (shut down and drained), FQ_ERR_NULL, FQ_ERR_INVALID (an observer handle), or FQ_ERR_BUFFER
 * (then *len is the size needed and the message stays queued). `buf` may be NULL when `cap` is 0.
 */
int32_t fq_get(fq_queue *q, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns);

/**
 * fq_put(q, data, len, 0) with one argument fewer: never waits. For bindings where every argument
 * costs (Python's ctypes); C callers gain nothing over fq_put.
 */
int32_t fq_try_put(fq_queue *q, const void *data, uint64_t len);

/** fq_try_get() returns a status `s` (never FQ_OK) as `s - FQ_TRY_BIAS`: always negative.
 *  2^32 (4294967296), a plain number so that FFI tools read it (see "Constants" above). */
static const int64_t FQ_TRY_BIAS = 4294967296;
/** The status behind a negative fq_try_get() result. */
#define FQ_TRY_STATUS(r) ((int32_t)((r) + FQ_TRY_BIAS))

/**
 * fq_get(q, buf, cap, &len, 0) returning the message's length (>= 0) instead of FQ_OK, and
 * `status - FQ_TRY_BIAS` otherwise (see FQ_TRY_STATUS: FQ_EMPTY, FQ_SHUTDOWN, FQ_ERR_BUFFER with
 * the message left queued, ...). Never waits. For bindings where every argument costs.
 * FQ_ERR_BUFFER carries no size (there is no *len): fq_get(q, NULL, 0, &len, 0) tells it,
 * returning FQ_ERR_BUFFER with len = the size the next message needs and leaving it queued (or
 * FQ_OK if the next message is empty: it is taken, len 0; or FQ_EMPTY if another consumer took
 * it meanwhile). Then call again with a buffer of at least len bytes.
 */
int64_t fq_try_get(fq_queue *q, void *buf, uint64_t cap);

/**
 * Sets whether the handle's blocked calls return FQ_INTERRUPTED when a signal interrupts their
 * sleep (`on` != 0) or sleep on through signals (`on` == 0, the default; see "Signals" above).
 * Applies to fq_put, fq_get, fq_take, fq_put_noted, the batches, the zero-copy begins and
 * fq_wait of this handle (fq_join always sleeps on). Returns FQ_OK or FQ_ERR_NULL.
 */
int32_t fq_set_interruptible(fq_queue *q, int32_t on);

/**
 * A get that an interrupt cannot lose a message to: fq_get(q, buf, cap, &len, timeout_ns) into
 * a receive buffer that comes with a *held word* `*held` (an aligned int64_t the caller owns,
 * initially -1), returning the message's length (>= 0) or `status - FQ_TRY_BIAS` like
 * fq_try_get. The word says what the buffer holds:
 *   -1        nothing: the call takes from the queue (and waits as `timeout_ns` allows);
 *   n >= 0    the message of n bytes this call (or an earlier one) handed over: once the caller
 *             has consumed it, it stores -1. Until then calls with this buffer return
 *             FQ_ERR_BUSY and take nothing;
 *   -(n + 2)  a message of n bytes the caller *kept*: it was interrupted before it consumed
 *             the message and stored -(n + 2) instead of -1. The next call hands the same
 *             message over again (the word becomes n) and takes nothing from the queue.
 * While a call uses the buffer the word is INT64_MIN (other threads' calls get FQ_ERR_BUSY).
 * NULL or misaligned `held`: FQ_ERR_NULL. Threads: one buffer and word per concurrent caller.
 */
int64_t fq_take(fq_queue *q, void *buf, uint64_t cap, int64_t *held, int64_t timeout_ns);

/** fq_take(q, buf, cap, held, 0) with one argument fewer: never waits. For bindings where every
 *  argument costs (Python's ctypes); C callers gain nothing over fq_take. */
int64_t fq_try_take(fq_queue *q, void *buf, uint64_t cap, int64_t *held);

/**
 * fq_put that also stores 1 in *done if it put the message (and leaves *done alone if not):
 * a caller that clears *done before the call and is interrupted on its way back reads there
 * whether the message went in. NULL `done`: FQ_ERR_NULL, nothing put.
 */
int32_t fq_put_noted(fq_queue *q, const void *data, uint64_t len, int64_t timeout_ns,
                     uint8_t *done);

/** fq_put_noted(q, data, len, 0, done) with `done` first (bindings bind it with the handle):
 *  never waits. */
int32_t fq_try_put_noted(fq_queue *q, uint8_t *done, const void *data, uint64_t len);

/**
 * fq_try_take(q, buf, cap, held) with its arguments in one block at `hot` (8-byte aligned),
 * for bindings where every argument costs (Python's ctypes: one argument instead of four):
 *   offset 0   fq_queue *q      the handle (NULL: FQ_ERR_NULL, taking nothing);
 *   offset 8   uint64_t cap     the size of the receive buffer;
 *   offset 16  int64_t held     the held word (see fq_take), initially -1;
 *   offset 24  cap bytes        the receive buffer.
 * NULL or misaligned `hot`: FQ_ERR_NULL (biased, as fq_try_get). C callers gain nothing.
 */
int64_t fq_try_take_in(void *hot);

/**
 * fq_try_put_noted with the handle and the flag in one block at `hot` (8-byte aligned, 16
 * bytes): the handle at offset 0, the flag (uint8_t) at offset 8. Every call stores the flag:
 * 1 if it put, 0 if not (unlike fq_put_noted, nothing needs to clear it first). A NULL
 * handle: FQ_ERR_NULL, nothing put, the flag 0; NULL or misaligned `hot`: FQ_ERR_NULL, nothing
 * put or stored. For bindings.
 */
int32_t fq_try_put_in(void *hot, const void *data, uint64_t len);

/**
 * fq_get_many into a batch buffer with a held word, as fq_take does for one message: the word
 * holds the number of messages in `buf` (their lengths stay in `lens`), and the call returns
 * that number (>= 1) or `status - FQ_TRY_BIAS`; a kept batch (-(count + 2)) is handed over
 * again whole.
 */
int64_t fq_take_many(fq_queue *q, void *buf, uint64_t cap, uint64_t *lens, uint64_t max_items,
                     int64_t *held, int64_t timeout_ns);

/**
 * Keeps the message of a zero-copy read claim (`token` and `len` from fq_read_begin): copies it
 * into `buf` (`cap` >= `len` bytes), stores -(len + 2) in the held word `*held` (which must be
 * -1: see fq_take; the next fq_take with this buffer hands the message over) and ends the claim
 * as fq_read_end does. For a caller interrupted between claiming a message and using it.
 * Returns FQ_OK, FQ_ERR_NULL, FQ_ERR_INVALID (not this handle's claim, or `len` > `cap`: the
 * word is left -1) or FQ_ERR_BUSY (the word was not -1; nothing done).
 */
int32_t fq_read_keep(fq_queue *q, uint64_t token, uint64_t len, void *buf, uint64_t cap,
                     int64_t *held);

/** fq_get_many_exact with a held word (as fq_take_many): returns the number of records. */
int64_t fq_take_many_exact(fq_queue *q, void *buf, uint64_t itemsize, uint64_t max_items,
                           int64_t *held, int64_t timeout_ns);

/**
 * Zero-copy write, step 1: claims a free slot and lends its memory. On FQ_OK, *data points to
 * fq_max_msg(q) writable bytes inside the segment and *token names the claim. The claim must be
 * finished with fq_write_commit() or fq_write_abort() on the same handle; until then consumers
 * wait for this slot (messages behind it are not overtaken). Returns FQ_OK, FQ_FULL,
 * FQ_SHUTDOWN, FQ_ERR_NULL, FQ_ERR_INVALID (an observer handle). If the process dies before
 * finishing, the claim is recovered by the others and the slot skipped.
 */
int32_t fq_write_begin(fq_queue *q, void **data, uint64_t *token, int64_t timeout_ns);

/** Zero-copy write, step 2: publishes the claimed slot as a message of `len` bytes. FQ_ERR_TOO_BIG
 *  if len > max_msg (the claim stays open); FQ_ERR_INVALID for a token this handle does not hold. */
int32_t fq_write_commit(fq_queue *q, uint64_t token, uint64_t len);

/** Zero-copy write, alternative step 2: gives the claimed slot up; consumers skip it. Returns
 *  FQ_OK, FQ_ERR_NULL, or FQ_ERR_INVALID (changing nothing) for a token this handle does not
 *  hold: one already committed or aborted (a token works once), or another handle's. */
int32_t fq_write_abort(fq_queue *q, uint64_t token);

/**
 * Zero-copy read, step 1: claims the oldest message and lends it: *data points to its *len bytes
 * inside the segment, valid until fq_read_end(). The message has left the queue; the memory is
 * read-only to the caller. Returns FQ_OK, FQ_EMPTY, FQ_SHUTDOWN, FQ_ERR_NULL, FQ_ERR_INVALID (an
 * observer handle). If the process dies before fq_read_end(), the message is lost and the slot
 * recovered by the others.
 */
int32_t fq_read_begin(fq_queue *q, const void **data, uint64_t *len, uint64_t *token,
                      int64_t timeout_ns);

/** Zero-copy read, step 2: returns the slot to producers. The lent memory must not be used after.
 *  Returns FQ_OK, FQ_ERR_NULL, or FQ_ERR_INVALID (changing nothing) for a token this handle does
 *  not hold: one already ended (a token works once), or another handle's. */
int32_t fq_read_end(fq_queue *q, uint64_t token);

/**
 * Puts `count` messages laid out back to back in `data`, the i-th `lens[i]` bytes long, one
 * after another (messages of other producers may land between them: a batch is not atomic),
 * blocking as `timeout_ns` allows for the whole batch. *done is the number put, also on failure
 * (FQ_FULL, FQ_SHUTDOWN, FQ_ERR_TOO_BIG, ...: on every return but a NULL `done`). Every length
 * is checked first: FQ_ERR_TOO_BIG puts nothing (*done is 0). One call per batch: the cheap
 * way to move many small messages.
 */
int32_t fq_put_many(fq_queue *q, const void *data, const uint64_t *lens, uint64_t count,
                    int64_t timeout_ns, uint64_t *done);

/**
 * Takes up to `max_items` messages into `buf` (capacity `cap`), back to back, the i-th length in
 * lens[i], and their number in *count. Waits (as `timeout_ns` allows) for the first message
 * only, then takes what is there without waiting; stops early at a message that does not fit in
 * what is left of `buf` (it stays queued). FQ_OK with *count >= 1, FQ_EMPTY, FQ_SHUTDOWN, or
 * FQ_ERR_BUFFER when even the first message does not fit (lens[0] is then the size needed).
 */
int32_t fq_get_many(fq_queue *q, void *buf, uint64_t cap, uint64_t *lens, uint64_t max_items,
                    uint64_t *count, int64_t timeout_ns);

/**
 * fq_put_many(q, data, lens, count, 0, &done) for bindings where every argument costs, with the
 * data last. Never waits. Returns the number of messages put, the first ones (fewer than `count`
 * if the queue filled up, or was shut down meanwhile: try the rest again to learn which), or
 * `status - FQ_TRY_BIAS` (see FQ_TRY_STATUS) if it put none for another reason: FQ_SHUTDOWN,
 * FQ_ERR_TOO_BIG, FQ_ERR_NULL, ...
 */
int64_t fq_try_put_many(fq_queue *q, const uint64_t *lens, uint64_t count, const void *data);

/**
 * fq_get_many(q, buf, cap, lens, max_items, &count, 0) returning the number of messages taken
 * (>= 1), or `status - FQ_TRY_BIAS`: FQ_EMPTY, FQ_SHUTDOWN, FQ_ERR_BUFFER (then lens[0] is the
 * size needed and the message stays queued), ... Never waits.
 */
int64_t fq_try_get_many(fq_queue *q, void *buf, uint64_t cap, uint64_t *lens, uint64_t max_items);

/**
 * Takes up to `max_items` messages of exactly `itemsize` bytes each into `buf` (which holds
 * itemsize * max_items bytes), back to back, and stores their number in `*count`: the packed
 * counterpart of fq_put_many with equal lengths (fixed-size records). Waits, as fq_get does, for
 * the first message only; stops early at a message of another length, which stays queued. If
 * the first message has another length: FQ_ERR_BUFFER, `*count` is that length and the message
 * stays queued (take it with fq_get).
 */
int32_t fq_get_many_exact(fq_queue *q, void *buf, uint64_t itemsize, uint64_t max_items,
                          uint64_t *count, int64_t timeout_ns);

/**
 * fq_get_many_exact(q, buf, itemsize, max_items, &count, 0) returning the number of messages
 * taken (>= 1), or `status - FQ_TRY_BIAS`: FQ_EMPTY, FQ_SHUTDOWN, FQ_ERR_BUFFER (the first message
 * has another length: fq_get_many_exact with timeout 0 tells it), ... Never waits.
 */
int64_t fq_try_get_many_exact(fq_queue *q, void *buf, uint64_t itemsize, uint64_t max_items);

/**
 * Shuts the queue down for every process attached to it (the state lives in the segment):
 * later puts return FQ_SHUTDOWN; gets return what is left, then FQ_SHUTDOWN. With `immediate`
 * non-zero, what is left is discarded now (and counted as done for fq_join) and gets return
 * FQ_SHUTDOWN at once. Every blocked put and get (and fq_wait) wakes and returns FQ_SHUTDOWN,
 * except gets that find messages left. Blocked joins are woken to look again, and return only
 * once every task is done, as in Python 3.13's Queue.shutdown(): after an immediate shutdown
 * that is at once unless messages taken before are still being processed (fq_task_done); after
 * a non-immediate one, fq_join keeps waiting until the messages left are taken and marked done
 * (or its timeout: FQ_TIMEOUT). Cannot be undone. Returns FQ_OK, FQ_ERR_NULL, or FQ_ERR_INVALID
 * (an observer handle).
 */
int32_t fq_shutdown(fq_queue *q, int32_t immediate);

/**
 * Marks `n` fetched messages as processed (JoinableQueue.task_done). FQ_ERR_INVALID if that would
 * mark more tasks done than messages were ever put. On a FQ_CREATE_REDELIVER queue it acknowledges this
 * handle's `n` oldest leases (FQ_ERR_INVALID, acknowledging nothing, if it holds fewer): one
 * atomic step each, so a process killed at any instant either acknowledged a message or did not.
 * Without FQ_CREATE_REDELIVER, the messages a handle took and did not mark done count as done when it
 * closes or its process dies (FQ_STAT_ABANDONED), so fq_join never waits for a dead consumer.
 * That accounting starts, for every process, at the first fq_task_done or fq_join (any timeout)
 * on the queue: call fq_join(q, 0) once when attaching a joinable queue, so that a consumer that
 * dies before its first fq_task_done is counted too.
 */
int32_t fq_task_done(fq_queue *q, uint64_t n);

/**
 * Waits until every message put was marked done with fq_task_done (messages skipped as
 * abandoned, or lost with a dead consumer, count as done; on a FQ_CREATE_REDELIVER queue a dead
 * consumer's leases come back and are waited for). Sleeps in the kernel. A shutdown does not
 * end it by itself (see fq_shutdown). Returns FQ_OK, FQ_TIMEOUT, FQ_INTERRUPTED (a signal ended
 * its sleep on a handle made interruptible with fq_set_interruptible), FQ_ERR_NULL or
 * FQ_ERR_INVALID (an observer handle).
 */
int32_t fq_join(fq_queue *q, int64_t timeout_ns);

/**
 * Attaches to `name` as an observer: sizes, fq_stats() and fq_live_participants() work; puts,
 * gets, waits, zero-copy, fq_clone, fq_shutdown, fq_task_done and fq_join return FQ_ERR_INVALID.
 * Observing does not count as using the queue (for tools). The segment is never mapped: its
 * header and participant table are read with pread() and validated, so no segment, whatever a
 * writer does to it (even shrinking the file), can crash an observer. Sizes and counters are
 * those of the moment of fq_observe() (observe again for fresh ones); fq_live_participants()
 * probes the locks anew each time. Needs only read permission.
 */
int32_t fq_observe(const char *name, fq_queue **out);

/** Number of processes attached to the queue whose liveness lock is held (0 for NULL). */
uint64_t fq_live_participants(const fq_queue *q);

/** What fq_wait() and fq_wake() wait for or pass on (`what`). */
enum {
    /** fq_wait(): wait until a get could take a message. */
    FQ_WAIT_READABLE = 1,
    /** fq_wait(): wait until a put could claim a slot. */
    FQ_WAIT_WRITABLE = 2
};

/**
 * Waits (as `timeout_ns` allows) until a get could take a message (what = FQ_WAIT_READABLE) or a
 * put could claim a slot (FQ_WAIT_WRITABLE), WITHOUT taking or claiming anything — for callers
 * that must stay cancellable (an event loop's worker thread), which then try a non-blocking
 * fq_get/fq_put (and wait again if another process was faster). Sleeps in the kernel; recovers
 * slots of dead processes met on the way. One direction per call: `what` is exactly one of the
 * two (FQ_WAIT_READABLE | FQ_WAIT_WRITABLE, or any other value, gives FQ_ERR_INVALID); to wait for
 * both, wait in two threads. Returns FQ_OK, FQ_TIMEOUT, FQ_SHUTDOWN (puts: shut down; gets: shut
 * down and drained), FQ_ERR_INVALID (bad `what`, or an observer handle: observers never wait,
 * see fq_observe), FQ_ERR_NULL.
 */
int32_t fq_wait(fq_queue *q, int32_t what, int64_t timeout_ns);

/**
 * Passes a wake-up on. Each message a put makes available wakes at most one sleeping getter (and
 * each slot a get frees, at most one putter): a caller whose fq_wait returned FQ_OK may have
 * been that one. If it then will not take (what = FQ_WAIT_READABLE) or put (FQ_WAIT_WRITABLE)
 * after all -- its coroutine was cancelled, say -- it calls fq_wake so that another waiter of
 * that side wakes instead (at most one, and only if one sleeps; harmless when none was owed).
 * Returns FQ_OK, FQ_ERR_INVALID (bad `what`), FQ_ERR_NULL. Thread-safe; never blocks.
 */
int32_t fq_wake(fq_queue *q, int32_t what);

/** Does nothing and returns FQ_OK (or FQ_ERR_NULL for a NULL q): measures the cost of a call. */
int32_t fq_noop(fq_queue *q, const void *data, uint64_t len, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* FASTQUEUE_H */
