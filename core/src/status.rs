//! Status codes shared by the Rust API and the C ABI (values are part of the ABI).

/// Every outcome other than success, as the C ABI numbers it (`FQ_*` in `fastqueue.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// No message within the timeout (`FQ_EMPTY`).
    Empty = 1,
    /// No free slot within the timeout (`FQ_FULL`).
    Full = 2,
    /// The queue was shut down (`FQ_SHUTDOWN`).
    ShutDown = 3,
    /// A `join` did not see every task done within its timeout (`FQ_TIMEOUT`).
    Timeout = 4,
    /// A signal interrupted the call's sleep before it took or put anything; only on a handle
    /// made interruptible with `fq_set_interruptible` (`FQ_INTERRUPTED`).
    Interrupted = 5,
    /// A required pointer was NULL (`FQ_ERR_NULL`).
    Null = -1,
    /// An argument is out of range (`FQ_ERR_INVALID`).
    Invalid = -2,
    /// The message is longer than the queue's max message size (`FQ_ERR_TOO_BIG`).
    TooBig = -3,
    /// The caller's buffer is too small for the next message (`FQ_ERR_BUFFER`).
    Buffer = -4,
    /// The name is taken (`FQ_ERR_EXISTS`).
    Exists = -5,
    /// No such segment (`FQ_ERR_NOT_FOUND`).
    NotFound = -6,
    /// The OS refused access (`FQ_ERR_PERMISSION`).
    Permission = -7,
    /// Not enough shared memory (`FQ_ERR_NO_SPACE`).
    NoSpace = -8,
    /// Not a valid fastqueue segment (`FQ_ERR_BAD_SEGMENT`).
    BadSegment = -9,
    /// A fastqueue segment of another layout version (`FQ_ERR_VERSION`).
    Version = -10,
    /// The creator never finished the segment (`FQ_ERR_NOT_READY`).
    NotReady = -11,
    /// The participant table is full (`FQ_ERR_TOO_MANY`).
    TooMany = -12,
    /// Another OS error (`FQ_ERR_OS`).
    Os = -13,
    /// A bug in the library (`FQ_ERR_INTERNAL`).
    Internal = -14,
    /// Another thread closed the handle while this call was waiting on it (`FQ_ERR_CLOSED`).
    Closed = -15,
    /// `fq_take`'s receive buffer still holds a message its caller has not consumed
    /// (`FQ_ERR_BUSY`).
    Busy = -16,
}

impl Status {
    /// The NUL-terminated description `fq_status_str` returns for this code.
    pub fn describe(code: i32) -> &'static [u8] {
        match code {
            0 => b"ok\0",
            1 => b"the queue is empty (no message arrived within the timeout)\0",
            2 => b"the queue is full (no slot became free within the timeout)\0",
            3 => b"the queue was shut down\0",
            4 => b"not every task was done within the timeout\0",
            5 => b"a signal interrupted the wait; nothing was taken or put\0",
            -1 => b"a required pointer argument was NULL\0",
            -2 => b"an argument is out of range (sizes must be >= 1 and fit in memory; names are 1..250 bytes with no '/' after the first; a mode must not let anyone read the segment who cannot write it)\0",
            -3 => b"the message is longer than the queue's maximum message size\0",
            -4 => b"the buffer is smaller than the next message; the message stays queued\0",
            -5 => b"a shared-memory segment with this name already exists\0",
            -6 => b"no shared-memory segment with this name exists\0",
            -7 => b"permission denied by the operating system for this shared-memory segment\0",
            -8 => b"not enough shared memory for a queue of this size (is /dev/shm full?)\0",
            -9 => b"the segment is not a valid fastqueue queue (foreign, truncated or corrupted)\0",
            -10 => b"the segment was made by a fastqueue with another layout version\0",
            -11 => b"the segment was never finished by its creator (it died or is still creating it)\0",
            -12 => b"too many processes have this queue open (participant table full)\0",
            -13 => b"the operating system reported an error (see errno)\0",
            -14 => b"internal error in fastqueue (a bug; please report it)\0",
            -15 => b"the handle was closed by another thread while this call was waiting on it\0",
            -16 => b"the receive buffer still holds a message its caller has not consumed\0",
            _ => b"unknown fastqueue status code\0",
        }
    }
}
