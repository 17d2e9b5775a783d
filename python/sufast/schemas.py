"""JSON Schema of the Python types a request body or response model may
have, for the OpenAPI document: dataclasses, TypedDicts, Enums and the
standard types here, pydantic models by pydantic and msgspec Structs by
msgspec. Named types (models, Enums) are kept once under
``components/schemas`` and referred to with ``$ref``."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import re
import sys
import types
import typing
import uuid
from collections import abc
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .models import is_model
from ._json import load_json
from .responses import dump_json

__all__ = ["REF_PREFIX", "Schemas"]

REF_PREFIX = "#/components/schemas/"

_NONE = type(None)
_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))
_EMPTY = inspect.Parameter.empty

# What a request body validator takes (see sufast.models), as JSON Schema.
_SCALARS: Dict[Any, Dict[str, Any]] = {
    str: {"type": "string"},
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bytes: {"type": "string", "format": "binary"},
    decimal.Decimal: {"anyOf": [{"type": "number"}, {"type": "string"}]},
    uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
}
_ARRAYS = {list: False, set: True, frozenset: True, abc.Sequence: False, abc.MutableSequence: False, abc.Set: True, abc.MutableSet: True}
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (type(None), "null"))


class Schemas:
    """JSON Schemas of Python types; named ones (dataclasses, TypedDicts,
    Enums, pydantic models, msgspec Structs) are kept in ``components``
    and given as ``{"$ref": ...}``."""

    def __init__(self) -> None:
        self.components: Dict[str, Any] = {}
        self._names: Dict[Any, str] = {}

    def of(self, annotation: Any) -> Dict[str, Any]:
        """The schema of ``annotation``; ``{}`` (anything) for a type it
        does not know."""
        if annotation is Any or annotation is object or annotation is _EMPTY or isinstance(annotation, (str, typing.ForwardRef)):
            return {}
        if annotation is None or annotation is _NONE:
            return {"type": "null"}
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            return self.of(args[0])
        if origin in _UNIONS:
            return {"anyOf": [self.of(arg) for arg in args]}
        if origin is typing.Literal:
            return _literal(args)
        if annotation in _SCALARS:
            return dict(_SCALARS[annotation])
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return self._named(annotation, self._enum)
        unique = _ARRAYS.get(origin or annotation)
        if unique is not None:
            schema: Dict[str, Any] = {"type": "array", "items": self.of(args[0]) if args else {}}
            if unique:
                schema["uniqueItems"] = True
            return schema
        if annotation is tuple or origin is tuple:
            if not args or (len(args) == 2 and args[1] is Ellipsis):
                return {"type": "array", "items": self.of(args[0]) if args else {}}
            if args == ((),):  # Tuple[()]
                return {"type": "array", "maxItems": 0}
            return {"type": "array", "prefixItems": [self.of(arg) for arg in args], "minItems": len(args), "maxItems": len(args)}
        if (origin or annotation) in _MAPPINGS:
            return {"type": "object", "additionalProperties": self.of(args[1]) if len(args) > 1 else {}}
        if _is_pydantic(annotation):
            return self._pydantic(annotation)
        if _is_struct(annotation):
            return self._struct(annotation)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            return self._named(annotation, self._dataclass)
        if is_model(annotation):  # a TypedDict
            return self._named(annotation, self._typeddict)
        return {}

    def _name(self, cls: type) -> str:
        name = self._names.get(cls)
        if name is None:
            name = _component_name(cls.__name__)
            if name in self._names.values() or (name in self.components and cls not in self._names):
                # Two types of one name: FastAPI's long name for the later.
                name = _component_name(f"{cls.__module__}__{cls.__qualname__}")
            self._names[cls] = name
        return name

    def _named(self, cls: type, build: Callable[[type], Dict[str, Any]]) -> Dict[str, Any]:
        known = cls in self._names
        name = self._name(cls)
        if not known:
            self.components[name] = {}  # a type that refers to itself finds its name
            self.components[name] = build(cls)
        return {"$ref": REF_PREFIX + name}

    def _enum(self, cls: type) -> Dict[str, Any]:
        values = [member.value for member in cls]  # type: ignore[attr-defined]
        schema: Dict[str, Any] = {"title": cls.__name__}
        shown = _json_values(values)
        if shown is not None:
            schema["enum"] = shown
        kind = _json_type(values)
        if kind is not None:
            schema["type"] = kind
        doc = cls.__dict__.get("__doc__")
        if doc and doc != "An enumeration.":
            schema["description"] = inspect.cleandoc(doc)
        return schema

    def _object(self, cls: type, fields: Iterable[Tuple[str, Any, Any]]) -> Dict[str, Any]:
        """An object schema: ``fields`` are (name, annotation, default or
        ``_EMPTY`` when required, or ``None`` for "not required, no default")."""
        properties: Dict[str, Any] = {}
        required = []
        for name, annotation, default in fields:
            properties[name] = self.field(name, annotation, default)
            if default is _EMPTY:
                required.append(name)
        schema: Dict[str, Any] = {"title": cls.__name__, "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        doc = cls.__dict__.get("__doc__")
        # A dataclass without a docstring gets one that repeats its signature.
        if doc and not doc.startswith(f"{cls.__name__}("):
            schema["description"] = inspect.cleandoc(doc)
        return schema

    def field(self, name: str, annotation: Any, default: Any = _EMPTY) -> Dict[str, Any]:
        """A property's or parameter's schema: the type's, titled by the
        name (a ``$ref`` stays alone), with its default when JSON has it."""
        schema = self.of(annotation)
        if "$ref" not in schema:
            schema = {**schema, "title": name.replace("_", " ").title()}
        if default is not _EMPTY and default is not _NO_DEFAULT:
            try:
                schema = {**schema, "default": _jsonable(default)}
            except TypeError:
                pass
        return schema

    def _dataclass(self, cls: type) -> Dict[str, Any]:
        hints = _type_hints(cls)
        fields = []
        for item in dataclasses.fields(cls):
            if not item.init:
                continue
            if item.default is not dataclasses.MISSING:
                default = item.default
            elif item.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = _NO_DEFAULT
            else:
                default = _EMPTY
            fields.append((item.name, hints.get(item.name, Any), default))
        return self._object(cls, fields)

    def _typeddict(self, cls: type) -> Dict[str, Any]:
        hints = _type_hints(cls)
        required = set(getattr(cls, "__required_keys__", hints if getattr(cls, "__total__", True) else ()))
        fields = []
        for name, hint in hints.items():
            origin = typing.get_origin(hint)
            if origin is not None and getattr(origin, "_name", "") in ("Required", "NotRequired"):
                hint = typing.get_args(hint)[0]
            fields.append((name, hint, _EMPTY if name in required else _NO_DEFAULT))
        return self._object(cls, fields)

    def _pydantic(self, cls: type) -> Dict[str, Any]:
        schema = cls.model_json_schema(ref_template=REF_PREFIX + "{model}")  # type: ignore[attr-defined]
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, definition)
        if set(schema) == {"$ref"}:  # a model that refers to itself is all in $defs
            return schema
        if self.components.get(cls.__name__) == schema:  # met before, in another model's $defs
            return {"$ref": REF_PREFIX + cls.__name__}
        name = self._name(cls)
        self.components[name] = schema
        return {"$ref": REF_PREFIX + name}

    def _struct(self, cls: type) -> Dict[str, Any]:
        msgspec = sys.modules["msgspec"]
        (schema,), definitions = msgspec.json.schema_components([cls], ref_template=REF_PREFIX + "{name}")
        for name, definition in definitions.items():
            self.components.setdefault(name, definition)
        return schema


#: A field that may be left out and has no default to show (a
#: ``default_factory``, a TypedDict key that is not required).
_NO_DEFAULT: Any = object()


def _is_pydantic(annotation: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) and hasattr(annotation, "model_json_schema")


def _is_struct(annotation: Any) -> bool:
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _type_hints(cls: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception:  # registration already checked what a request needs
        return dict(getattr(cls, "__annotations__", {}))


def _component_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _jsonable(value: Any) -> Any:
    """``value`` as the JSON a response would carry (raises ``TypeError``)."""
    return load_json(dump_json(value))


def _json_type(values: Sequence[Any]) -> Optional[str]:
    kinds = set()
    for value in values:
        value = value.value if isinstance(value, enum.Enum) else value
        kinds.add(next((name for kind, name in _JSON_TYPES if type(value) is kind), None))
    return kinds.pop() if len(kinds) == 1 else None


def _json_values(values: Sequence[Any]) -> Optional[List[Any]]:
    """``values`` as JSON, or ``None`` when one has no JSON form."""
    try:
        return [_jsonable(value) for value in values]
    except TypeError:
        return None


def _literal(options: Tuple[Any, ...]) -> Dict[str, Any]:
    values = _json_values(options)
    if not values:
        return {}
    schema: Dict[str, Any] = {"const": values[0]} if len(values) == 1 else {"enum": values}
    kind = _json_type(list(options))
    if kind is not None:
        schema["type"] = kind
    return schema
