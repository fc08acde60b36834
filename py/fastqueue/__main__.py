"""``fastqueue`` / ``python -m fastqueue``: the command line.

* ``demo [--scale X]`` (and its alias ``bench``): race fastqueue against multiprocessing.Queue
  (see :mod:`fastqueue._demo`).
* ``ls | stat | rm | gc``: inspect and clean up queues in /dev/shm (see :mod:`fastqueue._cli`).
* ``--cflags --libs``: the compiler and linker flags that build a C program against this
  installation's header and library (see :mod:`fastqueue._paths`).

With no arguments it prints the usage and exits with status 2. Every message names the program as
it was run: ``fastqueue`` (the console script) or ``python -m fastqueue``.

To add a subcommand: add its name to :data:`fastqueue._cli.COMMANDS` (and to ``_CLI_COMMANDS``
below, which must list the same names), its parser and ``_cmd_<name>`` function in ``_cli._parser``,
a line to ``USAGE`` below, and a line to the command list of docs/guide/operations.rst
(tests/test_cli.py checks that every command and flag of the parser appears there).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["main", "program_name"]

USAGE = """\
usage: {prog} COMMAND [ARGS...]
       {prog} [--cflags] [--libs]

commands:
  demo    race fastqueue.Queue against multiprocessing.Queue across two processes and print
          a table (`{prog} demo --help` for its options)
  bench   the same race as demo
  ls      list every fastqueue segment in /dev/shm (capacity, depth, size, live processes)
  stat    header fields and counters of one queue
  rm      remove queue names (--force: also what is not a usable fastqueue queue)
  gc      remove the queues no live process uses (--dry-run only lists them)
  bridge  move messages between a local queue and a Redis stream (`{prog} bridge --help`)

options:
  -h, --help  print this help
  --cflags    print the compiler flags for C/C++ code using fastqueue.h (-I<folder of the header>)
  --libs      print the linker flags for the library this Python loads (-L, -l:, -Wl,-rpath)

`{prog} COMMAND --help` describes each command. Exit status: 0 success, 1 an error,
2 a usage error.
"""

#: The build-flag options, handled before any command.
FLAG_OPTIONS = ("--cflags", "--libs")
#: The commands that run the demo.
_DEMO_COMMANDS = ("demo", "bench")
#: The operator's commands (fastqueue._cli; the same names as its COMMANDS, checked by a test).
#: Kept here so that `--help` and `--cflags` work without loading the native library.
_CLI_COMMANDS = ("ls", "stat", "rm", "gc", "bridge")


def program_name() -> str:
    """The name this program was run as, the way argparse names it: ``fastqueue`` for the console
    script, ``python -m fastqueue`` (with the interpreter's own name) for the module."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 in ("-c", "-m") or os.path.basename(argv0) == "__main__.py":
        return f"{os.path.basename(sys.executable) or 'python'} -m fastqueue"
    return os.path.basename(argv0)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = program_name()
    if not args:
        print(USAGE.format(prog=prog), end="", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE.format(prog=prog), end="")
        return 0
    if args[0] in FLAG_OPTIONS:
        return _print_flags(args, prog)
    if args[0] in _CLI_COMMANDS:
        from fastqueue._cli import main as cli_main

        return cli_main(args, prog=prog)
    if args[0] in _DEMO_COMMANDS:
        from fastqueue._demo import main as demo_main

        return demo_main(args[1:], prog=f"{prog} {args[0]}")
    what = "option" if args[0].startswith("-") else "command"
    print(
        f"{prog}: unknown {what} {args[0]!r}\n\n{USAGE.format(prog=prog)}", end="", file=sys.stderr
    )
    return 2


def _print_flags(args: list[str], prog: str) -> int:
    """``--cflags`` and/or ``--libs``: the flags on one line, in the order asked (as pkg-config)."""
    unknown = [a for a in args if a not in FLAG_OPTIONS]
    if unknown:
        why = f"{unknown[0]!r} cannot follow {args[0]}"
        print(f"{prog}: {why}\n\n{USAGE.format(prog=prog)}", end="", file=sys.stderr)
        return 2
    from fastqueue import _paths

    flags = {"--cflags": _paths.cflags, "--libs": _paths.libs}
    print(" ".join(f for a in dict.fromkeys(args) for f in flags[a]()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
