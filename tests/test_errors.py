"""The status -> exception table, and the errors of loading the native library."""

from __future__ import annotations

import errno
import os
import queue as stdlib_queue
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

import fastqueue
from fastqueue import _errors, _ffi

NameFactory = Callable[[], str]
PACKAGE = Path(fastqueue.__file__).resolve().parent

EXPECTED: dict[int, tuple[type[BaseException], ...]] = {
    _ffi.ERR_NULL: (fastqueue.InternalError,),
    _ffi.ERR_INVALID: (fastqueue.InvalidArgumentError, ValueError),
    _ffi.ERR_TOO_BIG: (fastqueue.MessageTooBigError, ValueError),
    _ffi.ERR_BUFFER: (fastqueue.InternalError,),
    _ffi.ERR_EXISTS: (fastqueue.QueueExistsError, FileExistsError),
    _ffi.ERR_NOT_FOUND: (fastqueue.QueueNotFoundError, FileNotFoundError),
    _ffi.ERR_PERMISSION: (fastqueue.QueuePermissionError, PermissionError),
    _ffi.ERR_NO_SPACE: (fastqueue.NoSpaceError, OSError),
    _ffi.ERR_BAD_SEGMENT: (fastqueue.SegmentError,),
    _ffi.ERR_VERSION: (fastqueue.SegmentError,),
    _ffi.ERR_NOT_READY: (fastqueue.SegmentError,),
    _ffi.ERR_TOO_MANY: (fastqueue.TooManyAttachedError,),
    _ffi.ERR_OS: (fastqueue.QueueOSError, OSError),
    _ffi.ERR_INTERNAL: (fastqueue.InternalError,),
    -999: (fastqueue.InternalError,),
}


#: Statuses about a particular queue, whose message must name it.
NAMED = {
    _ffi.ERR_EXISTS,
    _ffi.ERR_NOT_FOUND,
    _ffi.ERR_PERMISSION,
    _ffi.ERR_NO_SPACE,
    _ffi.ERR_BAD_SEGMENT,
    _ffi.ERR_VERSION,
    _ffi.ERR_NOT_READY,
    _ffi.ERR_TOO_MANY,
    _ffi.ERR_OS,
}


@pytest.mark.parametrize("status", list(EXPECTED))
def test_every_status_maps_to_a_fastqueue_error(status: int) -> None:
    exc = _errors.error_from_status(status, "Queue('jobs').op", "jobs", needed=4096)
    assert isinstance(exc, fastqueue.FastQueueError)
    for cls in EXPECTED[status]:
        assert isinstance(exc, cls), (status, type(exc))
    assert exc.status == status
    message = str(exc)
    assert "Queue('jobs').op" in message
    if status in NAMED:
        assert "'jobs'" in message, message


def test_os_errors_carry_errno() -> None:
    assert _errors.error_from_status(_ffi.ERR_EXISTS, "op", "n").errno == errno.EEXIST  # type: ignore[attr-defined]
    assert _errors.error_from_status(_ffi.ERR_NOT_FOUND, "op", "n").errno == errno.ENOENT  # type: ignore[attr-defined]
    assert _errors.error_from_status(_ffi.ERR_PERMISSION, "op", "n").errno == errno.EACCES  # type: ignore[attr-defined]
    assert _errors.error_from_status(_ffi.ERR_NO_SPACE, "op", "n").errno == errno.ENOSPC  # type: ignore[attr-defined]


def test_no_space_message_says_needed_and_free() -> None:
    message = str(_errors.error_from_status(_ffi.ERR_NO_SPACE, "op", "n", needed=123456))
    assert "needs 123456 bytes" in message and "bytes free" in message and "/dev/shm" in message


def test_segment_errors_say_what_to_do() -> None:
    # 'jobs' does not exist: a name whose file cannot be read as a queue is never advised for
    # removal (it may be another program's); the other two say how to remove what is there.
    message = str(_errors.error_from_status(_ffi.ERR_BAD_SEGMENT, "op", "jobs"))
    assert "fastqueue.unlink" not in message and "choose another name" in message, message
    message = str(_errors.error_from_status(_ffi.ERR_VERSION, "op", "jobs"))
    assert "fastqueue.unlink('jobs')" in message, message
    message = str(_errors.error_from_status(_ffi.ERR_NOT_READY, "op", "jobs"))
    assert "fastqueue.unlink('jobs', force=True)" in message, message


def test_no_space_message_names_the_memory_room() -> None:
    message = str(_errors.error_from_status(_ffi.ERR_NO_SPACE, "op", "n", needed=123456))
    assert "memory can give" in message and "OOM killer" in message, message


def test_empty_full_are_not_failures() -> None:
    assert issubclass(fastqueue.Empty, stdlib_queue.Empty)
    assert issubclass(fastqueue.Full, stdlib_queue.Full)
    # (and, as every exception fastqueue raises, FastQueueErrors: tests/test_exception_family.py)
    assert issubclass(fastqueue.Empty, fastqueue.FastQueueError)
    assert issubclass(fastqueue.Full, fastqueue.FastQueueError)


def test_status_strings_and_versions() -> None:
    assert _ffi.abi_version() == _ffi.ABI_VERSION == 1
    assert _ffi.layout_version() >= 1
    for status in [*EXPECTED, _ffi.OK, _ffi.EMPTY, _ffi.FULL]:
        assert _ffi.status_str(status)
    assert Path(_ffi.library_path()).is_file()


