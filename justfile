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
    wheels=(dist/fastqueue-*-manylinux*_"$(uname -m)".whl)
    if [[ -f ${wheels[0]} ]]; then  # in a venv of its own, so the tests below use the checkout
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        {{pypy}} -m venv "$tmp/venv"
        # --no-index: the wheel alone, as on CPython (it declares no dependency on PyPy either).
        "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index "${wheels[0]}"
        (cd "$tmp" && env -u PYTHONPATH -u FASTQUEUE_LIBRARY "$tmp/venv/bin/python" -c 'import fastqueue, sys; \
            assert "site-packages" in fastqueue.library_path(), fastqueue.library_path(); \
            q = fastqueue.Queue(element_size=256, capacity=2); q.put(b"pypy"); \
            assert q.get() == b"pypy"; q.close(); \
            print("wheel on", sys.implementation.name, "OK:", fastqueue.library_path())')
    fi
    PYTHONPATH="$PWD/py" FASTQUEUE_LIBRARY="$PWD/target/release/libfastqueue.so" "$py" -m pytest -q \
        tests/test_pypy.py tests/test_queue.py tests/test_errors.py tests/test_objects.py \
        tests/test_aio.py tests/test_join_shutdown.py tests/test_cli.py tests/test_processes.py \
        tests/test_hot_path.py tests/test_zero_copy.py tests/test_signal_windows.py \
        tests/test_hot_signals.py tests/test_mixed_kept.py tests/test_checkpoint_sweep.py

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

# cffi (ABI mode, on `cc -E -P` of the header) and bindgen (with rustc) bind fastqueue.h as it
# is, see every constant with its type, and exchange messages with a Python peer
# (tests/test_ffi_tools.py; a missing tool skips, or fails when CI=true). bindgen:
# `cargo install bindgen-cli` and libclang (Debian: libclang-dev).
# Check that cffi and bindgen bind the C header unedited and talk to Python through it.
ffi-tools: dev
    {{python}} -m pytest -q tests/test_ffi_tools.py

# The guide (docs/guide/*.rst, every page taken by glob) and the API reference from the docstrings
# (Sphinx autodoc over fastqueue.__all__) into docs/_build/html; any warning, or a public name
# missing from the reference, fails the build.
# Build the guide and the API reference into docs/_build/html (warnings are errors).
docs: dev
    rm -rf docs/_build
    {{python}} -m sphinx -W --keep-going -q -b html docs docs/_build/html
    @echo "Docs: docs/_build/html/index.html"

# Race fastqueue against multiprocessing.Queue across processes and print a table.
demo: _install
    {{python}} -m fastqueue demo

# One wheel for every Python 3.9+ and PyPy on any Linux with glibc >= 2.17 (2014 on), whatever
# glibc builds it: zig (the `ziglang` package from PyPI) links against glibc 2.17's symbols.
# Built through the package's own build backend (build_backend/fastqueue_build.py: maturin, then
# the trim that keeps maturin's cffi modules out), exactly as pip builds it from the sdist.
# Build the host's wheel into dist/ (py3-none-manylinux_2_17, i.e. manylinux2014).
wheel: (_wheel "")

# Every wheel we ship: x86_64 and aarch64 manylinux2014 (cross-built by zig; the Rust target is
# added with rustup when missing). `just test-aarch64` tests the aarch64 one under qemu.
# Build every wheel we ship into dist/ (x86_64 and aarch64 manylinux2014).
wheels: (_wheel "x86_64-unknown-linux-gnu") (_wheel "aarch64-unknown-linux-gnu")

# One wheel for `target` (a Rust target triple; empty: the host's) and `compat` (a platform tag
# family zig can link for: manylinux2014, musllinux_1_2), replacing that platform's previous
# wheel in `out`.
_wheel target compat="manylinux2014" out="dist":
    #!/usr/bin/env bash
    set -euo pipefail
    {{pip}} install -q {{build_tools}} "ziglang>=0.10"
    args="--zig --compatibility {{compat}}"
    if [[ -n "{{target}}" ]]; then
        rustup target list --installed | grep -qx "{{target}}" || rustup target add "{{target}}"
        args="$args --target {{target}}"
    fi
    arch="{{ if target == "" { "$(uname -m)" } else { replace_regex(target, "-.*", "") } }}"
    family="{{compat}}"
    family="${family%%[_0-9]*}"
    mkdir -p "{{out}}"
    rm -f "{{out}}"/fastqueue-*-"$family"*_"$arch".whl
    MATURIN_PEP517_ARGS="$args" \
    CARGO_ZIGBUILD_PYTHON_PATH="$({{python}} -c 'import sys; print(sys.executable)')" \
        {{python}} -c 'import sys; sys.path.insert(0, "build_backend"); import fastqueue_build as b; \
        print(sys.argv[1] + "/" + b.build_wheel(sys.argv[1]))' "{{out}}"

# Debian's arm64 CPython and the few arm64 libraries it needs, unpacked by `just test-aarch64`.
arm64_debs := "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libffi8"

