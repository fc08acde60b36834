"""Many short SIGINT storms against a consumer (test_signals.py's, a Queue of capacity 4), each
in a new process, tallying where the exceptions it caught landed when a message went missing:

    python tests/storm_landings.py [RUNS=200] [MESSAGES=40] [TAKE=get_many]

A process's first calls run cold code, where even ``type(x)`` is a signal check point (see
tests/_checkpoints.py): short storms in new processes hit that window far more often per second
than test_signals.py's long ones. Found with it: get_many's loss at _batches.py's
``type(result)`` (2 runs of 300 before the fix, each landing there; 0 of 300 after).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastqueue
from _procs import checkout_env
from test_signals import CONSUMER, TAKES


def storm(messages: int, take: str) -> tuple[list[int], list[str], int] | None:
    """One storm: (received, the consumer's landing lines, signals sent), or None if the run
    itself failed (the child died or hung: reported, not counted)."""
    name = f"fq-storm-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with fastqueue.Queue(name, element_size=16, capacity=4, create=True) as q:
        code = CONSUMER.format(
            setup="",
            cls="fastqueue.Queue",
            end=b"end",
            exc="KeyboardInterrupt",
            sig="SIGINT",
            take=TAKES[take],
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=checkout_env(),
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            proc.communicate()
            return None
        stop = threading.Event()
        sent = [0]

        def send() -> None:
            while not stop.is_set():
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    return
                sent[0] += 1
                time.sleep(0.0003)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        try:
            for i in range(messages):
                q.put(str(i).encode(), timeout=5)
                if i % 8 == 0:
                    time.sleep(0.0005)
            q.put(b"end", timeout=5)
            out, _ = proc.communicate(timeout=60)
        except Exception as e:  # (fastqueue.Full, a timeout: the run failed, not a loss)
            proc.kill()
            proc.communicate()
            print(f"run failed: {e!r}", flush=True)
            return None
        finally:
            stop.set()
            t.join()
    lines = out.splitlines()
    return [int(x) for x in lines[0].split()], lines[1:], sent[0]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    take = sys.argv[3] if len(sys.argv) > 3 else "get_many"
    bad = lost = 0
    at_loss: collections.Counter[str] = collections.Counter()
    everywhere: collections.Counter[str] = collections.Counter()
    for r in range(runs):
        result = storm(messages, take)
        if result is None:
            continue
        got, landed, sent = result
        everywhere.update(w.split()[1] for w in landed)
        if got != list(range(messages)):
            bad += 1
            lost += messages - len(set(got))
            first = next((i for i, m in enumerate(got) if m != i), len(got))
            here = [w.split()[1] for w in landed if int(w.split()[0]) == first]
            at_loss.update(here)
            print(f"run {r}: {len(got)} of {messages} after {sent} signals; at the loss: {here}")
    print(f"{bad} runs of {runs} lost or duplicated ({lost} messages lost), {take}")
    print("landings at the losses:", dict(at_loss))
    print("landings in all runs:", everywhere.most_common(12))


if __name__ == "__main__":
    main()