@pytest.mark.timeout(60)
def test_permission_denied_is_permission_error(qname: NameFactory) -> None:
    """A segment of mode 0600 refuses another user (root drops to 'nobody' in a child)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to try as another user")
    name = qname()
    with fastqueue.Queue(name, element_size=8, capacity=2, mode=0o600):
        script = textwrap.dedent(
            f"""
            import os, fastqueue
            os.setgid(65534)
            os.setuid(65534)
            try:
                fastqueue.Queue({name!r}, create=False)
            except PermissionError as exc:
                assert isinstance(exc, fastqueue.QueuePermissionError), type(exc)
                assert {name!r} in str(exc), str(exc)
                print("denied")
            else:
                print("allowed")
            """
        )
        out = run_python(script)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "denied"


# ------------------------------------------------------------------------------ loading


def run_python(
    code: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if env is not None:
        full_env.update(env)
        for key, value in env.items():
            if value == "":
                del full_env[key]
    return subprocess.run(
        [sys.executable, "-c", code],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_package(tmp_path: Path) -> Path:
    """A copy of the package's Python files, without any bundled library."""
    dest = tmp_path / "fastqueue"
    dest.mkdir()
    for src in PACKAGE.glob("*.py"):
        shutil.copy(src, dest / src.name)
    return tmp_path


IMPORT = "import fastqueue, fastqueue._ffi as f; print(f.library_path())"


@pytest.mark.timeout(60)
def test_missing_library_is_import_error_saying_how_to_fix(tmp_path: Path) -> None:
    root = copy_package(tmp_path)
    out = run_python(IMPORT, env={"FASTQUEUE_LIBRARY": "", "PYTHONPATH": str(root)})
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "_native" in out.stderr and "FASTQUEUE_LIBRARY" in out.stderr
    assert "pip install fastqueue" in out.stderr and "just dev" in out.stderr


@pytest.mark.timeout(60)
# The wheel's name (build_backend/fastqueue_build.py) and an editable install's (maturin's).
@pytest.mark.parametrize("filename", ["libfastqueue.so.1", "lib_native.so"])
def test_bundled_library_is_found_in_native_folder(tmp_path: Path, filename: str) -> None:
    root = copy_package(tmp_path)
    native = root / "fastqueue" / "_native"
    native.mkdir()
    shutil.copy(_ffi.library_path(), native / filename)
    out = run_python(IMPORT, env={"FASTQUEUE_LIBRARY": "", "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(native / filename)


@pytest.mark.timeout(60)
def test_library_env_pointing_nowhere_is_import_error(tmp_path: Path) -> None:
    out = run_python(IMPORT, env={"FASTQUEUE_LIBRARY": str(tmp_path / "nope.so")})
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "nope.so" in out.stderr


@pytest.mark.timeout(60)
def test_library_that_is_not_fastqueue_is_import_error() -> None:
    maps = Path("/proc/self/maps").read_text().split()
    libc = next((p for p in maps if "/libc.so" in p or "/libc-" in p), None)
    if libc is None:
        pytest.skip("no libc mapped from a file")
    out = run_python(IMPORT, env={"FASTQUEUE_LIBRARY": libc})
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "fq_abi_version" in out.stderr


@pytest.mark.timeout(60)
def test_library_of_another_abi_version_is_import_error(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "fake.c"
    src.write_text("unsigned int fq_abi_version(void) { return 2; }\n")
    lib = tmp_path / "libfake.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, timeout=60)
    out = run_python(IMPORT, env={"FASTQUEUE_LIBRARY": str(lib)})
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "version 2" in out.stderr and "version 1" in out.stderr


@pytest.mark.timeout(60)
def test_open_queue_at_interpreter_exit_is_unlinked_quietly(qname: NameFactory) -> None:
    names = [qname(), qname(), qname()]
    script = textwrap.dedent(
        f"""
        import fastqueue
        q = fastqueue.Queue({names[0]!r}, element_size=8, capacity=2)
        q.put(b"x")
        cycle = [fastqueue.Queue({names[1]!r}, element_size=8, capacity=2)]
        cycle.append(cycle)
        class Holder:
            pass
        Holder.q = fastqueue.Queue({names[2]!r}, element_size=8, capacity=2)
        attached = fastqueue.Queue({names[0]!r}, create=False)
        """
    )
    out = run_python(script)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no "Exception ignored in __del__"
    for name in names:
        assert not (Path("/dev/shm") / name).exists()


@pytest.mark.timeout(180)
def test_too_many_handles_is_too_many_attached_error(qname: NameFactory) -> None:
    """Attaching past the participant table's size fails cleanly; closing a handle frees its
    entry. Runs in a child whose descriptor limit can be raised (every handle holds one)."""
    name = qname()
    script = textwrap.dedent(
        f"""
        import resource, fastqueue
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        with fastqueue.Queue({name!r}, element_size=8, capacity=2) as q:
            handles = []
            try:
                while len(handles) < want - 100:
                    handles.append(fastqueue.Queue({name!r}, create=False))
            except fastqueue.TooManyAttachedError as exc:
                assert {name!r} in str(exc) and "close unused handles" in str(exc), str(exc)
                print("refused after", len(handles))
            handles.pop().close()
            handles.append(fastqueue.Queue({name!r}, create=False))  # the entry was freed
            q.put(b"works")
            assert handles[-1].get() == b"works"
            for h in handles:
                h.close()
        """
    )
    # (On PyPy each close() runs gc.collect(), whose cost grows with the ~1,000 handles still
    # open: closing them all takes ~50 s there, a known cost named in the PyPy guide's notes.)
    out = run_python(script, timeout=150)
    assert out.returncode == 0, out.stderr
    if not out.stdout.startswith("refused after"):
        pytest.skip(f"descriptor limit too low to fill the participant table: {out.stdout}")
    assert int(out.stdout.split()[-1]) > 100
