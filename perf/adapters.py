"""One small adapter per queue implementation, so every benchmark drives every queue the same way.

An adapter's ``make(size, capacity, name)`` returns an :class:`Endpoint` in the creating process;
``Endpoint.spec()`` is a picklable description that :func:`attach` turns into an Endpoint in a
``spawn``-ed child. ``Endpoint.put(bytes)`` and ``Endpoint.get() -> bytes`` are the queue's own
*blocking* put/get (bound methods where the library offers them, so the timed loops measure the
library and nothing of ours). ``close()`` releases everything the endpoint created (segments,
names, threads); it is idempotent.

Every queue is used as a queue of raw ``bytes`` (no pickling where the library lets us avoid it):
- fastqueue: ``fastqueue.Queue(name, element_size=size, capacity=capacity)``.
- zeroq: ``zeroq.Queue(name, element_size=size, capacity=capacity)``; zeroq only takes messages of
  exactly ``element_size`` bytes and a power-of-two capacity, so every payload is exactly ``size``.
- faster-fifo: ``faster_fifo.Queue(max_size_bytes, maxsize=capacity,
  dumps=<identity>, loads=bytes)``
  -- its custom-serialiser hook, so bytes travel without pickle (its fastest mode for bytes).
- mp.Queue: ``multiprocessing.get_context("spawn").Queue(maxsize=capacity)`` (pickles; that is it).
- iceoryx2: publish/subscribe of ``Slice[c_uint8]``: put = loan + memmove + send, get = receive +
  ``ctypes.string_at`` (one copy out, like every other queue's get). Same-process only: its
  pub/sub has no blocking receive, so the cross-process scenarios skip it.

Beyond put/get, an Endpoint may carry the queue's batch API (``put_many`` / ``get_many``:
fastqueue's, and faster-fifo's ``put_many(list)`` / ``get_many(max_messages_to_get=n)``), a
packed batch put (``put_packed``: fastqueue's ``put_many(buffer, itemsize=k)``, one bytes-like
object holding messages of k bytes back to back), its
zero-copy API (``zc_put`` / ``zc_get``: fastqueue's ``put_slot`` / ``get_slot``; iceoryx2's
loan + memmove + send and a receive read in place) and ``get_into`` (fastqueue) -- see
:class:`Endpoint` and :data:`SCENARIO_QUEUES`.
"""

from __future__ import annotations

import ctypes
import itertools
import os
from typing import Any, Callable

#: Display order of the queues in tables and charts; fastqueue first.
QUEUES = ["fastqueue", "zeroq", "faster-fifo", "mp.Queue", "iceoryx2"]

#: Queues whose API has a blocking get usable across processes (see module docstring).
CROSS_PROCESS_QUEUES = ["fastqueue", "zeroq", "faster-fifo", "mp.Queue"]

#: Which queues take part in the scenarios beyond plain put/get (those with the API for it).
#: "memcpy" and "memcpy-1" are not queues: one copy of the payload per put+get, into 8 buffers
#: in turn (the memory pattern of a ring of 8 slots) or into one (cache-warm), the yardsticks
#: of the zero-copy scenario (see bench_same.py).
SCENARIO_QUEUES = {
    "batch": ["fastqueue", "faster-fifo"],
    "batch_packed": ["fastqueue"],
    "batch_records": ["fastqueue"],
    "zerocopy": ["fastqueue", "iceoryx2", "memcpy", "memcpy-1"],
    "get_into": ["fastqueue"],
}
#: Queues with a batch API usable across processes.
BATCH_QUEUES = ["fastqueue", "faster-fifo"]
#: Queues with a packed batch put (``Endpoint.put_packed``) usable across processes.
PACKED_QUEUES = ["fastqueue"]

#: Prefix of every shared-memory name this harness creates (run.py sweeps leftovers by it).
NAME_PREFIX = "fqbench-"

_counter = itertools.count()


def unique_name(tag: str) -> str:
    """A fresh segment name owned by this process: fqbench-<tag>-<pid>-<n>."""
    return f"{NAME_PREFIX}{tag}-{os.getpid()}-{next(_counter)}"


def _identity(x: Any) -> Any:
    """faster-fifo ``dumps`` hook: bytes in, bytes out (module level so spawn can pickle it)."""
    return x


