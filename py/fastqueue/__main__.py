"""``python -m fastqueue [demo] [--scale X]``: run the demo (see :mod:`fastqueue._demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = """\
usage: python -m fastqueue [demo] [--scale X]

  demo    race fastqueue.Queue against multiprocessing.Queue across two processes and print
          a table (the default command; `python -m fastqueue demo --help` for its options)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args and args[0] == "demo":
        args = args[1:]
    elif args and not args[0].startswith("-"):
        print(
            f"python -m fastqueue: unknown command {args[0]!r}\n\n{USAGE}", end="", file=sys.stderr
        )
        return 2
    from fastqueue._demo import main as demo_main

    return demo_main(args)


if __name__ == "__main__":
    sys.exit(main())
