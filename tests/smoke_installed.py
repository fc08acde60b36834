"""Smoke test of an installed fastqueue, the way a user gets it: C code built against the package.

Run it with the Python of the environment fastqueue is installed in, e.g. a fresh virtualenv
that installed the wheel (``just wheel-check`` and ``.ci/run`` do)::

    python tests/smoke_installed.py [--installed] [--examples examples/c]

It needs only the package and a C compiler (``$CC``, default ``cc``), no pytest:

1. imports fastqueue and reports which package, library and header it found (with
   ``--installed``: fails if that package is this checkout's ``py/`` instead of an install,
   imports every module the installed distribution holds and every module
   ``pkgutil.walk_packages`` lists, so none fails to import, and checks that none imports cffi
   and the distribution declares no run-time dependency);
2. compiles ``examples/c/producer.c`` and ``consumer.c`` as strict C99 with exactly the flags
   ``python -m fastqueue --cflags`` and ``--libs`` print, so against the installed header and the
   installed library, and checks that the programs load that very library;
3. exchanges messages C -> Python, Python -> C and C -> C through one queue, every byte checked
   (the pattern of ``examples/c/pattern.h``; the C consumer checks its side).

tests/test_build_flags.py runs it too, on the package under test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: How long one C program may run.
PROC_TIMEOUT_S = 120.0
#: Python's side waits at most this long for one message or one free slot.
OP_TIMEOUT_S = 10.0
_RAMP = bytes(range(256)) * 2


def msg_len(i: int, max_msg: int) -> int:
    """Length of message i (fqx_len of examples/c/pattern.h)."""
    if i % 16 == 1:
        return max_msg
    return ((i * 2654435761) % (1 << 64)) % (max_msg + 1)


def message(i: int, max_msg: int) -> bytes:
    """Message i (fqx_fill of examples/c/pattern.h): byte j is (7*i + j) mod 256."""
    n = msg_len(i, max_msg)
    start = (7 * i) % 256
    return (_RAMP[start : start + 256] * (n // 256 + 2))[:n]


def flags(option: str) -> list[str]:
    """What ``python -m fastqueue <option>`` prints, split as a shell would split it."""
    out = subprocess.run(
        [sys.executable, "-m", "fastqueue", option],
        capture_output=True,
        text=True,
        timeout=PROC_TIMEOUT_S,
        check=True,
    ).stdout
    return shlex.split(out)


def build(examples: Path, out: Path) -> dict[str, Path]:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit(f"smoke: no C compiler {cc!r} (set CC)")
    cflags, libs = flags("--cflags"), flags("--libs")
    print(f"smoke: cc {shlex.join(cflags)} <source> {shlex.join(libs)}")
    built = {}
    for prog in ("producer", "consumer"):
        exe = out / prog
        cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", *cflags]
        cmd += [str(examples / f"{prog}.c"), "-o", str(exe), *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROC_TIMEOUT_S)
        if proc.returncode != 0:
            raise SystemExit(f"smoke: {shlex.join(cmd)} failed:\n{proc.stderr}")
        built[prog] = exe
    return built


def check_links_to(exe: Path, library: str) -> None:
    """The program resolves the library to the very file the package loaded (ldd, when present)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return
    out = subprocess.run([ldd, str(exe)], capture_output=True, text=True, timeout=60).stdout
    wanted = os.path.realpath(library)
    for line in out.splitlines():
        if Path(library).name in line and "=>" in line:
            resolved = line.split("=>", 1)[1].split("(")[0].strip()
            if os.path.realpath(resolved) == wanted:
                return
    raise SystemExit(f"smoke: {exe.name} does not load {library}:\n{out}")