class Endpoint:
    """put/get/close of one attached queue plus a picklable spec for a child process."""

    def __init__(
        self,
        put: Callable[[bytes], Any],
        get: Callable[[], bytes],
        close: Callable[[], None],
        spec: Any = None,
        keep: Any = None,
        flush: Callable[[], None] = lambda: None,
    ) -> None:
        self.put = put
        #: Make every message this endpoint put so far visible to consumers, then stop putting.
        #: A no-op except for mp.Queue, whose put() returns before a feeder thread writes the pipe.
        self.flush = flush
        self.get = get
        self._close = close
        self._spec = spec
        self.keep = keep  # the library object, kept alive as long as the endpoint
        self._closed = False
        #: Optional operations, set by the makers of queues that have them (None otherwise):
        #: put_many(list of bytes) and get_many(n) -> list of bytes (a batch API);
        #: put_packed(buffer, itemsize=k): put the messages of k bytes that fill `buffer` back
        #: to back, in one call (fastqueue's put_many(buffer, itemsize=k), bound as is);
        #: zc_put(bytes): write the payload into the queue's own memory (the one copy) and
        #: publish it; zc_get() -> (first byte, last byte, length) of the next message, read in
        #: place (no copy); zc_check(expected bytes) -> bool: take the next message in place
        #: and compare all of it (outside timed loops);
        #: get_into(buffer) -> length: receive into a caller's buffer.
        self.put_many: Callable[[list[bytes]], Any] | None = None
        self.get_many: Callable[[int], list[bytes]] | None = None
        self.put_packed: Callable[..., Any] | None = None
        #: get_packed(n, itemsize=k) -> bytes: up to n messages of exactly k bytes, back to
        #: back (fastqueue's get_many(n, itemsize=k), bound as is).
        self.get_packed: Callable[..., bytes] | None = None
        self.zc_put: Callable[[bytes], Any] | None = None
        self.zc_get: Callable[[], tuple[int, int, int]] | None = None
        self.zc_check: Callable[[bytes], bool] | None = None
        self.get_into: Callable[[Any], int] | None = None

    def spec(self) -> Any:
        if self._spec is None:
            raise RuntimeError("this queue cannot be attached from another process")
        return self._spec

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()


def available(kind: str) -> tuple[bool, str]:
    """(True, version) if the queue library imports, else (False, why)."""
    try:
        if kind == "fastqueue":
            import fastqueue

            return True, getattr(fastqueue, "__version__", "checkout")
        if kind == "zeroq":
            import zeroq  # noqa: F401
        elif kind == "faster-fifo":
            import faster_fifo  # noqa: F401
        elif kind == "iceoryx2":
            import iceoryx2  # noqa: F401
        elif kind == "mp.Queue":
            import multiprocessing  # noqa: F401

            return True, "stdlib"
        else:
            return False, f"unknown queue {kind!r}"
    except Exception as exc:  # ImportError, OSError from a missing .so, ...
        return False, f"{type(exc).__name__}: {exc}"
    from importlib.metadata import version

    dist = {"faster-fifo": "faster-fifo"}.get(kind, kind)
    try:
        return True, version(dist)
    except Exception:
        return True, "?"


# --------------------------------------------------------------------------------------- makers


def _make_fastqueue(size: int, capacity: int) -> Endpoint:
    import fastqueue

    name = unique_name("fq")
    q = fastqueue.Queue(name, element_size=size, capacity=capacity, create=True)

    def close() -> None:
        try:
            q.unlink()
        finally:
            q.close()

    ep = Endpoint(q.put, q.get, close, spec=("fastqueue", q), keep=q)
    _fastqueue_extras(ep, q)
    return ep


def _fastqueue_extras(ep: Endpoint, q: Any) -> None:
    """fastqueue's batch, zero-copy and get_into operations on an endpoint."""
    put_slot, get_slot = q.put_slot, q.get_slot

    def zc_put(data: bytes) -> None:
        with put_slot(len(data)) as slot:
            slot.buffer[:] = data

    def zc_get() -> tuple[int, int, int]:
        with get_slot() as view:
            n = len(view)
            return (view[0], view[-1], n) if n else (-1, -1, 0)

    def zc_check(expected: bytes) -> bool:
        with get_slot() as view:
            return view == expected

    ep.put_many, ep.get_many = q.put_many, q.get_many
    ep.put_packed = q.put_many  # called as put_packed(buffer, itemsize=k)
    ep.get_packed = q.get_many  # called as get_packed(n, itemsize=k)
    ep.zc_put, ep.zc_get, ep.zc_check = zc_put, zc_get, zc_check
    ep.get_into = q.get_into


def _make_zeroq(size: int, capacity: int) -> Endpoint:
    import zeroq

    name = unique_name("zq")
    q = zeroq.Queue(name, element_size=size, capacity=capacity, create=True)
    # zeroq's creator removes the segment when it closes.
    return Endpoint(q.put, q.get, q.close, spec=("zeroq", name), keep=q)


def _make_faster_fifo(size: int, capacity: int) -> Endpoint:
    import faster_fifo

    # Room for `capacity` messages of `size` bytes plus faster-fifo's per-message length header.
    q = faster_fifo.Queue(
        max_size_bytes=capacity * (size + 64) + 4096,
        maxsize=capacity,
        dumps=_identity,
        loads=bytes,
    )
    ep = Endpoint(q.put, q.get, q.close, spec=("faster-fifo", q), keep=q)
    _faster_fifo_extras(ep, q)
    return ep


def _faster_fifo_extras(ep: Endpoint, q: Any) -> None:
    """faster-fifo's batch API: put_many(list), get_many(max_messages_to_get=n)."""
    get_many = q.get_many

    def many(n: int) -> list[bytes]:
        return get_many(block=True, timeout=60.0, max_messages_to_get=n)

    ep.put_many, ep.get_many = q.put_many, many


