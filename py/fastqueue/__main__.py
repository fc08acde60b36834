"""``python -m fastqueue [demo] [--scale X]``: run the demo (see :mod:`fastqueue._demo`).

``python -m fastqueue ls | stat | rm | gc | bench``: inspect and clean up queues in /dev/shm
(see :mod:`fastqueue._cli`); the ``fastqueue`` console script is this same entry point.

``python -m fastqueue --cflags --libs``: the compiler and linker flags that build a C program
against this installation's header and library (see :mod:`fastqueue._paths`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = """\
usage: python -m fastqueue [demo] [--scale X]
       python -m fastqueue [--cflags] [--libs]
       python -m fastqueue {ls,stat,rm,gc,bench,bridge} ...   (also as the `fastqueue` command)

  demo    race fastqueue.Queue against multiprocessing.Queue across two processes and print
          a table (the default command; `python -m fastqueue demo --help` for its options)
  ls      list every fastqueue segment in /dev/shm (capacity, depth, size, live processes)
  stat    header fields and counters of one queue (--json)
  rm      remove queue names
  gc      remove the queues no live process uses (--dry-run)
  bench   the same race as demo
  bridge  move messages between a local queue and a Redis stream (fastqueue bridge --help)
  --cflags  print the compiler flags for C/C++ code using fastqueue.h (-I<folder of the header>)
  --libs    print the linker flags for the library this Python loads (-L, -l:, -Wl,-rpath)
"""

#: The build-flag options, handled before any command.
FLAG_OPTIONS = ("--cflags", "--libs")
#: The operator's commands (fastqueue._cli; kept in step with its COMMANDS).
_CLI_COMMANDS = ("ls", "stat", "rm", "gc", "bench", "bridge")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args and args[0] in FLAG_OPTIONS:
        return _print_flags(args)
    if args and args[0] in _CLI_COMMANDS:
        from fastqueue._cli import main as cli_main

        return cli_main(args)
    if args and args[0] == "demo":
        args = args[1:]
    elif args and not args[0].startswith("-"):
        print(
            f"python -m fastqueue: unknown command {args[0]!r}\n\n{USAGE}", end="", file=sys.stderr
        )
        return 2
    from fastqueue._demo import main as demo_main

    return demo_main(args)


def _print_flags(args: list[str]) -> int:
    """``--cflags`` and/or ``--libs``: the flags on one line, in the order asked (as pkg-config)."""
    unknown = [a for a in args if a not in FLAG_OPTIONS]
    if unknown:
        why = f"{unknown[0]!r} cannot follow {args[0]}"
        print(f"python -m fastqueue: {why}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    from fastqueue import _paths

    flags = {"--cflags": _paths.cflags, "--libs": _paths.libs}
    print(" ".join(f for a in dict.fromkeys(args) for f in flags[a]()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
