"""The operator's command line: ``fastqueue ls | stat | rm | gc | bench`` (also ``python -m
fastqueue ...``; ``__main__`` dispatches here).

* ``ls`` lists every fastqueue segment in ``/dev/shm`` (recognised by its first 8 bytes,
  ``FASTQUE1``) with capacity, element size, depth, size on disk, creator pid and how many live
  processes use it. Segments that start like a queue but cannot be attached (corrupt, another
  layout version, unfinished, unreadable) are listed as such; other files are counted as ignored.
* ``stat NAME`` prints one queue's header fields and counters (``--json`` for a machine).
* ``rm NAME...`` removes queue names (processes attached keep working until they detach).
* ``gc`` removes every queue no live process is attached to (``--dry-run`` only lists them).
* ``bench`` is the quick race of the README (``python -m fastqueue demo``).

Reading a queue never counts as using it: the tools attach as *observers* (``fq_observe``).
Exit status: 0 success, 1 an error (unknown name, not a queue, permission denied...), 2 a usage
error.
"""

from __future__ import annotations

import argparse
import json
import os
import stat as stat_mod
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, TextIO

from . import _ffi
from ._errors import _segment_layout

__all__ = ["COMMANDS", "Segment", "main", "probe", "scan"]

#: Where POSIX shared-memory names live on Linux.
SHM_DIR: Final = Path("/dev/shm")
#: The subcommands (``__main__`` routes these here).
COMMANDS: Final = ("ls", "stat", "rm", "gc", "bench", "bridge")

_PROG: Final = "fastqueue"

#: Why a file that starts like a queue cannot be attached, by library status.
_UNUSABLE: Final = {
    _ffi.ERR_BAD_SEGMENT: "corrupt or truncated fastqueue segment",
    _ffi.ERR_VERSION: "fastqueue segment of another layout version",
    _ffi.ERR_NOT_READY: "fastqueue segment never finished by its creator (or still being made)",
    _ffi.ERR_PERMISSION: "permission denied",
    _ffi.ERR_NOT_FOUND: "removed while being inspected",
}


@dataclass
class Segment:
    """What a file in /dev/shm is. ``kind`` is ``"queue"`` (attached as an observer: the queue
    fields are set), ``"unusable"`` (starts with the fastqueue magic but cannot be attached, or
    cannot be read: see ``reason``) or ``"foreign"`` (not a fastqueue segment)."""

    name: str
    kind: str
    reason: str = ""
    file_size: int = 0
    disk_size: int = 0
    mode: str = ""
    owner_uid: int = -1
    capacity: int = 0
    element_size: int = 0
    depth: int = 0
    creator_pid: int = 0
    creator_running: bool | None = None
    live_processes: int = 0
    shutdown: str = ""
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def in_use(self) -> bool:
        return self.live_processes > 0


def _pid_running(pid: int) -> bool | None:
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


_SHUTDOWN_STATES: Final = {0: "no", 1: "yes", 2: "yes (immediate)"}


def probe(name: str) -> Segment:
    """Inspects /dev/shm/<name>. Raises FileNotFoundError if it does not exist."""
    path = SHM_DIR / name
    st = os.lstat(path)
    seg = Segment(
        name=name,
        kind="foreign",
        file_size=st.st_size,
        disk_size=st.st_blocks * 512,
        mode=f"{stat_mod.S_IMODE(st.st_mode):04o}",
        owner_uid=st.st_uid,
    )
    if not stat_mod.S_ISREG(st.st_mode):
        seg.reason = "not a regular file"
        return seg
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            magic = os.read(fd, len(_ffi.MAGIC))
        finally:
            os.close(fd)
    except PermissionError:
        seg.kind, seg.reason = "unusable", "permission denied (cannot read it)"
        return seg
    except OSError as exc:
        seg.reason = f"cannot be read: {exc.strerror}"
        return seg
    if magic != _ffi.MAGIC:
        seg.reason = "not a fastqueue segment"
        return seg
    try:
        raw = os.fsencode(name)
    except UnicodeError:  # pragma: no cover - names in /dev/shm come from the filesystem
        raw = name.encode("utf-8", "surrogateescape")
    status, handle = _ffi.observe(raw)
    if handle is None:
        seg.kind = "unusable"
        seg.reason = _UNUSABLE.get(status, _ffi.status_str(status))
        if status == _ffi.ERR_VERSION:
            seg.reason = (
                f"fastqueue segment of {_segment_layout(name)} (this fastqueue reads layout "
                f"{_ffi.layout_version()})"
            )
        return seg
    try:
        counters = dict(zip(_ffi.STAT_NAMES, handle.stats()))
        seg.kind = "queue"
        seg.capacity = handle.capacity
        seg.element_size = handle.max_msg
        seg.depth = min(handle.size(), handle.capacity)
        seg.live_processes = handle.live_participants()
        seg.creator_pid = counters.get("creator_pid", 0)
        seg.creator_running = _pid_running(seg.creator_pid)
        seg.shutdown = _SHUTDOWN_STATES.get(counters.get("shutdown", 0), "?")
        seg.counters = counters
    finally:
        del handle  # fq_close
    return seg


