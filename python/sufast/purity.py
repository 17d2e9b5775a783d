"""Whether a handler that runs once at registration may have given an
answer that goes stale: its code (and that of the functions of its own
module it calls) is read for names bound to objects that can change and
for calls that are not known to give the same result each time (the
clock, random numbers, I/O, a method of a global object).

It reads the bytecode, so it runs nothing; what it cannot see (a value
reached through a function argument, ``getattr`` with a computed name)
it does not report."""

from __future__ import annotations

import builtins
import dis
import enum
import os
import sys
import sysconfig
import types
from typing import Any, Dict, Iterator, List, Optional, Set

from .responses import Response

__all__ = ["stale_reasons"]

#: Modules whose functions give the same result for the same arguments.
PURE_MODULES = frozenset(
    {
        "abc", "base64", "binascii", "cmath", "collections", "copy", "dataclasses", "decimal", "enum",
        "fractions", "functools", "hashlib", "hmac", "html", "itertools", "json", "keyword", "math",
        "numbers", "operator", "re", "statistics", "string", "struct", "sufast", "textwrap", "typing",
        "unicodedata", "zlib", "_json", "_operator", "_functools", "_collections", "_struct", "_sre",
        "_hashlib", "_blake2", "_sha256", "_sha512", "_md5", "_sha1", "_sha2", "_sha3", "_string",
        "_decimal", "_pydecimal", "posixpath", "ntpath", "_abc", "msgspec", "orjson", "pydantic",
    }
)

#: Builtins whose result depends on more than their arguments.
IMPURE_BUILTINS = frozenset({"open", "input", "globals", "locals", "vars", "exec", "eval", "__import__", "breakpoint", "id"})

# How deep calls into the handler's own module are followed.
_DEPTH = 3

_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF"})
_ATTRS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


def stale_reasons(function: Any) -> List[str]:
    """Why ``function``'s result may change after it ran once: each reason
    names what it reads or calls ("reads ITEMS, a list that can change").
    Never raises: code it cannot read gives no reasons."""
    try:
        return _reasons(function, 0, set())
    except Exception:
        return []


def _reasons(function: Any, depth: int, seen: Set[Any]) -> List[str]:
    function = getattr(function, "__func__", function)  # a bound method
    code = getattr(function, "__code__", None)
    if code is None or code in seen:
        return []
    seen.add(code)
    names = getattr(function, "__globals__", {})
    closure: Dict[str, Any] = {}
    for name, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or ()):
        try:
            closure[name] = cell.cell_contents
        except ValueError:  # not bound yet
            pass
    found: List[str] = []
    for chain in _chains(code):
        reason = _judge(chain, names, closure, function, depth, seen)
        if reason is not None and reason not in found:
            found.append(reason)
    return found


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code nested in it (comprehensions, lambdas)."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _codes(constant)


def _chains(code: types.CodeType) -> Iterator[List[Any]]:
    """Every dotted name the code loads: ``["time", "time"]`` for
    ``time.time``, the first item ``(kind, name)``."""
    for nested in _codes(code):
        chain: Optional[List[Any]] = None
        for instruction in dis.get_instructions(nested):
            op = instruction.opname
            if op in _LOADS and isinstance(instruction.argval, str):
                if chain is not None:
                    yield chain
                kind = "closure" if op in ("LOAD_DEREF", "LOAD_CLASSDEREF") else "global"
                if kind == "closure" and instruction.argval not in nested.co_freevars:
                    chain = None  # a cell of the function's own: a local
                    continue
                chain = [(kind, instruction.argval)]
            elif op in _ATTRS and chain is not None and isinstance(instruction.argval, str):
                chain.append(instruction.argval)
            elif op in ("PUSH_NULL", "CACHE", "EXTENDED_ARG") and chain is not None:
                continue
            else:
                if chain is not None:
                    yield chain
                chain = None
        if chain is not None:
            yield chain


_MISSING = object()


def _judge(chain: List[Any], names: Dict[str, Any], closure: Dict[str, Any], function: Any, depth: int, seen: Set[Any]) -> Optional[str]:
    kind, root = chain[0]
    if kind == "closure":
        value = closure.get(root, _MISSING)
    else:
        value = names.get(root, _MISSING)
        if value is _MISSING:
            value = getattr(builtins, root, _MISSING)
            if value is not _MISSING:
                return f"calls {root}()" if root in IMPURE_BUILTINS else None
    if value is _MISSING:
        return None
    dotted = root
    origin = _module_of(value)
    for attribute in chain[1:]:
        if not _inert(value):
            return _mutable(dotted, value)
        try:
            value = getattr(value, attribute)
        except Exception:
            return None
        dotted += f".{attribute}"
        if origin is None:
            origin = _module_of(value)
    if isinstance(value, (types.ModuleType, type)):
        return None  # a module named, a class made: nothing read yet
    if callable(value) and origin is not None and _library(origin):
        if origin.split(".")[0] in PURE_MODULES:
            return None
        return f"calls {dotted} (from {origin}), which is not known to give the same result every time"
    if isinstance(value, (types.FunctionType, types.MethodType)):
        owner = getattr(value, "__self__", None)
        if owner is not None and not _inert(owner):
            return f"calls {dotted}, a method of a {type(owner).__name__} that can change"
        if depth < _DEPTH:
            inner = _reasons(value, depth + 1, seen)
            if inner:
                return f"calls {dotted}, which {inner[0]}"
        return None
    if isinstance(value, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        owner = getattr(value, "__self__", None)
        if owner is not None and not isinstance(owner, (types.ModuleType, type)) and not _inert(owner):
            return f"calls {dotted}, a method of a {type(owner).__name__} that can change"
        return None
    if not _inert(value):
        return _mutable(dotted, value)
    return None


def _mutable(dotted: str, value: Any) -> str:
    return f"reads {dotted}, a {type(value).__name__} that can change after registration"


def _module_of(value: Any) -> Optional[str]:
    """The module ``value`` is, or belongs to (for functions and classes)."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        module = getattr(value, "__module__", None)
        return module if isinstance(module, str) and module != "builtins" else None
    return None


_LIBRARY_DIRS = tuple(
    {os.path.realpath(path) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib") for path in [sysconfig.get_paths().get(key)] if path}
)


def _library(module: str) -> bool:
    """Whether ``module`` is the standard library's or an installed
    package's (judged by name), not the application's (whose functions
    are read in turn)."""
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    if not path:
        return True  # built in
    return os.path.realpath(path).startswith(_LIBRARY_DIRS) or module.split(".")[0] == "sufast"


def _inert(value: Any) -> bool:
    """Whether ``value`` cannot change: constants, tuples of them, and the
    things code is made of (modules, classes, functions)."""
    if value is None or isinstance(
        value,
        (bool, int, float, complex, str, bytes, range, frozenset, type, types.ModuleType, types.FunctionType,
         types.BuiltinFunctionType, types.MethodType, enum.Enum, property, staticmethod, classmethod),
    ):
        return True
    if isinstance(value, tuple):
        return all(_inert(item) for item in value)
    module = type(value).__module__
    if module in ("typing", "typing_extensions"):
        return True
    # A response made once to be returned as it is: routes copy what they send.
    return isinstance(value, Response)
