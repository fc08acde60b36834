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

# Prove the hand-written C header is the library's contract: every export declared and every
# prototype, status value and ctypes declaration matching core/src/ffi.rs; C89..C++17 compile.
header-check: build
    FASTQUEUE_LIBRARY="$PWD/target/release/libfastqueue.so" {{python}} -m pytest -q tests/test_header.py

# Race fastqueue against multiprocessing.Queue across processes and print a table.
demo: _install
    {{python}} -m fastqueue demo

# Build the wheel into dist/ (py3-none-<platform>: one wheel for every Python 3.9+ and PyPy).
wheel:
    {{pip}} install -q {{build_tools}}
    {{python}} -m maturin build --release --out dist

# Build the source distribution into dist/.
sdist:
    {{pip}} install -q {{build_tools}}
    {{python}} -m maturin sdist --out dist

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