# The aarch64 wheel (built if dist/ has none), unpacked and run by Debian's arm64 CPython 3.11
# under qemu-user (`qemu-aarch64-static -L <arm64 root>`): tests/aarch64_subset.py, i.e.
# exactly-once across forked producers and consumers with every length, SIGKILLed slot holders
# recovered, timeouts, objects, shutdown/join. Without binfmt every child is forked (never
# exec'd). qemu does not reproduce aarch64's weak memory model: `just loom` covers orderings.
# Needs qemu-user-static and apt's arm64 architecture (`dpkg --add-architecture arm64 &&
# apt-get update`, as root); the interpreter is fetched with `apt-get download` into target/.
# Test the aarch64 wheel under qemu-user with Debian's arm64 CPython.
test-aarch64:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v qemu-aarch64-static >/dev/null || {
        echo "qemu-aarch64-static not found (Debian: apt-get install qemu-user-static)" >&2; exit 1; }
    wheels=(dist/fastqueue-*-manylinux*_aarch64.whl)
    [[ -f ${wheels[0]} ]] || just _wheel aarch64-unknown-linux-gnu
    wheels=(dist/fastqueue-*-manylinux*_aarch64.whl)
    root="$PWD/target/arm64-python"
    if [[ ! -x $root/usr/bin/python3.11 ]]; then
        dpkg --print-foreign-architectures | grep -qx arm64 || {
            echo "apt has no arm64 packages: dpkg --add-architecture arm64 && apt-get update" >&2
            exit 1; }
        rm -rf "$root" "$root.debs"
        mkdir -p "$root" "$root.debs"
        (cd "$root.debs" && apt-get download -q $(printf '%s:arm64 ' {{arm64_debs}}))
        for deb in "$root.debs"/*.deb; do dpkg -x "$deb" "$root"; done
    fi
    site="$(mktemp -d)"
    trap 'rm -rf "$site"' EXIT
    {{python}} -m zipfile -e "${wheels[0]}" "$site"
    echo "test-aarch64: ${wheels[0]} on $(qemu-aarch64-static --version | head -n1)"
    # A clean environment: the arm64 interpreter must import the unpacked wheel and nothing else.
    env -i PATH=/usr/bin:/bin PYTHONPATH="$site" PYTHONDONTWRITEBYTECODE=1 \
        timeout 900 qemu-aarch64-static -L "$root" "$root/usr/bin/python3.11" \
        "{{justfile_directory()}}/tests/aarch64_subset.py"

# musllinux_1_2 wheels for x86_64 and aarch64, built by zig into target/musl-wheels/ (NOT dist/:
# they are not shipped, since no musl CPython runs them here; docs/guide/platforms.rst says
# why), and their libraries tested from C alone (tests/c/two_process_check.c: create, put and
# get across two processes, every length, SIGKILLed slot holders recovered): x86_64 built with
# musl-gcc (Debian: musl-tools) and run natively, aarch64 built with zig cc and run under
# qemu-aarch64-static with Debian's arm64 musl loader (apt-get download musl:arm64).
# Build the musllinux wheels (unshipped) and test their libraries from C.
test-musl:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v musl-gcc >/dev/null || {
        echo "musl-gcc not found (Debian: apt-get install musl-tools)" >&2; exit 1; }
    out=target/musl-wheels
    just _wheel x86_64-unknown-linux-musl musllinux_1_2 "$out"
    just _wheel aarch64-unknown-linux-musl musllinux_1_2 "$out"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    src="{{justfile_directory()}}/tests/c/two_process_check.c"
    flags=(-std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -O2)
    for arch in x86_64 aarch64; do
        wheel=("$out"/fastqueue-*-musllinux_1_2_"$arch".whl)
        {{python}} -m zipfile -e "${wheel[0]}" "$tmp/$arch"
        lib="$tmp/$arch/fastqueue/_native"
        link=(-I "$tmp/$arch/fastqueue/include" -L "$lib" -l:libfastqueue.so.1 -Wl,-rpath,"$lib")
        echo "test-musl: ${wheel[0]}"
        if [[ $arch == x86_64 ]]; then
            musl-gcc "${flags[@]}" "$src" -o "$tmp/check" "${link[@]}"
            /lib/ld-musl-x86_64.so.1 --list "$tmp/check" | grep -q "$lib/libfastqueue.so.1"
            "$tmp/check" "fq-musl-check-$$-$arch"
        else
            command -v qemu-aarch64-static >/dev/null || {
                echo "qemu-aarch64-static not found (apt-get install qemu-user-static)" >&2; exit 1; }
            root="$PWD/target/arm64-musl"
            if [[ ! -e $root/lib/ld-musl-aarch64.so.1 ]]; then
                rm -rf "$root" "$root.debs"
                mkdir -p "$root" "$root.debs"
                (cd "$root.debs" && apt-get download -q musl:arm64)
                dpkg -x "$root.debs"/musl_*.deb "$root"
            fi
            {{python}} -m ziglang cc -target aarch64-linux-musl "${flags[@]}" "$src" \
                -o "$tmp/check-arm" "${link[@]}"
            qemu-aarch64-static -L "$root" "$tmp/check-arm" "fq-musl-check-$$-$arch"
        fi
    done

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
    {{python}} -m auditwheel show dist/fastqueue-*-manylinux*_$(uname -m).whl | tee /dev/stderr | {{python}} -c \
        'import re, sys; t = " ".join(sys.stdin.read().split()); \
        m = re.search(r"consistent with the following platform tag: \"manylinux_2_(\d+)_", t); \
        sys.exit(0 if m and int(m.group(1)) <= 17 else "auditwheel: not manylinux_2_17")'
    @just _venv-smoke "dist/fastqueue-*-manylinux*_$(uname -m).whl"

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
    # A wheel installs offline with nothing else (it has no run-time dependency); an sdist needs
    # the index for its build requirements (maturin, cffi).
    index=""
    [[ ${dists[0]} == *.whl ]] && index="--no-index"
    "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check $index "$PWD/${dists[0]}"
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

# A producer's CPU ns per put in 1 -> N against 1 -> 1, consumers sleeping and spinning
# (--help lists the options; --perf attaches perf stat for cache misses).
bench-producer-cost *args: _install
    {{python}} perf/producer_cost.py {{args}}

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
