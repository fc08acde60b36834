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

    return Endpoint(q.put, q.get, close, spec=("fastqueue", q), keep=q)


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
    return Endpoint(q.put, q.get, q.close, spec=("faster-fifo", q), keep=q)


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

    def close() -> None:
        subscriber.delete()
        publisher.delete()

    return Endpoint(put, get, close, keep=(service, publisher, subscriber))


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
        return Endpoint(obj.put, obj.get, obj.close, keep=obj)
    if kind == "mp.Queue":

        def flush() -> None:
            obj.close()
            obj.join_thread()

        return Endpoint(obj.put, obj.get, obj.close, keep=obj, flush=flush)
    if kind == "faster-fifo":
        return Endpoint(obj.put, obj.get, lambda: None, keep=obj)
    raise ValueError(f"cannot attach {kind!r}")


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