def _make_mp_queue(size: int, capacity: int) -> Endpoint:
    import multiprocessing

    q = multiprocessing.get_context("spawn").Queue(maxsize=capacity)

    def close() -> None:
        q.close()
        q.join_thread()

    return Endpoint(q.put, q.get, close, spec=("mp.Queue", q), keep=q)


_iox_node = None


def _make_iceoryx2(size: int, capacity: int) -> Endpoint:
    global _iox_node
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    if _iox_node is None:
        _iox_node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    service = (
        _iox_node.service_builder(iox2.ServiceName.new(unique_name("iox")))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .subscriber_max_buffer_size(capacity)
        .history_size(0)
        .open_or_create()
    )
    publisher = service.publisher_builder().initial_max_slice_len(max(size, 1)).create()
    subscriber = service.subscriber_builder().buffer_size(capacity).create()
    memmove, string_at = ctypes.memmove, ctypes.string_at
    loan, receive = publisher.loan_slice_uninit, subscriber.receive

    def put(data: bytes) -> None:
        n = len(data)
        sample = loan(n)
        memmove(sample.payload_ptr, data, n)
        sample.assume_init().send()

    def get() -> bytes:
        sample = receive()
        if sample is None:
            raise RuntimeError("iceoryx2: no sample (same-process use only)")
        out = string_at(sample.payload_ptr, sample.payload().len())
        sample.delete()
        return out

    def zc_get() -> tuple[int, int, int]:
        # Read in place: the first and last byte of the payload, no copy out.
        sample = receive()
        if sample is None:
            raise RuntimeError("iceoryx2: no sample (same-process use only)")
        n = sample.payload().len()
        ptr = sample.payload_ptr
        first, last = (string_at(ptr, 1)[0], string_at(ptr + n - 1, 1)[0]) if n else (-1, -1)
        sample.delete()
        return first, last, n

    def zc_check(expected: bytes) -> bool:
        sample = receive()
        if sample is None:
            raise RuntimeError("iceoryx2: no sample (same-process use only)")
        ok = string_at(sample.payload_ptr, sample.payload().len()) == expected
        sample.delete()
        return ok

    def close() -> None:
        subscriber.delete()
        publisher.delete()

    ep = Endpoint(put, get, close, keep=(service, publisher, subscriber))
    # Its put already writes straight into the loaned sample: the one copy.
    ep.zc_put, ep.zc_get, ep.zc_check = put, zc_get, zc_check
    return ep


_MAKERS = {
    "fastqueue": _make_fastqueue,
    "zeroq": _make_zeroq,
    "faster-fifo": _make_faster_fifo,
    "mp.Queue": _make_mp_queue,
    "iceoryx2": _make_iceoryx2,
}


def make(kind: str, size: int, capacity: int) -> Endpoint:
    """Create a queue for messages of up to `size` bytes and `capacity` slots (owned here)."""
    return _MAKERS[kind](size, capacity)


def attach(spec: Any) -> Endpoint:
    """In a child process: an Endpoint on the queue described by ``Endpoint.spec()``."""
    kind, obj = spec
    if kind == "zeroq":
        import zeroq

        q = zeroq.Queue(obj, create=False)
        return Endpoint(q.put, q.get, lambda: None, keep=q)
    if kind == "fastqueue":
        # The Queue object was pickled by name and reattached when unpickled.
        ep = Endpoint(obj.put, obj.get, obj.close, keep=obj)
        _fastqueue_extras(ep, obj)
        return ep
    if kind == "mp.Queue":

        def flush() -> None:
            obj.close()
            obj.join_thread()

        return Endpoint(obj.put, obj.get, obj.close, keep=obj, flush=flush)
    if kind == "faster-fifo":
        ep = Endpoint(obj.put, obj.get, lambda: None, keep=obj)
        _faster_fifo_extras(ep, obj)
        return ep
    raise ValueError(f"cannot attach {kind!r}")


def put_end_markers(q: Endpoint, pid: int, n_consumers: int, stop: bytes, barrier: Any) -> None:
    """In producer ``pid`` of a cross-process run: the end markers, one per consumer, go in after
    every producer's last message. Producer 0 puts them after ``barrier``; the others first make
    sure their messages are in the queue (only mp.Queue needs that: its put() returns before its
    feeder thread has written the message), and so does producer 0 with the markers."""
    if pid != 0:
        q.flush()
    barrier.wait()
    if pid == 0:
        for _ in range(n_consumers):
            q.put(stop)
        q.flush()


def payloads(size: int) -> tuple[bytes, bytes]:
    """Two distinct payloads of exactly `size` bytes whose first and last bytes differ.

    Alternating them in a timed loop and comparing the last two results afterwards means a queue
    that hands back a stale or cached buffer cannot pass.
    """
    pattern = bytes(range(7, 256)) + bytes(range(7))
    body = (pattern * (size // len(pattern) + 1))[:size]
    if size == 0:
        return b"", b""
    if size == 1:
        return b"\x01", b"\x02"
    a = b"\x01" + body[1:-1] + b"\x02"
    b = b"\x03" + body[1:-1] + b"\x04"
    return a, b
