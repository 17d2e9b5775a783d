"""JSON as sufast sends and reads it: compact UTF-8, exact numbers, and
the values JSON has no type for (dataclasses, models, dates, enums)
turned into ones it has.

orjson, when it is installed, encodes and decodes; what it refuses or
would change goes to the standard library, so the value sent or read is
the same either way: integers beyond 64 bits, keys that are not strings,
NaN and infinities (refused, where orjson writes ``null``), and bodies
that are not UTF-8. Floats are written in their shortest exact form by
both, though not always alike (``1e-07`` against ``1e-7``).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import sys
import uuid
from typing import Any, Union

try:
    import orjson
except ImportError:  # optional: the standard library does it all
    orjson = None

__all__ = ["dump_json", "load_json"]


def _jsonable(value: Any) -> Any:
    """What the encoder sends for the values JSON has no type for:
    dataclass instances, pydantic models and msgspec Structs as objects,
    Enum members as their value,
    dates and times in ISO 8601, UUIDs and Decimals as strings (exact).
    A set is refused: its order would change from one run to the next."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if dump is not None and "pydantic" in sys.modules and isinstance(value, sys.modules["pydantic"].BaseModel):
        return dump(mode="json")
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# One encoder for every call: json.dumps with non-default options builds a
# new encoder each time, which costs as much as encoding a small dict.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_jsonable)
# The C encoder behind _ENCODER, made once rather than per call (about half
# the cost of encoding a small dict). Without a markers dict it keeps no
# state, so threads share it; a circular value ends in RecursionError, not
# ValueError, and is refused all the same.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE = (
    _C_ENCODER(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _C_ENCODER is not None
    else None
)


def _dump_stdlib(content: Any) -> bytes:
    """Compact UTF-8 JSON. Integers of any size and floats keep their exact
    value; NaN and infinities are refused since JSON has no such numbers.

    Raises ``TypeError`` when ``content`` cannot be represented as JSON.
    """
    try:
        if _ENCODE is not None:
            return "".join(_ENCODE(content, 0)).encode("utf-8")
        return _ENCODER.encode(content).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise TypeError(f"{type(content).__name__} value cannot be serialized to JSON: {exc}") from exc


_SCALARS = frozenset({str, int, bool, type(None)})


def _finite_builtins(value: Any) -> bool:
    """Whether ``value`` is made of dicts, lists, tuples, strings, ints,
    bools, None and finite floats alone (exact types): what orjson then
    wrote is what the standard library would send."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return value - value == 0.0  # not NaN, not an infinity
    else:
        return kind in _SCALARS
    for item in items:
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is float:
            if item - item != 0.0:
                return False
        elif not _finite_builtins(item):
            return False
    return True


if orjson is not None:
    _orjson_dumps = orjson.dumps
    # Dataclasses and datetimes go through _jsonable as with the standard
    # library: orjson would add a dataclass's non-field attributes.
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

    def _dump_orjson(content: Any) -> bytes:
        try:
            encoded = _orjson_dumps(content, _jsonable, _OPTIONS)
        except Exception:  # what orjson refuses, the standard library decides
            return _dump_stdlib(content)
        # orjson writes NaN and infinities as null: where a null appears,
        # it stands only if the value holds no such float.
        if b"null" in encoded:
            try:
                finite = _finite_builtins(content)
            except RecursionError:
                finite = False
            if not finite:
                return _dump_stdlib(content)
        return encoded

    _dump_orjson.__doc__ = _dump_stdlib.__doc__
    dump_json = _dump_orjson
else:
    dump_json = _dump_stdlib


# A run of 19 digits may be an integer beyond 64 bits, which orjson would
# read as a float: such text goes to the standard library. Digits map to
# "0" and the rest to " ", and the run is looked for in that.
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_RUN = b"0" * 19


def load_json(data: Union[bytes, str]) -> Any:
    """``data`` parsed as JSON, as ``json.loads`` parses it (integers of
    any size; bytes in UTF-8, UTF-16 or UTF-32). Raises ``ValueError`` (or
    ``UnicodeDecodeError``) for what is not JSON."""
    if orjson is not None:
        try:
            raw = data.encode("utf-8") if type(data) is str else bytes(data)
        except UnicodeEncodeError:  # a lone surrogate: the standard library's
            raw = None
        if raw is not None and _LONG_RUN not in raw.translate(_DIGITS):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # the standard library's verdict, and its message
    return json.loads(data)
