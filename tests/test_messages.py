"""The wording of error messages a user meets first: each names what was typed and what to do,
with counts in the right number and byte counts a reader can take in (fastqueue._words)."""

from __future__ import annotations

from typing import Callable

import pytest

import fastqueue
from fastqueue import BridgeReport, _words

NameFactory = Callable[[], str]


def test_a_mode_written_without_0o_is_named_as_typed_with_the_octal_suggested(
    qname: NameFactory,
) -> None:
    with pytest.raises(fastqueue.InvalidArgumentError) as info:
        fastqueue.Queue(qname(), element_size=8, capacity=1, mode=660)
    message = str(info.value)
    assert message.startswith("mode=660 is not allowed"), message
    assert "did you mean mode=0o660?" in message and "octal" in message
    assert "refused too" not in message  # 0o660 is a good mode
    with pytest.raises(fastqueue.InvalidArgumentError) as info:
        fastqueue.Queue(qname(), element_size=8, capacity=1, mode=644)
    message = str(info.value)
    assert message.startswith("mode=644 is not allowed") and "did you mean mode=0o644?" in message
    # ... and 0o644 itself would be refused (others could read without writing): say so.
    assert "That one is refused too" in message and "0o600" in message


def test_put_many_of_one_bytes_object_says_a_list_is_expected(qname: NameFactory) -> None:
    with fastqueue.Queue(qname(), element_size=8, capacity=4) as q:
        for wrong in (b"ab", bytearray(b"ab"), memoryview(b"ab")):
            with pytest.raises(fastqueue.ArgumentTypeError) as info:
                q.put_many(wrong)
            message = str(info.value)
            kind = type(wrong).__name__
            assert f"a {kind} object was passed where a list of messages is expected" in message
            assert "itemsize=" in message and "items[0]" not in message
        with pytest.raises(fastqueue.ArgumentTypeError, match=r"\[b'ab'\] for one message"):
            q.put_many(b"ab")
        with pytest.raises(fastqueue.ArgumentTypeError, match=r"\['ab'.encode\(\)\]"):
            q.put_many("ab")  # type: ignore[arg-type]
        assert q.qsize() == 0
        q.put_many(b"ab", itemsize=1)  # the packed form still works
        assert q.get_many(4) == [b"a", b"b"]


def test_a_message_too_big_reads_well_and_says_what_to_do(qname: NameFactory) -> None:
    name = qname()
    with fastqueue.Queue(name, element_size=1, capacity=2) as q:
        for put in (lambda: q.put(b"ab"), lambda: q.put_many([b"a", b"ab"])):
            with pytest.raises(fastqueue.MessageTooBigError) as info:
                put()
            message = str(info.value)
            assert "''s" not in message and f"Queue({name!r})" in message
            assert "element_size of 1 byte;" in message  # not "1 bytes"
            assert "element_size=2 or more" in message
    with fastqueue.ObjectQueue(qname(), element_size=8, capacity=1) as oq:
        with pytest.raises(fastqueue.MessageTooBigError) as info:
            oq.put("x" * 100)
        message = str(info.value)
        assert "''s" not in message and "element_size=" in message and "or more" in message


def test_a_queue_without_a_name_is_not_quoted_as_a_question_mark() -> None:
    with pytest.raises(fastqueue.NoSpaceError) as info:
        fastqueue.Queue(element_size=2**41, capacity=2**20)
    message = str(info.value)
    assert "'?'" not in message and "'...'" not in message, message
    assert "Queue(element_size=2199023255552, capacity=1048576, create=True)" in message
    assert "not enough shared memory for the queue:" in message


def test_huge_byte_counts_are_also_given_in_binary_units(qname: NameFactory) -> None:
    with pytest.raises(fastqueue.NoSpaceError) as info:
        fastqueue.Queue(qname(), element_size=2**40, capacity=2**20)
    message = str(info.value)
    needed = next(w for w in message.split() if w.isdigit() and len(w) >= 19)
    assert f"{needed} bytes (1 EiB)" in message, message
    assert "GiB" in message or "TiB" in message or "MiB" in message  # /dev/shm's free space
    assert _words.nbytes(1) == "1 byte" and _words.nbytes(1023) == "1023 bytes"
    assert _words.nbytes(3 << 40) == "3298534883328 bytes (3 TiB)"
    assert _words.nbytes(5 << 30, " free") == "5368709120 bytes free (5 GiB)"
    assert _words.nbytes(1536 << 20) == "1610612736 bytes (1.5 GiB)"


def test_counts_take_the_right_number(qname: NameFactory) -> None:
    with pytest.raises(fastqueue.InvalidArgumentError, match="element_size and capacity were not"):
        fastqueue.Queue(qname())
    with pytest.raises(fastqueue.InvalidArgumentError, match="and element_size was not given"):
        fastqueue.Queue(qname(), capacity=1)
    with fastqueue.Queue(qname(), element_size=8, capacity=1) as q:
        q.put(b"a")
        with pytest.raises(fastqueue.Full, match=r"put 0 of 1 item; "):
            q.put_many([b"b"], timeout=0)
        with pytest.raises(fastqueue.InvalidArgumentError) as info:
            q.get_into(bytearray(0))
        assert "is 1 byte long, the buffer only 0 bytes" in str(info.value)
        assert "at least 1 byte " in str(info.value)
        with pytest.raises(fastqueue.InvalidArgumentError, match="is 1 byte long, not itemsize"):
            q.get_many(4, itemsize=2)
    one = BridgeReport("jobs", "redis://h/0/jobs", moved=1, batches=1, seconds=1.0).line()
    assert "moved 1 message in 1 batch in" in one, one
    many = BridgeReport("jobs", "redis://h/0/jobs", moved=5, batches=2, seconds=1.0).line()
    assert "moved 5 messages in 2 batches in" in many, many
    assert _words.count(1, "batch", "batches") == "1 batch"
    assert _words.count(0, "message") == "0 messages"
