"""Validation of JSON request bodies against dataclasses, TypedDicts and
the standard types, compiled once per type when a route is registered
(no introspection per request).

A validator takes the decoded JSON value and its location and gives the
value converted (a dataclass instance, an Enum member, a UUID, ...); what
is wrong is appended to the error list in FastAPI's shape
(``{"type", "loc", "msg", "input"}``), every error of a body at once.

A dataclass or TypedDict validator first tries a fast path, a function
generated for the class that checks the common cases inline and builds
no locations or error lists; only a value it does not take goes through
the full validator, which then says what is wrong.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import re
import sys
import types
import typing
import uuid
from collections import abc
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["DEFAULT_RESPONSE_MODEL", "INVALID", "is_model", "resolve_response_model", "response_filter", "validator"]

#: What a validator gives for a value it refused (its errors are listed).
INVALID: Any = object()

Errors = List[Dict[str, Any]]
Validator = Callable[[Any, Tuple[Any, ...], Errors], Any]

_CACHE: Dict[Any, Validator] = {}
_NONE = type(None)
#: The fast path of each dataclass and TypedDict compiled (see _fast).
_FAST: Dict[Any, Callable[[Any], Any]] = {}


def is_model(annotation: Any) -> bool:
    """Whether ``annotation`` is a type a JSON body is validated as: a
    dataclass, a TypedDict, or (when the package is there) a pydantic v2
    model or a msgspec Struct."""
    return isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or _is_typeddict(annotation) or _is_pydantic(annotation) or _is_struct(annotation)
    )


def _is_pydantic(annotation: Any) -> bool:
    # Only a program that imported pydantic can have its models.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) and hasattr(annotation, "model_validate")


def _is_struct(annotation: Any) -> bool:
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _is_typeddict(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, dict) and hasattr(annotation, "__total__") and hasattr(annotation, "__annotations__")


def validator(annotation: Any, where: str = "") -> Validator:
    """The validator of ``annotation``, compiled once per type. Raises
    ``TypeError`` (naming ``where``) for a type it cannot validate."""
    try:
        return _CACHE[annotation]
    except (KeyError, TypeError):
        pass
    made = _compile(annotation, where)
    try:
        _CACHE[annotation] = made
    except TypeError:  # unhashable annotation
        pass
    return made


def _error(errors: Errors, kind: str, loc: Tuple[Any, ...], msg: str, given: Any) -> Any:
    errors.append({"type": kind, "loc": list(loc), "msg": msg, "input": given})
    return INVALID


_SEQUENCES: Dict[Any, Any] = {
    list: list,
    set: set,
    frozenset: frozenset,
    abc.Sequence: list,
    abc.MutableSequence: list,
    abc.Set: set,
    abc.MutableSet: set,
}
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))


def _compile(annotation: Any, where: str) -> Validator:
    if annotation is Any or annotation is object:
        return _any
    if annotation is None or annotation is _NONE:
        return _none
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return validator(args[0], where)
    if origin in _UNIONS:
        return _union([validator(arg, where) for arg in args], args)
    if origin is typing.Literal:
        return _literal(args)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum(annotation)
    kind = _SEQUENCES.get(origin or annotation)
    if kind is not None:
        return _sequence(validator(args[0], where) if args else _any, kind)
    if annotation is tuple or origin is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return _sequence(validator(args[0], where) if args else _any, tuple)
        return _fixed_tuple([validator(arg, where) for arg in args])
    if (origin or annotation) in _MAPPINGS:
        key = validator(args[0], where) if args else _any
        value = validator(args[1], where) if len(args) > 1 else _any
        return _mapping(key, value)
    if _is_pydantic(annotation):
        return _pydantic(annotation)
    if _is_struct(annotation):
        return _struct(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _dataclass(annotation, where)
    if _is_typeddict(annotation):
        return _typeddict(annotation, where)
    raise TypeError(f"{where}: the body type {annotation!r} is not supported (a dataclass, TypedDict, or standard type is)")


def _any(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    return value


def _none(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    if value is None:
        return None
    return _error(errors, "none_required", loc, "Input should be None", value)


def _str(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    if type(value) is str:
        return value
    return _error(errors, "string_type", loc, "Input should be a valid string", value)


# What pydantic's lax mode (FastAPI's default) takes for a boolean.
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_INTEGER = re.compile(r"[+-]?\d+")


def _bool(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if type(value) is str:
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return _error(errors, "bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", value)
    return _error(errors, "bool_type", loc, "Input should be a valid boolean", value)


def _int(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        if value.is_integer():
            return int(value)
        return _error(errors, "int_from_float", loc, "Input should be a valid integer, got a number with a fractional part", value)
    if kind is str:
        text = value.strip()
        if _INTEGER.fullmatch(text) and len(text) <= 4300:
            return int(text)
        return _error(errors, "int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", value)
    return _error(errors, "int_type", loc, "Input should be a valid integer", value)


def _float(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if kind is str:
        try:
            number = float(value.strip())
        except ValueError:
            number = None
        if number is not None and "_" not in value:
            return number
        return _error(errors, "float_parsing", loc, "Input should be a valid number, unable to parse string as a number", value)
    return _error(errors, "float_type", loc, "Input should be a valid number", value)


def _parsed(kind: str, what: str, parse: Callable[[str], Any]) -> Validator:
    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if type(value) is not str:
            return _error(errors, f"{kind}_type", loc, f"Input should be a valid {what}", value)
        try:
            return parse(value)
        except (ValueError, TypeError, ArithmeticError):
            return _error(errors, f"{kind}_parsing", loc, f"Input should be a valid {what}", value)

    def fast(value: Any) -> Any:
        if type(value) is str:
            try:
                return parse(value)
            except (ValueError, TypeError, ArithmeticError):
                pass
        return INVALID

    check.fast = fast  # type: ignore[attr-defined]
    return check


def _iso(text: str) -> str:
    # fromisoformat takes "Z" from Python 3.11 on.
    return text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text


def _decimal(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
    if type(value) in (int, float, str):
        try:
            result = decimal.Decimal(str(value))
            if result.is_finite():
                return result
        except decimal.InvalidOperation:
            pass
    return _error(errors, "decimal_parsing", loc, "Input should be a valid decimal", value)


_SCALARS: Dict[Any, Validator] = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    decimal.Decimal: _decimal,
    uuid.UUID: _parsed("uuid", "UUID", uuid.UUID),
    datetime.datetime: _parsed("datetime", "datetime", lambda s: datetime.datetime.fromisoformat(_iso(s))),
    datetime.date: _parsed("date", "date", lambda s: datetime.date.fromisoformat(s)),
    datetime.time: _parsed("time", "time", lambda s: datetime.time.fromisoformat(_iso(s))),
}


def _union(members: List[Validator], args: Tuple[Any, ...]) -> Validator:
    nullable = _NONE in args
    rest = [m for m, a in zip(members, args) if a is not _NONE]

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if value is None and nullable:
            return None
        if len(rest) == 1:
            return rest[0](value, loc, errors)
        tried: Errors = []
        for member in rest:
            found: Errors = []
            result = member(value, loc, found)
            if result is not INVALID:
                return result
            tried.extend(found)
        errors.extend(tried)
        return INVALID

    return check


def _literal(options: Tuple[Any, ...]) -> Validator:
    allowed = {(type(option), option) for option in options}
    shown = _or_list([repr(option) for option in options])

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        try:
            if (type(value), value) in allowed:
                return value
        except TypeError:
            pass
        return _error(errors, "literal_error", loc, f"Input should be {shown}", value)

    return check


def _enum(cls: type) -> Validator:
    shown = _or_list([repr(member.value) for member in cls])  # type: ignore[attr-defined]

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        try:
            return cls(value)
        except (ValueError, TypeError):
            return _error(errors, "enum", loc, f"Input should be {shown}", value)

    return check


def _or_list(items: List[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _sequence(item: Validator, kind: Any) -> Validator:
    make = {set: set, frozenset: frozenset, tuple: tuple}.get(kind, list)
    name = {set: "set", frozenset: "frozen set", tuple: "tuple"}.get(kind, "list")
    kind_name = {set: "set_type", frozenset: "frozen_set_type", tuple: "tuple_type"}.get(kind, "list_type")

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if type(value) is not list:
            return _error(errors, kind_name, loc, f"Input should be a valid {name}", value)
        before = len(errors)
        result = [item(element, loc + (index,), errors) for index, element in enumerate(value)]
        if len(errors) > before:
            return INVALID
        try:
            return make(result)
        except TypeError:  # unhashable items in a set
            return _error(errors, kind_name, loc, f"Input should be a valid {name}", value)

    return check


def _fixed_tuple(items: List[Validator]) -> Validator:
    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if type(value) is not list:
            return _error(errors, "tuple_type", loc, "Input should be a valid tuple", value)
        if len(value) != len(items):
            return _error(errors, "tuple_length", loc, f"Tuple should have {len(items)} items, not {len(value)}", value)
        before = len(errors)
        result = tuple(item(element, loc + (index,), errors) for index, (item, element) in enumerate(zip(items, value)))
        return INVALID if len(errors) > before else result

    return check


def _mapping(key: Validator, item: Validator) -> Validator:
    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if type(value) is not dict:
            return _error(errors, "dict_type", loc, "Input should be a valid dictionary", value)
        before = len(errors)
        result = {}
        for name, element in value.items():
            converted = key(name, loc + (name, "[key]"), errors) if key is not _str and key is not _any else name  # "1" is an int key
            result[converted] = item(element, loc + (name,), errors)
        return INVALID if len(errors) > before else result

    return check


def _hints(cls: type, where: str) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise TypeError(f"{where}: the annotations of {cls.__name__} cannot be resolved ({type(exc).__name__}: {exc})") from None


def _dataclass(cls: type, where: str) -> Validator:
    hints = _hints(cls, where)
    plan: List[Tuple[str, Validator, Any, bool]] = []
    # Filled in after, so that a dataclass may refer to itself.
    _CACHE[cls] = lambda value, loc, errors: check(value, loc, errors)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING  # type: ignore[misc]
        plan.append((field.name, validator(hints.get(field.name, Any), f"{where}: field {cls.__name__}.{field.name}"), field, has_default))

    # Filled in after too, for the same reason.
    _FAST[cls] = lambda value: fast(value)
    fast = _fast_fields(cls, [(name, hints.get(name, Any), has_default) for name, _, _, has_default in plan], construct=True)
    _FAST[cls] = fast

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        result = fast(value)
        if result is not INVALID:
            return result
        return full(value, loc, errors)

    def full(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if isinstance(value, cls):
            return value
        if type(value) is not dict:
            return _error(errors, "model_attributes_type", loc, "Input should be a valid dictionary or object to extract fields from", value)
        before = len(errors)
        kwargs = {}
        for name, check_field, field, has_default in plan:
            if name in value:
                kwargs[name] = check_field(value[name], loc + (name,), errors)
            elif not has_default:
                _error(errors, "missing", loc + (name,), "Field required", value)
        if len(errors) > before:
            return INVALID
        try:
            return cls(**kwargs)
        except (ValueError, TypeError, AssertionError) as exc:
            return _error(errors, "value_error", loc, f"Value error, {exc}", value)

    _CACHE[cls] = check
    return check


def _fast(annotation: Any) -> Callable[[Any], Any]:
    """A one-argument check of ``annotation`` that gives the converted
    value, or ``INVALID`` for anything it does not take (without saying
    why: the full validator does). Never takes what the full validator
    refuses, and gives what it gives."""
    found = _FAST.get(annotation) if isinstance(annotation, type) else None
    if found is not None:
        return found
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNIONS and len(args) == 2 and _NONE in args:
        inner = _fast(args[0] if args[1] is _NONE else args[1])
        return lambda value: None if value is None else inner(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        members = {(type(m.value), m.value): m for m in annotation}  # type: ignore[attr-defined]

        def member(value: Any) -> Any:
            if type(value) in (str, int):
                found = members.get((type(value), value))
                if found is not None:
                    return found
            return INVALID

        return member
    full = validator(annotation)
    if annotation in _FAST:  # a model compiled just now
        return _FAST[annotation]
    if hasattr(full, "fast"):
        return full.fast  # type: ignore[attr-defined]

    def check(value: Any) -> Any:
        errors: Errors = []
        result = full(value, (), errors)
        return INVALID if errors else result

    return check


# Field types the generated fast paths check inline: the test a value of
# the exact JSON type passes, and how it converts (float takes an int).
_INLINE = {
    str: "type({v}) is str",
    int: "type({v}) is int",
    bool: "type({v}) is bool",
}


def _fast_fields(cls: type, fields: List[Tuple[str, Any, bool]], construct: bool) -> Callable[[Any], Any]:
    """The generated fast path of a dataclass (``construct``: the result is
    ``cls(**kw)``) or TypedDict (the result is ``kw``): ``fields`` are
    (name, annotation, optional)."""
    env: Dict[str, Any] = {"INVALID": INVALID, "MISSING": _MISSING_KEY, "cls": cls}
    lines = ["def fast(value):", "    if type(value) is not dict:", "        return INVALID", "    kw = {}"]
    for index, (name, annotation, optional) in enumerate(fields):
        v = f"v{index}"
        lines.append(f"    {v} = value.get({name!r}, MISSING)")
        lines.append(f"    if {v} is MISSING:")
        lines.append("        pass" if optional else "        return INVALID")
        lines.append("    else:")
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        nullable = origin in _UNIONS and len(args) == 2 and _NONE in args
        inner = (args[0] if args[1] is _NONE else args[1]) if nullable else annotation
        inner_origin, inner_args = typing.get_origin(inner), typing.get_args(inner)
        if inner in _INLINE or inner is float:
            test = "type({v}) is float" if inner is float else _INLINE[inner]
            guard = f"{v} is not None and " if nullable else ""
            lines.append(f"        if {guard}not ({test.format(v=v)}):")
            if inner is float:
                lines.append(f"            if type({v}) is not int:")
                lines.append("                return INVALID")
                lines.append(f"            {v} = float({v})")
            else:
                lines.append("            return INVALID")
        elif not nullable and inner_origin is list and len(inner_args) == 1 and inner_args[0] in _INLINE:
            test = _INLINE[inner_args[0]].format(v="item")
            lines.append(f"        if type({v}) is not list:")
            lines.append("            return INVALID")
            lines.append(f"        for item in {v}:")
            lines.append(f"            if not ({test}):")
            lines.append("                return INVALID")
            lines.append(f"        {v} = list({v})")
        elif not nullable and inner_origin is typing.Literal:
            env[f"allowed{index}"] = frozenset((type(option), option) for option in inner_args)
            lines.append(f"        if type({v}) not in (str, int, bool) or (type({v}), {v}) not in allowed{index}:")
            lines.append("            return INVALID")
        else:
            env[f"check{index}"] = _fast(annotation)
            lines.append(f"        {v} = check{index}({v})")
            lines.append(f"        if {v} is INVALID:")
            lines.append("            return INVALID")
        lines.append(f"        kw[{name!r}] = {v}")
    if construct:
        lines += ["    try:", "        return cls(**kw)", "    except (ValueError, TypeError, AssertionError):", "        return INVALID"]
    else:
        lines.append("    return kw")
    exec(compile("\n".join(lines), f"<fast path of {cls.__qualname__}>", "exec"), env)
    return env["fast"]


_MISSING_KEY: Any = object()


def _typeddict(cls: type, where: str) -> Validator:
    hints = _hints(cls, where)
    required = set(getattr(cls, "__required_keys__", hints if getattr(cls, "__total__", True) else ()))
    _CACHE[cls] = lambda value, loc, errors: check(value, loc, errors)
    plan = []
    fast_fields: List[Tuple[str, Any, bool]] = []
    for name, hint in hints.items():
        origin = typing.get_origin(hint)
        # Required[...] / NotRequired[...] wrap the type itself.
        if origin is not None and getattr(origin, "_name", "") in ("Required", "NotRequired"):
            hint = typing.get_args(hint)[0]
        plan.append((name, validator(hint, f"{where}: key {cls.__name__}[{name!r}]"), name in required))
        fast_fields.append((name, hint, name not in required))
    _FAST[cls] = lambda value: fast(value)
    fast = _fast_fields(cls, fast_fields, construct=False)
    _FAST[cls] = fast

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        result = fast(value)
        if result is not INVALID:
            return result
        return full(value, loc, errors)

    def full(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        if type(value) is not dict:
            return _error(errors, "dict_type", loc, "Input should be a valid dictionary", value)
        before = len(errors)
        result = {}
        for name, check_key, needed in plan:
            if name in value:
                result[name] = check_key(value[name], loc + (name,), errors)
            elif needed:
                _error(errors, "missing", loc + (name,), "Field required", value)
        return INVALID if len(errors) > before else result

    _CACHE[cls] = check
    return check


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it (an error's context may hold an exception)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def _pydantic(cls: type) -> Validator:
    """A pydantic model: pydantic validates, its errors keep their shape."""
    error_class = sys.modules["pydantic"].ValidationError

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        try:
            return cls.model_validate(value)  # type: ignore[attr-defined]
        except error_class as exc:
            for error in exc.errors(include_url=False):
                found = {"type": error["type"], "loc": [*loc, *error["loc"]], "msg": error["msg"], "input": _plain(error.get("input"))}
                if "ctx" in error:
                    found["ctx"] = _plain(error["ctx"])
                errors.append(found)
            return INVALID

    return check


_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


def _struct(cls: type) -> Validator:
    """A msgspec Struct: msgspec converts, and names the first error with
    a path such as ``$.tags[0].name``."""
    msgspec = sys.modules["msgspec"]

    def check(value: Any, loc: Tuple[Any, ...], errors: Errors) -> Any:
        try:
            return msgspec.convert(value, type=cls, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc)
            where: List[Any] = []
            text, _, path = message.rpartition(" - at `")
            if path.endswith("`") and path.startswith("$"):
                for name, index in _PATH_PART.findall(path[1:-1]):
                    where.append(name if name else int(index))
            else:
                text = message
            kind = "missing" if text.startswith("Object missing required field") else "value_error"
            if kind == "missing":
                where.append(text.rpartition("`")[0].rpartition("`")[2])
            errors.append({"type": kind, "loc": [*loc, *where], "msg": text, "input": value})
            return INVALID

    return check


def response_filter(model: Any, where: str) -> Callable[[Any], Any]:
    """What checks a handler's return value against ``model`` (its
    ``response_model``) and gives what is sent: the model's fields only.
    The check raises ``TypeError`` listing what does not match."""
    check = validator(model, where)
    name = getattr(model, "__name__", None) or repr(model)

    def apply(value: Any) -> Any:
        errors: Errors = []
        result = check(value, ("response",), errors)
        if errors:
            shown = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors[:5])
            raise TypeError(f"the return value does not match the response model {name} ({shown})")
        return result

    return apply


def response_model_of(annotation: Any) -> bool:
    """Whether a return annotation names a model (or a list or Optional of
    one), which FastAPI takes as the response model."""
    inner = annotation
    while True:
        origin = typing.get_origin(inner)
        args = [arg for arg in typing.get_args(inner) if arg is not _NONE]
        if origin in _UNIONS and len(args) == 1:
            inner = args[0]
        elif _SEQUENCES.get(origin) is list and args:
            inner = args[0]
        else:
            break
    return is_model(inner)


#: ``add_route``'s default: the return annotation, if it names a model.
DEFAULT_RESPONSE_MODEL: Any = object()


def resolve_response_model(endpoint: Callable[..., Any], given: Any, where: str) -> Optional[Callable[[Any], Any]]:
    """The output filter of a route: ``given``, or with the default the
    handler's return annotation when it names a model; ``None`` for none."""
    if given is None:
        return None
    if given is DEFAULT_RESPONSE_MODEL:
        try:
            given = typing.get_type_hints(endpoint).get("return")
        except Exception:
            return None
        if given is None or not response_model_of(given):
            return None
    return response_filter(given, where)
