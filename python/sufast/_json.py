"""JSON as sufast sends and reads it: compact UTF-8, exact numbers, and
the values JSON has no type for (dataclasses, models, dates, enums)
turned into ones it has."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import sys
import uuid
from typing import Any

__all__ = ["dump_json"]


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


def dump_json(content: Any) -> bytes:
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