def run(args: list[object], what: str) -> str:
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=PROC_TIMEOUT_S
    )
    if proc.returncode != 0:
        raise SystemExit(f"smoke: {what} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def exchange(built: dict[str, Path]) -> None:
    import fastqueue

    tag = f"fq-smoke-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    names = [f"{tag}-{k}" for k in ("c2py", "py2c", "c2c")]
    try:
        # C producer -> Python consumer (a small queue: the producer blocks on a full one).
        max_msg, count = 3000, 3000
        with fastqueue.Queue(names[0], element_size=max_msg, capacity=5) as q:
            producer = subprocess.Popen([str(built["producer"]), names[0], str(count)])
            try:
                for i in range(count):
                    got = q.get(timeout=OP_TIMEOUT_S)
                    if got != message(i, max_msg):
                        raise SystemExit(f"smoke: message {i} from C differs")
            finally:
                if producer.wait(timeout=PROC_TIMEOUT_S) != 0:
                    raise SystemExit("smoke: the C producer failed")
        print(f"smoke: C -> Python: {count} messages, every byte checked")

        # Python producer -> C consumer.
        max_msg, count = 700, 3000
        with fastqueue.Queue(names[1], element_size=max_msg, capacity=3) as q:
            consumer = subprocess.Popen(
                [str(built["consumer"]), names[1], str(count)], stdout=subprocess.PIPE, text=True
            )
            try:
                for i in range(count):
                    q.put(message(i, max_msg), timeout=OP_TIMEOUT_S)
            finally:
                out, _ = consumer.communicate(timeout=PROC_TIMEOUT_S)
            if consumer.returncode != 0 or "all correct" not in out:
                raise SystemExit(f"smoke: the C consumer failed: {out}")
        print(f"smoke: Python -> C: {count} messages, every byte checked")

        # C -> C: the consumer creates (and removes) the queue, the producer waits for it.
        count = 5000
        producer = subprocess.Popen([str(built["producer"]), names[2], str(count)])
        out = run([built["consumer"], names[2], count, 512, 4], "the C consumer (C -> C)")
        if producer.wait(timeout=PROC_TIMEOUT_S) != 0 or "all correct" not in out:
            raise SystemExit("smoke: C -> C failed")
        print(f"smoke: C -> C: {count} messages, every byte checked")
    finally:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                fastqueue.unlink(name)


def import_every_module() -> list[str]:
    """Imports every module the installed ``fastqueue`` distribution holds, as a package walker
    sees them, and checks that the package needs nothing outside the standard library.

    - every file of its RECORD (what the wheel or the sdist's build put there) whose name a
      walker takes for a module (``inspect.getmodulename``: ``.py``, or any extension-module
      suffix such as ``.so``) inside the package imports: no file looks like a module and is not;
    - ``pkgutil.walk_packages`` (pydoc, PyInstaller and Sphinx's apidoc walk the same way) meets
      no error, and every module it lists imports;
    - none of that imported cffi, and the distribution declares no dependency outside extras.
    """
    import importlib
    import importlib.metadata
    import inspect
    import pkgutil

    import fastqueue

    files = importlib.metadata.files("fastqueue") or []
    from_record = set()
    for f in files:
        if f.parts[0] != "fastqueue" or "__pycache__" in f.parts:
            continue
        stem = inspect.getmodulename(f.name)
        if stem is not None:
            parts = [*f.parts[:-1], stem]
            from_record.add(".".join(parts[:-1] if stem == "__init__" else parts))
    if "fastqueue" not in from_record:
        raise SystemExit(f"smoke: the installed distribution lists no fastqueue package: {files}")
    walk_errors: list[str] = []
    walked = {"fastqueue"} | {
        info.name
        for info in pkgutil.walk_packages(
            fastqueue.__path__, "fastqueue.", onerror=walk_errors.append
        )
    }
    failed = [f"pkgutil.walk_packages could not import {name}" for name in walk_errors]
    modules = sorted(from_record | walked)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # every failure is reported, not only the first
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    if failed:
        lines = "\n  ".join(failed)
        raise SystemExit(f"smoke: modules of the installed package fail to import:\n  {lines}")
    if walked != from_record:
        raise SystemExit(f"smoke: the walker and the RECORD disagree: {walked ^ from_record}")
    cffi = sorted(m for m in sys.modules if m == "cffi" or m.startswith(("cffi.", "_cffi")))
    if cffi:
        raise SystemExit(f"smoke: importing the package imported {cffi}")
    requires = [r for r in importlib.metadata.requires("fastqueue") or [] if "extra ==" not in r]
    if requires:
        raise SystemExit(f"smoke: the distribution has run-time dependencies: {requires}")
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--installed", action="store_true", help="fail on the checkout's package")
    parser.add_argument("--examples", type=Path, default=HERE.parent / "examples" / "c")
    args = parser.parse_args(argv)

    import fastqueue

    package = Path(fastqueue.__file__).resolve().parent
    print(f"smoke: fastqueue {fastqueue.__version__} from {package}")
    print(f"smoke: library {fastqueue.library_path()}")
    print(f"smoke: header {fastqueue.include_dir()}/fastqueue.h")
    if args.installed and package == HERE.parent / "py" / "fastqueue":
        raise SystemExit("smoke: --installed, but this is the checkout's package (py/fastqueue)")
    if args.installed:
        modules = import_every_module()
        print(f"smoke: every module of the installed package imports: {', '.join(modules)}")
        print("smoke: none imported cffi; no Requires-Dist outside extras")
    if not Path(fastqueue.include_dir(), "fastqueue.h").is_file():
        raise SystemExit("smoke: the package has no include/fastqueue.h")
    with tempfile.TemporaryDirectory(prefix="fq-smoke-") as tmp:
        built = build(args.examples, Path(tmp))
        for exe in built.values():
            check_links_to(exe, fastqueue.library_path())
        exchange(built)
    print("smoke: the installed package works from C and Python")
    return 0


if __name__ == "__main__":
    sys.exit(main())