def scan(prefix: str = "") -> list[Segment]:
    """Every entry of /dev/shm (whose name starts with ``prefix``), probed, sorted by name."""
    try:
        names = sorted(os.listdir(SHM_DIR))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not name.startswith(prefix):
            continue
        try:
            out.append(probe(name))
        except FileNotFoundError:  # removed meanwhile
            continue
    return out


# ------------------------------------------------------------------------------ formatting


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _table(rows: list[list[str]], right: set[int], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip(), file=out)


def _state(seg: Segment) -> str:
    state = "in use" if seg.in_use else "unused"
    if seg.shutdown not in ("", "no"):
        state += ", shut down"
    return state


def _print_ls(segments: list[Segment], show_all: bool, out: TextIO) -> None:
    queues = [s for s in segments if s.kind == "queue"]
    unusable = [s for s in segments if s.kind == "unusable"]
    foreign = [s for s in segments if s.kind == "foreign"]
    if queues:
        rows = [["NAME", "CAPACITY", "ELEMENT", "DEPTH", "DISK", "CREATOR", "LIVE", "STATE"]]
        for s in queues:
            creator = str(s.creator_pid) + ("" if s.creator_running else " (gone)")
            rows.append(
                [
                    s.name,
                    str(s.capacity),
                    _human(s.element_size),
                    str(s.depth),
                    _human(s.disk_size),
                    creator,
                    str(s.live_processes),
                    _state(s),
                ]
            )
        _table(rows, {1, 2, 3, 4, 6}, out)
    else:
        print(f"no fastqueue queues in {SHM_DIR}", file=out)
    for s in unusable:
        print(f"{s.name}: cannot be attached: {s.reason}", file=out)
    if foreign:
        if show_all:
            for s in foreign:
                print(f"{s.name}: ignored: {s.reason}", file=out)
        else:
            print(
                f"({len(foreign)} other entr{'y' if len(foreign) == 1 else 'ies'} in {SHM_DIR} "
                f"ignored: not fastqueue segments; --all lists them)",
                file=out,
            )


def _print_stat(seg: Segment, out: TextIO) -> None:
    running = {True: "running", False: "gone", None: "unknown"}[seg.creator_running]
    rows = [
        ["name", seg.name],
        ["path", str(SHM_DIR / seg.name)],
        ["capacity", f"{seg.capacity} messages"],
        ["element_size", f"{seg.element_size} bytes"],
        ["depth", f"{seg.depth} messages"],
        ["segment_size", f"{seg.file_size} bytes ({_human(seg.disk_size)} on disk)"],
        ["mode", f"{seg.mode} (owner uid {seg.owner_uid})"],
        ["creator_pid", f"{seg.creator_pid} ({running})"],
        ["live_processes", f"{seg.live_processes} ({_state(seg)})"],
        ["shutdown", seg.shutdown],
    ]
    rows += [[f"  {k}", str(v)] for k, v in seg.counters.items()]
    rows.insert(len(rows) - len(seg.counters), ["counters", ""])
    _table(rows, set(), out)


# ------------------------------------------------------------------------------ commands


class _Fail(Exception):
    """An error for the user: printed as ``fastqueue <command>: <message>``, exit status 1."""


def _bare(name: str) -> str:
    """Accepts NAME, /NAME and /dev/shm/NAME."""
    prefix = str(SHM_DIR) + "/"
    if name.startswith(prefix):
        name = name[len(prefix) :]
    bare = name[1:] if name.startswith("/") else name
    if not bare or "/" in bare or "\0" in bare:
        raise _Fail(f"{name!r} is not a queue name (NAME, /NAME or {prefix}NAME)")
    return bare


