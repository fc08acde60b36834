"""The operator's command line: ``fastqueue ls | stat | rm | gc`` (also ``python -m
fastqueue ...``; ``__main__`` dispatches here, and runs ``demo``/``bench`` itself).

* ``ls`` lists every fastqueue segment in ``/dev/shm`` (recognised by its first 8 bytes,
  ``FASTQUE1``) with capacity, element size, depth, size on disk, creator pid and how many live
  processes use it. Segments that start like a queue but cannot be attached (corrupt, another
  layout version, unfinished, unreadable) are listed as such; other files are counted as ignored.
* ``stat NAME`` prints one queue's header fields and counters (``--json`` for a machine).
* ``rm NAME...`` removes queue names (processes attached keep working until they detach);
  ``--force`` also removes what is not a usable fastqueue queue.
* ``gc`` removes every queue no live process is attached to (``--dry-run`` only lists them) and
  says which segments it could not inspect, and why.

Reading a queue never counts as using it: the tools attach as *observers* (``fq_observe``).
Exit status: 0 success, 1 an error (unknown name, not a queue, permission denied...), 2 a usage
error. Messages name the program as it was run (``prog``, from ``__main__.program_name``).

Adding a command: its name in :data:`COMMANDS` (and in ``__main__._CLI_COMMANDS``), a parser in
:func:`_parser` whose ``run`` default is a ``_cmd_<name>(args, out) -> int`` function (raise
:class:`_Fail` for an error the user should read), a line in ``__main__.USAGE`` and in
docs/guide/operations.rst.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat as stat_mod
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, TextIO

from . import _ffi
from ._diagnose import diagnose
from ._words import count

__all__ = ["COMMANDS", "Segment", "main", "probe", "scan"]

#: Where POSIX shared-memory names live on Linux.
SHM_DIR: Final = Path("/dev/shm")
#: The subcommands (``__main__`` routes these here).
COMMANDS: Final = ("ls", "stat", "rm", "gc", "bridge")

#: The program name when none is given (``main(prog=...)`` gets the name it was run as).
_PROG: Final = "fastqueue"


@dataclass
class Segment:
    """What a file in /dev/shm is. ``kind`` is ``"queue"`` (attached as an observer: the queue
    fields are set), ``"unusable"`` (fastqueue's, or may be, but cannot be attached or read) or
    ``"foreign"`` (not a fastqueue segment); ``reason`` says why, as
    :func:`fastqueue._diagnose.diagnose` (and so the library's SegmentError) puts it."""

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


#: The largest process id Linux hands out (PID_MAX_LIMIT on 64-bit; /proc/sys/kernel/pid_max
#: can only be lowered below it). A creator_pid outside 1..this is no pid: the segment is corrupt.
_PID_MAX_LIMIT: Final = 1 << 22
#: Entries of the participant table (core/src/layout.rs, MAX_PARTICIPANTS).
_MAX_PARTICIPANTS: Final = 1024


def _pid_running(pid: int) -> bool | None:
    if not 1 <= pid <= _PID_MAX_LIMIT:  # a hostile value: os.kill would raise OverflowError
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return None
    return True


def _corruption(seg: Segment, counters: dict[str, int]) -> str:
    """Why the figures an observer read from a segment cannot be a queue's, or "" if they can.
    Every field is hostile input (anyone who can write the file wrote it); the library
    validated the geometry, this checks what the command line uses besides."""
    pid = counters.get("creator_pid", 0)
    if not 1 <= pid <= _PID_MAX_LIMIT:
        return f"its creator_pid field holds {pid}, which is no process id"
    if seg.capacity < 1 or seg.element_size < 0:
        return f"its capacity ({seg.capacity}) or element size ({seg.element_size}) is impossible"
    if not 0 <= seg.depth <= seg.capacity:
        return f"its depth ({seg.depth}) does not fit its capacity ({seg.capacity})"
    if not 0 <= seg.live_processes <= _MAX_PARTICIPANTS:
        return f"it counts {seg.live_processes} live processes"
    size = counters.get("segment_size", 0)
    if not 0 < size <= seg.file_size:
        return f"its size field ({size} bytes) does not fit the file ({seg.file_size} bytes)"
    if counters.get("shutdown", 0) not in _SHUTDOWN_STATES:
        return f"its shutdown field holds {counters.get('shutdown')}, which no fastqueue writes"
    return ""


def _shown(name: str) -> str:
    """``name`` as it can be printed safely: bytes that are not UTF-8 and characters that are
    not printable (newlines, terminal escape sequences) escaped, so that a hostile name can
    neither crash the output nor forge lines or drive the terminal."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


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
    # What the file is, and why it is not a queue if it is not: the same diagnosis as the
    # library's exceptions give (fastqueue._diagnose).
    found = diagnose(name)
    if found.kind != "queue":
        if found.kind == "missing":
            raise FileNotFoundError(errno.ENOENT, found.reason, str(path))
        seg.kind, seg.reason = found.kind, found.reason
        return seg
    try:
        raw = os.fsencode(name)
    except UnicodeError:  # pragma: no cover - names in /dev/shm come from the filesystem
        raw = name.encode("utf-8", "surrogateescape")
    status, handle = _ffi.observe(raw)
    if handle is None:  # changed since the diagnosis
        seg.kind, seg.reason = "unusable", diagnose(name, status).reason
        return seg
    try:
        counters = dict(zip(_ffi.STAT_NAMES, handle.stats()))
        found_seg = Segment(
            name=name,
            kind="queue",
            file_size=seg.file_size,
            disk_size=seg.disk_size,
            mode=seg.mode,
            owner_uid=seg.owner_uid,
            capacity=handle.capacity,
            element_size=handle.max_msg,
            depth=min(handle.size(), handle.capacity),
            live_processes=handle.live_participants(),
        )
    finally:
        del handle  # fq_close
    why = _corruption(found_seg, counters)
    if why:  # listed as corrupt; the other segments are inspected as usual
        seg.kind, seg.reason = "unusable", f"a corrupt fastqueue segment ({why})"
        return seg
    seg = found_seg
    seg.creator_pid = counters["creator_pid"]
    seg.creator_running = _pid_running(seg.creator_pid)
    seg.shutdown = _SHUTDOWN_STATES[counters["shutdown"]]
    seg.counters = counters
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
        except Exception as exc:  # one hostile file must not stop the listing
            why = f"impossible to inspect ({type(exc).__name__}: {exc})"
            out.append(Segment(name=name, kind="unusable", reason=why))
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


def _none_found(prefix: str) -> str:
    """What ``ls`` / ``gc`` say when they find no queue: that none matches the prefix (if some
    queue exists), or that there are none at all."""
    if prefix and any(s.kind == "queue" for s in scan()):
        return f"no fastqueue queue in {SHM_DIR} has a name starting with {prefix!r}"
    return f"no fastqueue queues in {SHM_DIR}"


def _as_json(seg: Segment) -> dict[str, object]:
    """``seg`` for ``--json``, each figure once: the counters the header fields already give
    (depth, creator_pid, shutdown, segment_size = file_size) are left out of ``counters``."""
    data = asdict(seg)
    data["counters"] = {k: v for k, v in seg.counters.items() if k not in _STAT_FIELDS}
    return data


def _print_ls(segments: list[Segment], show_all: bool, out: TextIO, prefix: str = "") -> None:
    queues = [s for s in segments if s.kind == "queue"]
    unusable = [s for s in segments if s.kind == "unusable"]
    foreign = [s for s in segments if s.kind == "foreign"]
    if queues:
        rows = [["NAME", "CAPACITY", "ELEMENT", "DEPTH", "DISK", "CREATOR", "LIVE", "STATE"]]
        for s in queues:
            creator = str(s.creator_pid) + ("" if s.creator_running else " (gone)")
            rows.append(
                [
                    _shown(s.name),
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
        print(_none_found(prefix), file=out)
    for s in unusable:
        print(f"{_shown(s.name)}: cannot be attached: {s.reason}", file=out)
    if foreign:
        if show_all:
            for s in foreign:
                print(f"{_shown(s.name)}: ignored: {s.reason}", file=out)
        else:
            print(
                f"({len(foreign)} other entr{'y' if len(foreign) == 1 else 'ies'} in {SHM_DIR} "
                f"ignored: not fastqueue segments; --all lists them)",
                file=out,
            )


#: The figures of ``stats()`` that ``stat`` shows among the header fields, not again as counters.
_STAT_FIELDS: Final = frozenset({"depth", "creator_pid", "segment_size", "shutdown"})


def _print_stat(seg: Segment, out: TextIO) -> None:
    """One queue, each figure once: the header fields, then the other counters."""
    running = {True: "running", False: "gone", None: "unknown"}[seg.creator_running]
    rows = [
        ["name", _shown(seg.name)],
        ["path", _shown(str(SHM_DIR / seg.name))],
        ["capacity", count(seg.capacity, "message")],
        ["element_size", count(seg.element_size, "byte")],
        ["depth", count(seg.depth, "message")],
        ["segment_size", f"{seg.file_size} bytes ({_human(seg.disk_size)} on disk)"],
        ["mode", f"{seg.mode} (owner uid {seg.owner_uid})"],
        ["creator_pid", f"{seg.creator_pid} ({running})"],
        ["live_processes", f"{seg.live_processes} ({_state(seg)})"],
        ["shutdown", seg.shutdown],
    ]
    counters = [[f"  {k}", str(v)] for k, v in seg.counters.items() if k not in _STAT_FIELDS]
    if counters:
        rows += [["counters", ""], *counters]
    _table(rows, set(), out)


# ------------------------------------------------------------------------------ commands


class _Fail(Exception):
    """An error for the user: printed as ``fastqueue <command>: <message>``, exit status 1."""


class _NotAQueue(_Fail):
    """The name exists but is not a fastqueue queue that can be attached (``rm --force`` removes
    it all the same)."""


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
        raise _NotAQueue(f"{bare!r} is not a fastqueue queue ({seg.reason})")
    if seg.kind == "unusable":
        if "permission" in seg.reason:
            raise _Fail(f"{bare!r}: {seg.reason} ({_owner_hint(seg)})")
        raise _NotAQueue(f"{bare!r}: {seg.reason}")
    return seg


def _owner_hint(seg: Segment) -> str:
    return f"it belongs to uid {seg.owner_uid}, mode {seg.mode}; run as its owner or as root"


def _cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    segments = scan(args.prefix)
    if args.json:
        shown = segments if args.all else [s for s in segments if s.kind != "foreign"]
        json.dump([_as_json(s) for s in shown], out, indent=2)
        print(file=out)
    else:
        _print_ls(segments, args.all, out, args.prefix)
    return 0


def _cmd_stat(args: argparse.Namespace, out: TextIO) -> int:
    seg = _probe_queue(args.name)
    if args.json:
        json.dump(_as_json(seg), out, indent=2)
        print(file=out)
    else:
        _print_stat(seg, out)
    return 0


def _unlink(name: str, force: bool = False) -> None:
    raw = os.fsencode(name)
    status = _ffi.unlink_force(raw) if force else _ffi.unlink(raw)
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
            try:
                seg = None if args.force else _probe_queue(bare)
            except _NotAQueue as exc:
                raise _Fail(
                    f"{exc}; refused (`{args.prog} rm --force {bare}` removes it anyway)"
                ) from None
            _unlink(bare, force=args.force)
        except _Fail as exc:
            print(f"{args.prog} rm: {exc}", file=sys.stderr)
            failed += 1
            continue
        still = ""
        if seg is not None and seg.in_use:
            n = seg.live_processes
            still = f" ({n} live process{'es keep' if n > 1 else ' keeps'} using it until detached)"
        print(f"removed {bare}{still}", file=out)
    return 1 if failed else 0


def _gc_leftover(name: str, dry_run: bool, out: TextIO) -> int:
    """Removes a creation leftover whose creator is gone (fq_remove_leftover); 1 if removed."""
    if dry_run:
        print(
            f"would remove {_shown(name)} if its creator is gone (an unfinished creation)", file=out
        )
        return 1
    status, removed = _ffi.remove_leftover(os.fsencode(name))
    if status == _ffi.OK and removed:
        print(
            f"removed {_shown(name)} (left by a creator that died while creating a queue)", file=out
        )
        return 1
    if status not in (_ffi.OK, _ffi.ERR_NOT_FOUND):
        print(f"{_PROG} gc: {_shown(name)}: {_ffi.status_str(status)}", file=sys.stderr)
    return 0


def _cmd_gc(args: argparse.Namespace, out: TextIO) -> int:
    failed = 0
    found = 0
    in_use = 0
    uninspected = 0
    for seg in scan(args.prefix):
        if seg.name.startswith(_ffi.TEMP_PREFIX):  # a queue being made where O_TMPFILE is missing
            found += _gc_leftover(seg.name, args.dry_run, out)
            continue
        if seg.kind == "unusable":
            # Not removed: gc cannot tell whether a live process uses it.
            uninspected += 1
            why = seg.reason
            if "permission" in why:
                why += f"; {_owner_hint(seg)}"
            print(f"kept {_shown(seg.name)}: could not inspect it: {why}", file=out)
            continue
        if seg.kind != "queue":
            continue
        if seg.in_use:
            in_use += 1
            continue
        found += 1
        lost = f", {count(seg.depth, 'message')} in it" if seg.depth else ""
        what = f"{_shown(seg.name)} (no live process{lost}, {_human(seg.disk_size)})"
        if args.dry_run:
            print(f"would remove {what}", file=out)
            continue
        try:
            _unlink(seg.name)
        except _Fail as exc:
            print(f"{args.prog} gc: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"removed {what}", file=out)
    if not found:
        reasons = []
        if in_use:
            reasons.append(f"{in_use} queue{'s are' if in_use > 1 else ' is'} in use")
        if uninspected:
            reasons.append(
                f"{uninspected} segment{'s' if uninspected > 1 else ''} could not be inspected "
                "(listed above)"
            )
        summary = ", ".join(reasons) or _none_found(args.prefix)
        print(f"nothing to remove: {summary}", file=out)
    return 1 if failed else 0


def _parser(prog: str = _PROG) -> argparse.ArgumentParser:
    """The parser of the operator's commands (``ls``, ``stat``, ``rm``, ``gc``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Inspect and clean up fastqueue queues in /dev/shm.",
        epilog=f"Also: `{prog} demo` (= bench) and `{prog} --cflags --libs` (C build flags). "
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
        "--force",
        action="store_true",
        help="remove even what is not a fastqueue queue that can be attached (another kind of "
        "file, a corrupt or unfinished segment, another layout version)",
    )
    p.set_defaults(run=_cmd_rm)
    p = sub.add_parser("gc", help="remove every queue that no live process uses")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--prefix", default="", help="only names starting with PREFIX")
    p.set_defaults(run=_cmd_gc)
    from ._redis._bridge import add_parser as add_bridge  # (the bridge's options live there)

    add_bridge(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` (``ls``, ``stat``...)."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[command]
    return found


def main(argv: Sequence[str] | None = None, prog: str = _PROG) -> int:
    """Runs one command; returns the exit status. ``prog`` is the name messages give the program
    (the name it was run as)."""
    parser = _parser(prog)
    args, extra = parser.parse_known_args(argv)  # exits with 2 on a usage error
    if extra:  # (argparse would blame the top level, and print its usage, not the command's)
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    args.prog = prog
    try:
        status: int = args.run(args, sys.stdout)
        sys.stdout.flush()
    except _Fail as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `fastqueue ls | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status
