"""Sphinx configuration of fastqueue's API reference (``just docs`` builds it into docs/_build/).

The reference is built from the docstrings of the public names, ``fastqueue.__all__``, through
``fastqueue`` itself (never private module paths), so it does not depend on how the package is
split into modules. Warnings are errors (``just docs`` passes ``-W``), and the build fails if any
public name is missing from the reference (:func:`_check_every_public_name`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The package of this checkout (py/), whatever else is installed.
sys.path.insert(0, str(ROOT / "py"))

import fastqueue  # noqa: E402

project = "fastqueue"
author = "the fastqueue authors"
copyright = "the fastqueue authors"
release = version = fastqueue.__version__

extensions = ["sphinx.ext.autodoc"]
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    # Members a class inherits are documented with it, except those of these classes: the
    # builtin exceptions' own, and the public queues' (documented once, on the queue that defines
    # them). So Queue shows the asyncio methods of its private base (aget, aput) as its own.
    "inherited-members": "BaseException,OSError,Queue,ObjectQueue,JoinableQueue",
}
autodoc_member_order = "bysource"
# Signatures as written; the annotations are in the signatures already.
autodoc_typehints = "signature"
# Defaults as written in the source (mode=0o600, not 384).
autodoc_preserve_defaults = True
autoclass_content = "both"
# `Queue.__init__`'s docstring and the class docstring both describe construction.
autodoc_class_signature = "mixed"

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []


def _check_every_public_name(app: Any, exception: BaseException | None) -> None:
    """Fails the build if a name of ``fastqueue.__all__`` has no entry in the reference."""
    if exception is not None:
        return
    objects = app.env.get_domain("py").objects
    missing = [name for name in fastqueue.__all__ if f"fastqueue.{name}" not in objects]
    if missing:
        from sphinx.util import logging

        logging.getLogger(__name__).error(
            "public names of fastqueue.__all__ missing from the API reference: %s "
            "(give them a docstring, or document them in docs/api.rst)",
            ", ".join(missing),
        )
        app.statuscode = 1


def _status_names() -> dict[int, str]:
    """Status value -> its C name (``FQ_ERR_EXISTS``...), from the constants of fastqueue._ffi."""
    from fastqueue import _ffi

    names = ("EMPTY", "FULL", "SHUTDOWN")
    return {
        getattr(_ffi, n): f"FQ_{n}"
        for n in dir(_ffi)
        if (n.startswith("ERR_") or n in names) and isinstance(getattr(_ffi, n), int)
    }


def _statuses(cls: type) -> list[int]:
    """Every status a caught ``cls`` can carry: its class's own, and those the status table of
    fastqueue._errors maps to it."""
    from fastqueue import _errors

    found = {status for status, (c, _, _) in _errors._TABLE.items() if c is cls}
    if "status" in vars(cls):
        found.add(vars(cls)["status"])
    return sorted(found, key=lambda s: (s < 0, abs(s)))


def _exception_status(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Appends to each exception's text the ``status`` a caught one carries."""
    if what != "exception" or obj is fastqueue.FastQueueError:
        return
    if not (isinstance(obj, type) and issubclass(obj, fastqueue.FastQueueError)):
        return
    names = _status_names()
    shown = [f"{s} (``{names[s]}``)" for s in _statuses(obj)]
    if not shown:
        text = "``status`` is 0: the library has no status code for this failure."
    elif len(shown) == 1:
        text = f"``status`` is {shown[0]}."
    else:
        text = f"``status`` is {', '.join(shown[:-1])} or {shown[-1]}, as the library reported."
    if obj is fastqueue.InternalError:
        text = text[:-1] + ", or any status this version of the package does not know."
    lines.extend(["", text])


def _skip_status(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """An exception's ``status`` is stated in its text (:func:`_exception_status`), not as an
    attribute whose class value (0, inherited) a caught instance need not have."""
    return True if what == "exception" and name == "status" else None


def _no_protocol_signature(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: str, return_annotation: str
) -> tuple[str, str] | None:
    """A Protocol (Serializer) is a shape to match, never called: no ``(*args, **kwargs)``."""
    if what == "class" and getattr(obj, "_is_protocol", False):
        return "", return_annotation
    return None


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Shows no private base class (such as the asyncio mixin of fastqueue._aio) as a base."""
    bases[:] = [b for b in bases if not b.__module__.startswith("fastqueue._")] or [object]


def setup(app: Any) -> None:
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-docstring", _exception_status)
    app.connect("autodoc-skip-member", _skip_status)
    app.connect("autodoc-process-signature", _no_protocol_signature)
    app.connect("build-finished", _check_every_public_name)
