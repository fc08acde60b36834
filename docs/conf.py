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


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Shows no private base class (such as the asyncio mixin of fastqueue._aio) as a base."""
    bases[:] = [b for b in bases if not b.__module__.startswith("fastqueue._")] or [object]


def setup(app: Any) -> None:
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("build-finished", _check_every_public_name)