def _probe_queue(name: str) -> Segment:
    bare = _bare(name)
    try:
        seg = probe(bare)
    except FileNotFoundError:
        raise _Fail(f"no queue named {bare!r} in {SHM_DIR}") from None
    except PermissionError:
        raise _Fail(f"{bare!r}: permission denied") from None
    if seg.kind == "foreign":
        raise _Fail(f"{bare!r} is not a fastqueue queue ({seg.reason})")
    if seg.kind == "unusable":
        hint = ""
        if "permission" in seg.reason:
            hint = f" (it belongs to uid {seg.owner_uid}, mode {seg.mode}; run as its owner)"
        raise _Fail(f"{bare!r}: {seg.reason}{hint}")
    return seg


def _cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    segments = scan(args.prefix)
    if args.json:
        shown = segments if args.all else [s for s in segments if s.kind != "foreign"]
        json.dump([asdict(s) for s in shown], out, indent=2)
        print(file=out)
    else:
        _print_ls(segments, args.all, out)
    return 0


def _cmd_stat(args: argparse.Namespace, out: TextIO) -> int:
    seg = _probe_queue(args.name)
    if args.json:
        json.dump(asdict(seg), out, indent=2)
        print(file=out)
    else:
        _print_stat(seg, out)
    return 0


def _unlink(name: str) -> None:
    status = _ffi.unlink(os.fsencode(name))
    if status == _ffi.OK:
        return
    if status == _ffi.ERR_NOT_FOUND:
        raise _Fail(f"no queue named {name!r} in {SHM_DIR}")
    if status == _ffi.ERR_PERMISSION:
        raise _Fail(f"{name!r}: permission denied (run as its owner, or as root)")
    raise _Fail(f"{name!r}: {_ffi.status_str(status)}")


def _cmd_rm(args: argparse.Namespace, out: TextIO) -> int:
    failed = 0
    for name in args.names:
        try:
            bare = _bare(name)
            seg = None if args.force else _probe_queue(bare)
            _unlink(bare)
        except _Fail as exc:
            print(f"{_PROG} rm: {exc}", file=sys.stderr)
            failed += 1
            continue
        still = ""
        if seg is not None and seg.in_use:
            n = seg.live_processes
            still = f" ({n} live process{'es keep' if n > 1 else ' keeps'} using it until detached)"
        print(f"removed {bare}{still}", file=out)
    return 1 if failed else 0


def _cmd_gc(args: argparse.Namespace, out: TextIO) -> int:
    failed = 0
    found = 0
    for seg in scan(args.prefix):
        if seg.kind == "unusable":
            print(f"kept {seg.name}: cannot be attached: {seg.reason}", file=out)
            continue
        if seg.kind != "queue" or seg.in_use:
            continue
        found += 1
        lost = f", {seg.depth} messages in it" if seg.depth else ""
        what = f"{seg.name} (no live process{lost}, {_human(seg.disk_size)})"
        if args.dry_run:
            print(f"would remove {what}", file=out)
            continue
        try:
            _unlink(seg.name)
        except _Fail as exc:
            print(f"{_PROG} gc: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"removed {what}", file=out)
    if not found:
        print("nothing to remove: every queue is in use", file=out)
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Inspect and clean up fastqueue queues in /dev/shm.",
        epilog="Also: `fastqueue demo` (= bench) and `fastqueue --cflags --libs` (C build flags). "
        "Exit status: 0 success, 1 error, 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("ls", help="list every fastqueue segment in /dev/shm")
    p.add_argument("--all", action="store_true", help="also list the files that are ignored")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--prefix", default="", help="only names starting with PREFIX")
    p.set_defaults(run=_cmd_ls)
    p = sub.add_parser("stat", help="header fields and counters of one queue")
    p.add_argument("name", help="queue name (NAME, /NAME or /dev/shm/NAME)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_cmd_stat)
    p = sub.add_parser("rm", help="remove queue names (attached processes keep working)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument(
        "--force", action="store_true", help="remove even what is not a fastqueue segment"
    )
    p.set_defaults(run=_cmd_rm)
    p = sub.add_parser("gc", help="remove every queue that no live process uses")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--prefix", default="", help="only names starting with PREFIX")
    p.set_defaults(run=_cmd_gc)
    p = sub.add_parser(
        "bench",
        help="the quick race against multiprocessing.Queue (same as `demo`)",
        add_help=False,
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=None)
    from ._bridge import add_parser as add_bridge  # (the bridge's options live there)

    add_bridge(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        from ._demo import main as demo_main

        return demo_main(args_list[1:])
    args = _parser().parse_args(args_list)  # exits with 2 on a usage error
    try:
        status: int = args.run(args, sys.stdout)
        sys.stdout.flush()
    except _Fail as exc:
        print(f"{_PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `fastqueue ls | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status
