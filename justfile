# Every routine task of fastqueue. `just` lists them; `pip install rust-just` gets `just`.
#
# Python commands run with $PYTHON (default: python3), i.e. in whatever environment is active:
# a virtualenv, pyenv, conda... `just dev` installs fastqueue there in editable mode.

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env("PYTHON", "python3")
pip := python + " -m pip --disable-pip-version-check"
# pip warns about running as root (CI and containers do); the warning is noise here.
export PIP_ROOT_USER_ACTION := env("PIP_ROOT_USER_ACTION", "ignore")
# The build tools of pyproject.toml's [build-system] (installed up front so that `just dev` can
# build without an isolated environment and reuse cargo's incremental build in target/).
build_tools := '"maturin>=1.16,<2" "cffi>=1.15"'
cc := env("CC", "cc")

# List the recipes.
default:
    @just --list --unsorted

# Compile the Rust library (target/release/libfastqueue.so).
build:
    cargo build --release -p fastqueue

# Install fastqueue editable plus the dev tools (Python edits are live; rerun after Rust edits).
dev: (_install ".[dev]")

# Editable install of fastqueue (built by maturin from core/) into the active Python.
_install target=".":
    {{pip}} install -q {{build_tools}}
    {{pip}} install -q --no-build-isolation -e "{{target}}"
    @{{python}} -c 'import fastqueue, fastqueue._ffi as f; print("fastqueue", fastqueue.__version__, "uses", f.library_path())'

# Run every test: the Rust tests, then pytest (unit, property, cross-process, C interop, doctests).
test: dev
    cargo test --workspace
    {{python}} -m pytest

# The tests that do not need CPython-only tools (cargo, a C compiler, the header checks), run by
# PyPy (Debian's `pypy3`, >= 3.9) from a virtualenv in target/pypy-venv against the library
# `just build` makes. numpy is installed from a wheel when PyPI has one for this PyPy; without
# it the numpy tests are skipped (and say so). If dist/ holds a wheel (`just wheel`), it is also
# installed there and imported from outside the checkout: the same wheel serves PyPy.
# Run the Python tests on PyPy (pypy= names the interpreter).
test-pypy pypy="pypy3": build
    #!/usr/bin/env bash
    set -euo pipefail
    command -v {{pypy}} >/dev/null || { echo "{{pypy}} not found (Debian: apt-get install pypy3 pypy3-venv)" >&2; exit 1; }
    venv=target/pypy-venv
    [[ -x $venv/bin/python ]] || {{pypy}} -m venv "$venv"
    py="$PWD/$venv/bin/python"
    "$py" --version
    "$py" -m pip install -q --disable-pip-version-check pytest pytest-timeout hypothesis
    "$py" -m pip install -q --disable-pip-version-check --only-binary=:all: numpy || \
        echo "note: no numpy wheel for this PyPy; the numpy tests will be skipped" >&2
    wheels=(dist/fastqueue-*.whl)
    if [[ -f ${wheels[0]} ]]; then  # in a venv of its own, so the tests below use the checkout
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        {{pypy}} -m venv "$tmp/venv"
        "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "${wheels[0]}"
        (cd "$tmp" && env -u PYTHONPATH -u FASTQUEUE_LIBRARY "$tmp/venv/bin/python" -c 'import fastqueue, sys; \
            assert "site-packages" in fastqueue.library_path(), fastqueue.library_path(); \
            q = fastqueue.Queue(element_size=256, capacity=2); q.put(b"pypy"); \
            assert q.get() == b"pypy"; q.close(); \
            print("wheel on", sys.implementation.name, "OK:", fastqueue.library_path())')
    fi
    PYTHONPATH="$PWD/py" FASTQUEUE_LIBRARY="$PWD/target/release/libfastqueue.so" "$py" -m pytest -q \
        tests/test_pypy.py tests/test_queue.py tests/test_errors.py tests/test_objects.py \
        tests/test_aio.py tests/test_join_shutdown.py tests/test_cli.py tests/test_processes.py \
        tests/test_hot_path.py tests/test_zero_copy.py

# Every check CI makes besides the tests: clippy, rustfmt, ruff, mypy --strict.
lint: dev
    cargo clippy --workspace --all-targets -- -D warnings
    cargo fmt --all --check
    {{python}} -m ruff check .
    {{python}} -m ruff format --check .
    {{python}} -m mypy --strict py/

# Format Rust and Python sources in place, and apply ruff's safe fixes.
fmt:
    cargo fmt --all
    {{python}} -m ruff check --fix-only --quiet .
    {{python}} -m ruff format .

# Every export, prototype, status value and ctypes declaration of core/src/ffi.rs is checked
# against the hand-written header, which must also compile as C89, C99, C++11 and C++17.
# Prove that fastqueue.h matches the library (exports, ffi.rs, status values, _ffi's ctypes).
header-check: build
    FASTQUEUE_LIBRARY="$PWD/target/release/libfastqueue.so" {{python}} -m pytest -q tests/test_header.py

# The API reference from the docstrings (Sphinx autodoc over fastqueue.__all__) into
# docs/_build/html; any warning, or a public name missing from it, fails the build.
# Build the API reference into docs/_build/html (warnings are errors).
docs: dev
    rm -rf docs/_build
    {{python}} -m sphinx -W --keep-going -q -b html docs docs/_build/html
    @echo "API reference: docs/_build/html/index.html"

# Race fastqueue against multiprocessing.Queue across processes and print a table.
demo: _install
    {{python}} -m fastqueue demo

