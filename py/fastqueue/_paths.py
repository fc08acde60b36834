"""Where fastqueue keeps its C header and its native library, for building against it.

A C, C++ or Rust program that wants to share queues with Python can compile and link against the
very files the installed package uses, the way ``numpy.get_include()`` serves C extensions:

.. code-block:: sh

    cc $(python -m fastqueue --cflags) app.c $(python -m fastqueue --libs) -o app

>>> import os, fastqueue
>>> os.path.isfile(os.path.join(fastqueue.include_dir(), "fastqueue.h"))
True
>>> os.path.isfile(fastqueue.library_path())
True

This module imports no ctypes of its own: :func:`library_path` asks :mod:`fastqueue._ffi` which file
it loaded (``$FASTQUEUE_LIBRARY`` or the bundled ``_native/libfastqueue.so.1``), so the flags always
name the library Python itself uses.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cflags", "include_dir", "library_path", "libs"]


def include_dir() -> str:
    """The folder holding ``fastqueue.h`` (pass it to the compiler as ``-I``)."""
    return str(Path(__file__).resolve().parent / "include")


def library_path() -> str:
    """The absolute path of the native library this package loaded (``libfastqueue.so.1`` in a
    wheel, or ``$FASTQUEUE_LIBRARY``). Link against it, or ``dlopen()`` it."""
    from . import _ffi  # loads the library, as importing fastqueue does anyway

    return os.path.abspath(_ffi.library_path())


def cflags() -> list[str]:
    """Compiler flags: ``-I<include_dir>``."""
    return [f"-I{include_dir()}"]


def libs() -> list[str]:
    """Linker flags that link a program against :func:`library_path` and let it find the library at
    run time (an rpath to its folder): ``-L<dir> -l:<file> -Wl,-rpath,<dir>``. The library has
    no SONAME, so the program records the file name ``-l:`` gives and looks for it in the rpath.
    (``-l:`` is understood by GNU ld, gold, lld and mold; macOS' ld would need the full path.)"""
    lib = Path(library_path())
    return [f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"]
