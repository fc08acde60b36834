"""What PyPy does differently, checked on every interpreter (``just test-pypy`` runs this file on
PyPy too): strided buffers exported by C extensions (numpy views) must arrive in C order, although
PyPy's ``memoryview.tobytes()`` of such a buffer returns its raw memory."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from fastqueue import ObjectQueue, Queue

NameFactory = Callable[[], str]
np: Any = pytest.importorskip("numpy", reason="numpy is not installed for this interpreter")


def _strided() -> list[Any]:
    m = np.arange(24, dtype=np.float64).reshape(4, 6)
    return [
        m[:, 1],
        m.T,
        m[::2, ::3],
        np.arange(10, dtype=np.int16)[::3],
        (m > 5)[:, ::2],  # bool
        np.arange(12, dtype=np.complex64).reshape(3, 4)[:, 1:3],
    ]


@pytest.mark.parametrize("wrap", [lambda a: a, memoryview], ids=["array", "memoryview"])
def test_strided_buffers_are_sent_in_c_order(
    qname: NameFactory, wrap: Callable[[Any], Any]
) -> None:
    items = _strided()
    with Queue(qname(), element_size=256, capacity=len(items) * 2) as q:
        for a in items:
            q.put(wrap(a))
        q.put_many([wrap(a) for a in items])
        for _ in range(2):
            for a in items:
                assert q.get() == np.ascontiguousarray(a).tobytes(), a


def test_strided_arrays_through_an_object_queue(qname: NameFactory) -> None:
    with ObjectQueue(qname(), element_size=1024, capacity=4) as q:
        for a in _strided():
            q.put(a)
            np.testing.assert_array_equal(q.get(), a)
