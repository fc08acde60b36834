"""get_many's receive buffers found busy (FQ_ERR_BUSY: another thread put the buffer back into
the handle's pool a moment before it stored its held word; PyPy, where calls release the GIL):
the get leaves each such buffer to its owner and takes with the next, however many there are
(a loop: a recursion per busy buffer ran out of stack past ~1,000), touching none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import fastqueue
from fastqueue._ffibatch import _Batch, _Exact

NameFactory = Callable[[], str]

#: More busy buffers than Python's recursion limit allows frames.
MANY = 3 * sys.getrecursionlimit()


def test_get_many_passes_over_any_number_of_busy_batches(qname: NameFactory) -> None:
    with fastqueue.Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        h: Any = q._h
        busy = [_Batch(h.max_msg, 4) for _ in range(MANY)]
        for b in busy:
            b.word[0] = 1  # another thread's message, not consumed yet
        h._many[:] = busy
        assert q.get_many(4) == [b"a", b"b"]
        assert all(b.word[0] == 1 for b in busy)  # theirs, untouched
        assert not any(b in busy for b in h._many)  # left to their owners
        q.put(b"c")
        assert q.get_many(4) == [b"c"]  # the buffer it used instead is pooled and free


def test_packed_get_many_passes_over_any_number_of_busy_buffers(qname: NameFactory) -> None:
    with fastqueue.Queue(qname(), element_size=8, capacity=4) as q:
        q.put(b"a")
        q.put(b"b")
        h: Any = q._h
        pool = h.exact_pool(1, 4)
        busy = [_Exact(h, 1, 4) for _ in range(MANY)]
        for e in busy:
            e.word[0] = 1
        pool[:] = busy
        assert q.get_many(4, itemsize=1) == b"ab"
        assert all(e.word[0] == 1 for e in busy)
        assert not any(e in busy for e in pool)
        q.put(b"c")
        assert q.get_many(4, itemsize=1) == b"c"
