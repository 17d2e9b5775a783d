"""Finding the ``App`` a command line names: ``MODULE:ATTR``, as uvicorn
reads it.

MODULE may be dotted (``pkg.main``) and so may ATTR (``main:container.app``).
A mistake in the name itself (no such module, no such attribute, not an
App) raises ``AppLoadError`` with a message that names what is wrong; an
exception raised while the module runs (an ``ImportError`` of one of its
own imports, a ``SyntaxError``) propagates unchanged, with its traceback,
since the mistake is in that module's code.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from .applications import App

__all__ = ["AppLoadError", "import_module", "load_app"]


class AppLoadError(Exception):
    """The command line's ``MODULE:ATTR`` does not name an ``App``."""


def load_app(target: str, *, factory: bool = False) -> App:
    """Imports ``target`` (``MODULE:ATTR``) and returns the ``App`` it
    names; with ``factory``, ATTR is a callable that returns one and is
    called with no arguments.

    Raises ``AppLoadError`` for a malformed target, a module or attribute
    that does not exist, or something that is not an ``App``.
    """
    module_name, attr_path = split_target(target)
    module = import_module(module_name)
    found: Any = module
    walked = []
    for attr in attr_path.split("."):
        walked.append(attr)
        try:
            found = getattr(found, attr)
        except AttributeError:
            where = f"module {module_name!r}" if len(walked) == 1 else f"{module_name}:{'.'.join(walked[:-1])}"
            raise AppLoadError(f"attribute {attr!r} not found in {where}") from None
    if factory:
        if not callable(found):
            raise AppLoadError(f"{target} is not callable (it is {_kind(found)}); --factory needs a function that returns an App")
        found = found()
        if not isinstance(found, App):
            raise AppLoadError(f"the factory {target} returned {_kind(found)}, not a sufast.App")
        return found
    if not isinstance(found, App):
        hint = "; if it is a function that returns an App, add --factory" if callable(found) and not isinstance(found, type) else ""
        raise AppLoadError(f"{target} is {_kind(found)}, not a sufast.App{hint}")
    return found


def split_target(target: str) -> "tuple[str, str]":
    """``("pkg.main", "app")`` for ``"pkg.main:app"``; raises
    ``AppLoadError`` unless both halves are there."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path or any(not part for part in attr_path.split(".")):
        raise AppLoadError(
            f"{target!r} is not MODULE:ATTR; name the module and the App in it, for example main:app "
            "(the App called app in main.py)"
        )
    return module_name, attr_path


def import_module(name: str) -> ModuleType:
    """Imports module ``name``. Raises ``AppLoadError`` when the module
    itself (or a package on its dotted path) does not exist; a missing
    module that *it* imports propagates as the ``ModuleNotFoundError`` it
    is, with its traceback."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        parts = name.split(".")
        prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if exc.name not in prefixes:
            raise
        first = sys.path[0] if sys.path else "sys.path"
        raise AppLoadError(f"could not import module {name!r}: no module named {exc.name!r} (searched {first} first)") from None


def _kind(value: Any) -> str:
    """``an int``, ``the class Foo``, ``a function``: how messages name
    what was found instead of an App."""
    if isinstance(value, type):
        return f"the class {value.__module__}.{value.__qualname__}"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"