# One wheel for every Python 3.9+ and PyPy on any Linux with glibc >= 2.17 (2014 on), whatever
# glibc builds it: zig (the `ziglang` package from PyPI) links against glibc 2.17's symbols.
# Build the wheel into dist/ (py3-none-manylinux_2_17, i.e. manylinux2014).
wheel:
    {{pip}} install -q {{build_tools}} "ziglang>=0.10"
    rm -f dist/fastqueue-*.whl
    CARGO_ZIGBUILD_PYTHON_PATH="$({{python}} -c 'import sys; print(sys.executable)')" \
        {{python}} -m maturin build --release --zig --compatibility manylinux2014 --out dist

# Build the source distribution into dist/.
sdist:
    {{pip}} install -q {{build_tools}}
    {{python}} -m maturin sdist --out dist

# auditwheel must call it manylinux_2_17 (or older); then a fresh virtualenv with no Rust on
# PATH installs it, imports every module it holds, builds the C examples with
# `python -m fastqueue --cflags --libs` and exchanges messages between C and Python
# (tests/smoke_installed.py).
# Check the wheel in dist/ as users get it: auditwheel, then a smoke test in a fresh venv.
wheel-check:
    {{pip}} install -q "auditwheel>=6"
    {{python}} -m auditwheel show dist/fastqueue-*.whl | tee /dev/stderr | {{python}} -c \
        'import re, sys; t = " ".join(sys.stdin.read().split()); \
        m = re.search(r"consistent with the following platform tag: \"manylinux_2_(\d+)_", t); \
        sys.exit(0 if m and int(m.group(1)) <= 17 else "auditwheel: not manylinux_2_17")'
    @just _venv-smoke dist/fastqueue-*.whl

# A fresh virtualenv builds it from source (cargo, via pip); the installed package must pass
# the same C/Python smoke test as the wheel.
# Check the sdist in dist/: pip builds it with cargo in a fresh venv, then the smoke test.
sdist-check:
    @just _venv-smoke dist/fastqueue-*.tar.gz

# pip-installs `dist` into a new virtualenv and runs tests/smoke_installed.py there, outside the
# checkout (PATH keeps cargo only for building an sdist).
_venv-smoke dist:
    #!/usr/bin/env bash
    set -euo pipefail
    dists=({{dist}})
    [[ ${#dists[@]} -eq 1 && -f ${dists[0]} ]] || { echo "want exactly one of {{dist}}" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    {{python}} -m venv "$tmp/venv"
    "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$PWD/${dists[0]}"
    path="$tmp/venv/bin:/usr/bin:/bin"
    [[ ${dists[0]} == *.tar.gz ]] && path="$path:$(dirname "$(command -v cargo)")"
    cd "$tmp" && env PATH="$path" python "{{justfile_directory()}}/tests/smoke_installed.py" \
        --installed --examples "{{justfile_directory()}}/examples/c"

# Compile the C examples (examples/c) against the built library into target/examples/.
c-examples: build
    mkdir -p target/examples
    for prog in producer consumer; do \
        {{cc}} -std=c99 -Wall -Wextra -Werror -O2 -I core/include examples/c/$prog.c \
            -L target/release -lfastqueue -Wl,-rpath,"$PWD/target/release" -o target/examples/$prog; \
    done
    @echo "built target/examples/producer and target/examples/consumer"

# The benchmarks (pyperf, side by side with the peers); results in perf/results/.
bench: _install _bench-deps
    {{python}} perf/run.py

# A quick, rough run of the benchmarks.
bench-quick: _install _bench-deps
    {{python}} perf/run.py --quick

# The producers x consumers topologies alone; quick unless --full (--help lists the options).
bench-topology *args: _install _bench-deps
    {{python}} perf/bench_topology.py --quick {{args}}

# How long creating a 1 GiB and an 8 GiB queue takes, against other ways of reserving pages
# (one segment at a time; --huge also on a huge=always tmpfs in a private mount namespace, root).
bench-create *args: _install
    {{python}} perf/bench_create.py {{args}}

# Starts its own redis-server (--url to use a running one; --help lists the options).
# RedisQueue vs bare redis-py doing the same commands, and the bridge's rate.
bench-redis *args: (_install ".[redis]")
    {{python}} perf/bench_redis.py {{args}}

# pyperf and the peers measured against (perf/requirements.txt).
_bench-deps:
    {{pip}} install -q -r perf/requirements.txt || \
        echo "warning: not every benchmark requirement installed; missing peers are reported as n/a" >&2

# Remove queue segments leaked by crashed runs (/dev/shm/fq-*). Only do this when nothing runs.
clean-shm:
    find /dev/shm -maxdepth 1 -name 'fq-*' -print -delete

# Remove build outputs.
clean:
    cargo clean
    rm -rf dist py/fastqueue/_native

# Stress random cross-process examples for `minutes` (`just soak 10` or `just soak minutes=10`).
soak minutes="10": _install
    {{python}} tests/soak.py --minutes {{trim_start_match(minutes, "minutes=")}}

# Model-check the ring with loom (2 producers x 2 consumers, capacities 1 and 2, recovery),
# preemption bound 1: a minute or two; then the wake protocol (core/tests/loom_wait.rs: wake-one,
# hand-over, spinners, hand-on), whose small models run at bound 2: under a minute.
# Its own target dir, since --cfg loom rebuilds everything.
loom:
    LOOM_MAX_PREEMPTIONS=1 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test --release --test loom
    LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test --release --test loom_wait
    LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test --release --test loom_lease

# The same models one preemption deeper: tens of minutes.
loom-deep:
    LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test --release --test loom
    LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
        cargo test --release --test loom_wait
