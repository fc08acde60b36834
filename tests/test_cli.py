"""The command line (``python -m fastqueue`` / ``fastqueue``): ls, stat, rm, gc, bench on real
segments in /dev/shm, run as subprocesses. Every listing is limited to this test's names
(``--prefix``), so that queues of other programs on the machine are never touched."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Callable
from unittest.mock import ANY

import pytest

import fastqueue
from _procs import checkout_env, run_fastqueue
from fastqueue import Queue, _ffi

NameFactory = Callable[[], str]
SHM = Path("/dev/shm")
TIMEOUT_S = 120


def cli(
    *args: str, python: str = sys.executable, user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_fastqueue(*args, timeout=TIMEOUT_S, python=python, prefix=user or ())


def prefix_of(name: str) -> str:
    """The prefix every name of one qname factory shares."""
    return name.rsplit("-", 1)[0] + "-"


def exists(name: str) -> bool:
    return (SHM / name).exists()


def make_orphan(name: str) -> None:
    """A queue (holding one message) whose creator exits without removing it."""
    code = (
        "import os, sys, fastqueue\n"
        "q = fastqueue.Queue(sys.argv[1], element_size=8, capacity=2)\n"
        "q.put(b'left')\n"
        "os._exit(0)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, name], env=checkout_env(), timeout=TIMEOUT_S, check=True
    )
    assert exists(name)


def write_file(name: str, data: bytes) -> None:
    (SHM / name).write_bytes(data)


# ------------------------------------------------------------------------------ ls


def test_ls_lists_a_queue_with_its_fields(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=100, capacity=7) as q:
        for _ in range(3):
            q.put(b"m")
        proc = cli("ls", "--json", "--prefix", prefix_of(name))
        assert proc.returncode == 0, proc.stderr
        (seg,) = json.loads(proc.stdout)
        assert seg["name"] == name and seg["kind"] == "queue"
        assert (seg["capacity"], seg["element_size"], seg["depth"]) == (7, 100, 3)
        assert seg["creator_pid"] == os.getpid() and seg["creator_running"] is True
        assert seg["live_processes"] == 1  # this process; the CLI only observes
        assert seg["disk_size"] > 0 and seg["file_size"] == q.stats()["segment_size"]
        assert seg["counters"]["puts"] == 3

        text = cli("ls", "--prefix", prefix_of(name))
        assert text.returncode == 0
        header, row = text.stdout.splitlines()[:2]
        assert header.split()[:4] == ["NAME", "CAPACITY", "ELEMENT", "DEPTH"]
        assert row.split()[:4] == [name, "7", "100", "B"] and "in use" in row


def test_ls_reports_foreign_and_broken_files_without_failing(qname: NameFactory) -> None:
    queue_name, foreign, truncated, empty, old = qname(), qname(), qname(), qname(), qname()
    write_file(foreign, b"hello, not a queue" * 10)
    write_file(truncated, _ffi.MAGIC + bytes(100))  # the magic, then nothing valid
    # A segment of an older layout: the magic, then layout version 1 (native-endian u32).
    write_file(old, _ffi.MAGIC + (1).to_bytes(4, sys.byteorder) + bytes(8192))
    write_file(empty, b"")
    directory = SHM / (prefix_of(queue_name) + "dir")
    directory.mkdir()
    try:
        with Queue(queue_name, element_size=8, capacity=2):
            proc = cli("ls", "--prefix", prefix_of(queue_name))
            assert proc.returncode == 0, proc.stderr
            assert queue_name in proc.stdout
            assert f"{truncated}: cannot be attached: a truncated fastqueue segment" in proc.stdout
            assert f"{empty}: cannot be attached: an empty file (0 bytes)" in proc.stdout
            assert (
                f"{old}: cannot be attached: a fastqueue segment of layout version 1 "
                f"(this fastqueue reads layout {_ffi.layout_version()})"
            ) in proc.stdout
            assert "2 other entries" in proc.stdout and "ignored" in proc.stdout
            assert foreign not in proc.stdout

            every = cli("ls", "--all", "--prefix", prefix_of(queue_name))
            assert every.returncode == 0
            assert f"{foreign}: ignored: not a fastqueue segment" in every.stdout
            assert f"{directory.name}: ignored: a directory, not a shared-memory" in every.stdout

            kinds = {
                s["name"]: s["kind"]
                for s in json.loads(
                    cli("ls", "--json", "--all", "--prefix", prefix_of(queue_name)).stdout
                )
            }
            assert kinds == {
                queue_name: "queue",
                foreign: "foreign",
                truncated: "unusable",
                old: "unusable",
                empty: "unusable",  # (maybe a queue whose creator died)
                directory.name: "foreign",
            }
    finally:
        directory.rmdir()


def test_ls_with_nothing_to_show(qname: NameFactory) -> None:
    """A prefix that matches no queue says so (while queues exist), not "no fastqueue queues"."""
    with Queue(qname(), element_size=8, capacity=1):
        missing = qname()
        proc = cli("ls", "--prefix", missing)
        assert proc.returncode == 0
        assert f"no fastqueue queue in /dev/shm has a name starting with {missing!r}" in proc.stdout
        gc = cli("gc", "--dry-run", "--prefix", missing)
        assert f"has a name starting with {missing!r}" in gc.stdout, gc.stdout


def test_ls_and_gc_with_no_queue_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastqueue import _cli

    monkeypatch.setattr(_cli, "SHM_DIR", tmp_path)  # an empty /dev/shm
    for argv in (["ls"], ["ls", "--prefix", "zzz-"], ["gc", "--dry-run", "--prefix", "zzz-"]):
        assert _cli.main(argv) == 0
        out = capsys.readouterr().out
        assert f"no fastqueue queues in {tmp_path}" in out and "starting with" not in out, argv


def test_a_usage_error_of_a_command_prints_that_commands_usage() -> None:
    proc = cli("ls", "--bogus")
    assert proc.returncode == 2
    assert re.search(r"^usage: \S.* ls \[-h\] \[--all\]", proc.stderr, re.M), proc.stderr
    assert "ls: error: unrecognized arguments: --bogus" in proc.stderr
    assert "COMMAND" not in proc.stderr  # not the top level's usage
    proc = cli("stat", "--bogus", "x")
    assert proc.returncode == 2 and "stat: error: unrecognized arguments: --bogus" in proc.stderr


# ------------------------------------------------------------------------------ stat


def test_stat_prints_header_fields_and_every_counter(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=64, capacity=4) as q:
        q.put(b"a")
        q.shutdown()
        for spelling in (name, "/" + name, f"/dev/shm/{name}"):
            proc = cli("stat", spelling)
            assert proc.returncode == 0, proc.stderr
            assert re.search(rf"^path +/dev/shm/{re.escape(name)}$", proc.stdout, re.M)
        for field in ("capacity", "element_size", "segment_size", "creator_pid", "live_processes"):
            assert field in proc.stdout
        # Each figure once: the header fields, then the counters not already among them.
        labels = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
        for figure in _ffi.STAT_NAMES:
            assert labels.count(figure) == 1, (figure, proc.stdout)
        assert len(labels) == len(set(labels)), proc.stdout
        data = json.loads(cli("stat", "--json", name).stdout)
        assert (data["capacity"], data["element_size"], data["depth"]) == (4, 64, 1)
        assert data["shutdown"] == "yes"
        # Each figure once in JSON too: counters holds those the fields above do not give.
        given = {"depth", "creator_pid", "shutdown", "segment_size"}
        assert list(data["counters"]) == [n for n in _ffi.STAT_NAMES if n not in given]
        stats = q.stats()
        assert data["counters"] == {k: v for k, v in stats.items() if k not in given} | {
            "empty_hits": data["counters"]["empty_hits"]
        }
        assert (data["creator_pid"], data["file_size"]) == (
            stats["creator_pid"],
            stats["segment_size"],
        )
        (listed,) = json.loads(cli("ls", "--json", "--prefix", name).stdout)
        assert listed["counters"] == data["counters"] | {"empty_hits": ANY}


def test_stat_counts_in_the_right_number(qname: NameFactory) -> None:
    name = qname()
    with Queue(name, element_size=1, capacity=1) as q:
        q.put(b"a")
        out = cli("stat", name).stdout
    for label, value in (
        ("capacity", "1 message"),
        ("element_size", "1 byte"),
        ("depth", "1 message"),
    ):
        assert re.search(rf"^{label} +{value}$", out, re.M), out


def test_stat_errors_and_exit_codes(qname: NameFactory) -> None:
    missing, foreign, corrupt = qname(), qname(), qname()
    write_file(foreign, b"x" * 64)
    write_file(corrupt, _ffi.MAGIC + bytes(8))
    proc = cli("stat", missing)
    assert proc.returncode == 1 and f"no queue named '{missing}'" in proc.stderr
    proc = cli("stat", foreign)
    assert proc.returncode == 1 and "is not a fastqueue queue" in proc.stderr
    proc = cli("stat", corrupt)
    assert proc.returncode == 1 and "a truncated fastqueue segment" in proc.stderr
    proc = cli("stat", "a/b")
    assert proc.returncode == 1 and "not a queue name" in proc.stderr
    assert cli("stat").returncode == 2  # usage errors
    assert cli("ls", "--bogus").returncode == 2
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ rm


def test_rm_removes_queues_and_refuses_other_files(qname: NameFactory) -> None:
    name, foreign, missing = qname(), qname(), qname()
    write_file(foreign, b"keep me")
    with Queue(name, element_size=8, capacity=2) as q:
        proc = cli("rm", name)
        assert proc.returncode == 0, proc.stderr
        assert f"removed {name} (1 live process keeps using it" in proc.stdout
        assert not exists(name)
        q.put(b"works")  # attached handles keep working
        assert q.get() == b"works"
    proc = cli("rm", foreign, missing)
    assert proc.returncode == 1
    assert (
        "is not a fastqueue queue" in proc.stderr and f"no queue named '{missing}'" in proc.stderr
    )
    assert exists(foreign)
    module = f"{Path(sys.executable).name} -m fastqueue"
    assert f"refused (`{module} rm --force {foreign}` removes it anyway)" in proc.stderr
    assert "--force" not in proc.stderr.split(missing)[-1]  # nothing to force for a missing name
    proc = cli("rm", "--force", foreign)
    assert proc.returncode == 0 and not exists(foreign)


def test_rm_of_a_corrupt_queue_says_how_to_force_it(qname: NameFactory) -> None:
    corrupt = qname()
    write_file(corrupt, _ffi.MAGIC + bytes(64))
    proc = cli("rm", corrupt)
    assert proc.returncode == 1 and exists(corrupt)
    assert "truncated" in proc.stderr  # the diagnosis (its wording is the library's)
    assert f"rm --force {corrupt}` removes it anyway" in proc.stderr
    proc = cli("rm", "--force", corrupt)
    assert proc.returncode == 0, proc.stderr
    assert not exists(corrupt)


# ------------------------------------------------------------------------------ gc


def test_gc_removes_only_queues_no_live_process_uses(qname: NameFactory) -> None:
    orphan, used, corrupt = qname(), qname(), qname()
    make_orphan(orphan)
    write_file(corrupt, _ffi.MAGIC + bytes(64))
    prefix = prefix_of(orphan)
    with Queue(used, element_size=8, capacity=2):
        dry = cli("gc", "--dry-run", "--prefix", prefix)
        assert dry.returncode == 0, dry.stderr
        assert f"would remove {orphan} (no live process, 1 message in it" in dry.stdout
        assert used not in dry.stdout
        assert exists(orphan)

        proc = cli("gc", "--prefix", prefix)
        assert proc.returncode == 0, proc.stderr
        assert f"removed {orphan}" in proc.stdout
        assert re.search(rf"^kept {corrupt}: could not inspect it: .*truncated", proc.stdout, re.M)
        assert not exists(orphan) and exists(used) and exists(corrupt)

        again = cli("gc", "--prefix", prefix)
        assert again.returncode == 0
        assert (
            "nothing to remove: 1 queue is in use, 1 segment could not be inspected" in again.stdout
        )
    (SHM / corrupt).unlink()
    nothing = cli("gc", "--prefix", prefix)
    assert nothing.returncode == 0 and "nothing to remove: no fastqueue queue" in nothing.stdout


# ------------------------------------------------------------------------------ bridge


def test_a_bridge_without_its_local_queue_says_so(qname: NameFactory) -> None:
    missing = qname()
    for args in ((missing, "redis://127.0.0.1:1/0/s"), ("redis://127.0.0.1:1/0/s", missing)):
        proc = cli("bridge", *args)
        assert proc.returncode == 1
        assert "[Errno" not in proc.stderr and "Queue(" not in proc.stderr.split(":")[0]
        assert f"bridge: no queue named {missing!r} exists on this machine" in proc.stderr
        assert "create it first" in proc.stderr


def test_bridge_help_shows_the_defaults() -> None:
    from fastqueue import _cli

    proc = cli("bridge", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    bridge = _cli._subparser(_cli._parser(), "bridge")
    options = [a for a in bridge._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 5
    for action in options:
        assert action.help and "default" in action.help, action.option_strings
        if action.default is not None:
            assert f"(default: {action.default}" in text, (action.option_strings, text)


# ------------------------------------------------------------------------------ permissions


def _unprivileged_runner() -> tuple[list[str], str] | None:
    """(command prefix that runs as user nobody, a Python that can import this checkout there),
    or None when this machine cannot do that."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        return None
    user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    for python in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(
            [*user, python, "-c", "import fastqueue"],
            env=checkout_env(),
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        if probe.returncode == 0:
            return user, python
    return None


def test_permission_errors_are_reported_not_raised(qname: NameFactory) -> None:
    runner = _unprivileged_runner()
    if runner is None:
        pytest.skip("needs root, setpriv and a Python that user nobody can run with this checkout")
    user, python = runner
    name = qname()
    with Queue(name, element_size=8, capacity=2, mode=0o600):
        proc = cli("stat", name, python=python, user=user)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "permission denied" in proc.stderr and "Traceback" not in proc.stderr
        proc = cli("ls", "--prefix", prefix_of(name), python=python, user=user)
        assert proc.returncode == 0, proc.stderr
        assert f"{name}: cannot be attached: unreadable (permission denied)" in proc.stdout
        proc = cli("rm", name, python=python, user=user)
        assert proc.returncode == 1 and "permission denied" in proc.stderr
        proc = cli("gc", "--prefix", prefix_of(name), python=python, user=user)
        assert proc.returncode == 0, proc.stderr
        # It says what it could not inspect and why, not that every queue is in use.
        kept = rf"^kept {name}: could not inspect it: .*permission denied"
        assert re.search(kept, proc.stdout, re.M), proc.stdout
        assert "belongs to uid 0, mode 0600; run as its owner or as root" in proc.stdout
        assert "in use" not in proc.stdout
        assert "1 segment could not be inspected" in proc.stdout
        assert exists(name)


# ------------------------------------------------------------------------------ bench, entry points


def test_bench_runs_the_quick_race() -> None:
    proc = cli("bench", "--scale", "0.01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fastqueue.Queue" in proc.stdout and "multiprocessing.Queue" in proc.stdout


def test_no_arguments_prints_the_help_and_exits_2() -> None:
    proc = cli()
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: ") and "commands:" in proc.stderr
    assert proc.stdout == ""  # no demo ran


def test_messages_name_the_program_as_it_was_run(tmp_path: Path, qname: NameFactory) -> None:
    module = f"{Path(sys.executable).name} -m fastqueue"
    proc = cli("frob")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{module}: unknown command 'frob'"), proc.stderr
    assert f"usage: {module} COMMAND" in proc.stderr
    proc = cli("stat", qname())
    assert proc.returncode == 1 and proc.stderr.startswith(f"{module} stat: no queue named")

    # A console script as pip writes it (`fastqueue`), run from a copy so that it needs no install.
    script = tmp_path / "fastqueue"
    script.write_text("import sys\nfrom fastqueue.__main__ import main\nsys.exit(main())\n")
    for args, status, start in [
        (["frob"], 2, "fastqueue: unknown command 'frob'"),
        (["stat", qname()], 1, "fastqueue stat: no queue named"),
        (["stat"], 2, "usage: fastqueue stat"),
        (["demo", "--scale", "0"], 2, "usage: fastqueue demo"),
    ]:
        proc = subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=checkout_env(),
            check=False,
        )
        assert proc.returncode == status, proc.stderr
        assert proc.stderr.startswith(start), proc.stderr
        assert "python" not in proc.stderr.splitlines()[0]


def test_help_lists_the_commands_and_the_build_flags_still_work() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("demo", "ls", "stat", "rm", "gc", "bench", "--cflags", "--libs"):
        assert command in proc.stdout
    flags = cli("--cflags")
    assert flags.returncode == 0 and flags.stdout.startswith("-I")
    sub = cli("gc", "--help")
    assert sub.returncode == 0 and "--dry-run" in sub.stdout


def test_console_script(qname: NameFactory) -> None:
    script = Path(sysconfig.get_path("scripts")) / "fastqueue"
    if not script.is_file() or fastqueue.__file__ is None:
        pytest.skip("the fastqueue console script is not installed here (`just dev` installs it)")
    name = qname()
    with Queue(name, element_size=8, capacity=2):
        proc = subprocess.run(
            [str(script), "ls", "--prefix", name],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=checkout_env(),
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert name in proc.stdout


def test_stats_names_all_eighteen_counters(qname: NameFactory) -> None:
    with Queue(qname(), element_size=8, capacity=2) as q:
        q.put(b"a")
        with pytest.raises(fastqueue.Full):
            q.put_many([b"b", b"c"], block=False)  # b fits, c finds the queue full
        stats = q.stats()
    assert list(stats) == [
        "puts",
        "gets",
        "full_hits",
        "empty_hits",
        "recoveries",
        "reclaimed",
        "depth",
        "skipped",
        "lost",
        "tasks_done",
        "unfinished",
        "creator_pid",
        "segment_size",
        "shutdown",
        "getters_woken",
        "putters_woken",
        "getter_sleeps",
        "putter_sleeps",
        "redelivered",
        "leased",
        "abandoned",
    ]
    assert stats["puts"] == 2 and stats["depth"] == 2 and stats["full_hits"] >= 1
    assert stats["creator_pid"] == os.getpid() and stats["unfinished"] == 2


# ------------------------------------------------------------------------------ the guide


def _parser_words() -> dict[str, list[str]]:
    """Every command of the command line and the flags each takes, from the parsers themselves."""
    import argparse

    from fastqueue import __main__ as entry
    from fastqueue import _cli, _demo

    def flags(parser: argparse.ArgumentParser) -> list[str]:
        return [
            opt
            for action in parser._actions
            for opt in action.option_strings
            if opt.startswith("--") and opt != "--help"
        ]

    (sub,) = [a for a in _cli._parser()._actions if isinstance(a, argparse._SubParsersAction)]
    words = {name: flags(p) for name, p in sub.choices.items()}
    words["demo"] = words["bench"] = flags(_demo.build_parser())
    words[""] = list(entry.FLAG_OPTIONS)
    assert set(_cli.COMMANDS) == set(entry._CLI_COMMANDS) == set(sub.choices)
    return words


def test_usage_lists_every_command() -> None:
    from fastqueue import __main__ as entry

    for command in _parser_words():
        assert f"  {command} " in entry.USAGE, command


def test_the_guide_documents_every_command_and_flag() -> None:
    """docs/guide/operations.rst has a line per command, and every flag on one of its lines."""
    from _doc_blocks import GUIDE, blocks

    page = GUIDE / "operations.rst"
    text = "".join(b.code for b in blocks(page) if b.lang == "sh")
    for command, flags in _parser_words().items():
        invocation = f"fastqueue {command}" if command else "fastqueue"
        assert re.search(rf"^{invocation}\b", text, re.M), f"{page.name}: no `{invocation}`"
        for flag in flags:
            assert re.search(rf"^{invocation}\b.*{flag}\b", text, re.M), (
                f"{page.name}: the command-line section does not document `{invocation} {flag}`"
            )
