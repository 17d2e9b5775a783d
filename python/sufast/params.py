"""Handler parameters: read a handler's signature once, at registration,
into ``Param`` objects (name, source, annotation, default and an
extractor); per request only the extractors run.

Where a parameter comes from:
- ``request`` (by name, or annotated ``Request``): the ``Request``;
- a name in the path pattern: that path parameter;
- annotated ``bytes``: the raw body; annotated ``dict``: the JSON body;
- anything else: the query string.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import typing
import uuid
from typing import Any, Callable, Dict, List, Tuple, Union

from .requests import Request

__all__ = ["Arguments", "Param", "RequestValidationError", "check_path_parameters", "check_path_style", "path_parameters"]

Extractor = Callable[[Request], Any]

_PATH_PARAM = re.compile(r"\{([^{}:]+)(?::([^{}]+))?\}")
_INT = re.compile(r"-?[0-9]+")


class RequestValidationError(Exception):
    """One or more parameters were missing or could not be converted; the
    request gets 422 with ``errors`` as its ``detail``."""

    def __init__(self, errors: List[Dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class _Invalid(Exception):
    def __init__(self, where: str, name: str, message: str, given: Any = None, missing: bool = False) -> None:
        super().__init__(message)
        self.detail: Dict[str, Any] = {"loc": [where, name], "msg": message}
        if not missing:
            self.detail["input"] = given


def _to_int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise ValueError("value is not a valid integer")
    return int(text)


def _to_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("value is not a valid number") from None
    if not math.isfinite(value) or "_" in text:
        raise ValueError("value is not a valid number")
    return value


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("value is not a valid boolean (true/false, 1/0, yes/no, on/off)")


def _to_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError("value is not a valid UUID") from None


def _to_str(text: str) -> str:
    return text


_CONVERTERS: Dict[Any, Callable[[str], Any]] = {
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    str: _to_str,
    uuid.UUID: _to_uuid,
    inspect.Parameter.empty: _to_str,
}

_BY_CONVERTOR: Dict[str, Callable[[str], Any]] = {
    "str": _to_str,
    "path": _to_str,
    "int": _to_int,
    "float": _to_float,
    "uuid": _to_uuid,
}

# Annotations that stay strings (a forward reference that cannot be
# resolved) are still understood by name.
_BY_NAME: Dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "bytes": bytes,
    "dict": dict,
    "UUID": uuid.UUID,
    "uuid.UUID": uuid.UUID,
    "Request": Request,
}


def path_parameters(path: str) -> List[Tuple[str, str]]:
    """``(name, convertor)`` for each parameter of a path pattern."""
    return [(name, convertor or "str") for name, convertor in _PATH_PARAM.findall(path)]


# Other frameworks' ways to write a path parameter, which would otherwise
# register as literal text.
_COLON_PARAM = re.compile(r"/:([A-Za-z_][A-Za-z0-9_]*)")
_ANGLE_PARAM = re.compile(r"<(?:([A-Za-z_]+):)?([A-Za-z_][A-Za-z0-9_]*)>")
_FLASK_CONVERTORS = {"string": "str", "int": "int", "float": "float", "path": "path", "uuid": "uuid"}


def check_path_style(path: str) -> None:
    """Refuses a path parameter written as Flask (``<int:id>``) or Express
    and Robyn (``:id``) write it, saying how to write it here."""
    angle = _ANGLE_PARAM.search(path)
    if angle:
        convertor, name = angle.groups()
        convertor = _FLASK_CONVERTORS.get(convertor or "string", convertor)
        fixed = f"{{{name}}}" if convertor == "str" else f"{{{name}:{convertor}}}"
        raise ValueError(f"{angle.group(0)} is Flask's way to write a path parameter; write {fixed}")
    colon = _COLON_PARAM.search(path)
    if colon:
        name = colon.group(1)
        raise ValueError(f":{name} is Express's and Robyn's way to write a path parameter; write {{{name}}} (or {{{name}:int}})")


def check_path_parameters(path: str, endpoint: Callable[..., Any]) -> None:
    """Refuses a path parameter that no parameter of the handler takes,
    unless the handler takes the ``Request`` (and reads it there)."""
    signature = inspect.signature(endpoint).parameters
    hints = _hints(endpoint)
    for parameter in signature.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        if annotation is Request or annotation == "Request" or (parameter.name == "request" and annotation is inspect.Parameter.empty):
            return
    for name, _ in path_parameters(path):
        if name not in signature:
            raise ValueError(
                f"path parameter {name!r} is not a parameter of the handler; "
                f"add {name}: str (or another type) to it, or rename it in the path"
            )


def _hints(endpoint: Callable[..., Any]) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(endpoint)
    except Exception:  # unresolvable forward references: fall back to names
        return {}


def _unwrap_optional(annotation: Any) -> Tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    union_type = getattr(sys.modules.get("types"), "UnionType", None)
    if origin is Union or (union_type is not None and origin is union_type):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


class Param:
    """One parameter of a handler as read at registration: its name, where
    its value comes from (``source``: ``"request"``, ``"path"``,
    ``"query"`` or ``"body"``), its annotation and default, and
    ``extract``, which gives its value for a request (or raises)."""

    __slots__ = ("name", "source", "annotation", "default", "extract")

    def __init__(self, name: str, source: str, annotation: Any, default: Any, extract: Extractor) -> None:
        self.name = name
        self.source = source
        self.annotation = annotation
        #: ``inspect.Parameter.empty`` when there is none.
        self.default = default
        self.extract = extract

    @property
    def required(self) -> bool:
        """Whether a request must supply it."""
        if self.source in ("request", "path"):
            return True
        return self.default is inspect.Parameter.empty and not _unwrap_optional(self.annotation)[1]

    def __repr__(self) -> str:
        return f"<Param {self.name} from {self.source}>"


class Arguments:
    """The parameters of one handler; calling it with a request returns the
    keyword arguments or raises ``RequestValidationError``."""

    def __init__(self, endpoint: Callable[..., Any], path: str, where: str) -> None:
        self.path_params = path_parameters(path)
        path_index = {name: i for i, (name, _) in enumerate(self.path_params)}
        hints = _hints(endpoint)
        self.params: List[Param] = []
        for parameter in inspect.signature(endpoint).parameters.values():
            annotation = hints.get(parameter.name, parameter.annotation)
            if isinstance(annotation, str):
                annotation = _BY_NAME.get(annotation, annotation)
            source, extract = self._extractor(parameter, annotation, path_index, where)
            self.params.append(Param(parameter.name, source, annotation, parameter.default, extract))
        # What a request runs: a name and an extractor per parameter.
        self._plan: List[Tuple[str, Extractor]] = [(param.name, param.extract) for param in self.params]
        self.wants_input = bool(self.params)
        readers = [(name, _BY_CONVERTOR.get(convertor, _to_str)) for name, convertor in self.path_params]

        def read_path_params(values: List[str]) -> Dict[str, Any]:
            return {name: convert(value) for (name, convert), value in zip(readers, values)}

        #: Gives ``Request.path_params`` from the raw values.
        self.read_path_params = read_path_params

    def _extractor(
        self, parameter: inspect.Parameter, annotation: Any, path_index: Dict[str, int], where: str
    ) -> Tuple[str, Extractor]:
        name = parameter.name
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"{where}: parameter {name!r} cannot be filled (no *args or **kwargs)")
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{where}: parameter {name!r} is positional-only; sufast passes parameters by name")
        if annotation is Request or (name == "request" and annotation is inspect.Parameter.empty):
            return "request", _the_request
        if name in path_index:
            return "path", self._path_extractor(name, path_index[name], annotation, where)
        if annotation is bytes:
            return "body", _the_body
        if annotation is dict or typing.get_origin(annotation) is dict:
            return "body", _json_object(name)
        return "query", _query_extractor(name, annotation, parameter.default, where)

    def _path_extractor(self, name: str, index: int, annotation: Any, where: str) -> Extractor:
        if annotation is inspect.Parameter.empty:
            convert = _BY_CONVERTOR.get(self.path_params[index][1], _to_str)
        else:
            found = _CONVERTERS.get(_unwrap_optional(annotation)[0])
            if found is None:
                raise TypeError(f"{where}: path parameter {name!r} has an unsupported type {annotation!r}")
            convert = found

        def extract(request: Request) -> Any:
            raw = request._params[index]
            try:
                return convert(raw)
            except ValueError as exc:
                raise _Invalid("path", name, str(exc), raw) from None

        return extract

    def __call__(self, request: Request) -> Dict[str, Any]:
        kwargs = {}
        errors = None
        for name, extract in self._plan:
            try:
                kwargs[name] = extract(request)
            except _Invalid as invalid:
                errors = errors or []
                errors.append(invalid.detail)
        if errors:
            raise RequestValidationError(errors)
        return kwargs


def _the_request(request: Request) -> Request:
    return request


def _the_body(request: Request) -> bytes:
    return request._body


def _json_object(name: str) -> Extractor:
    def extract(request: Request) -> Any:
        value = request._json_value()
        if not isinstance(value, dict):
            raise _Invalid("body", name, "the body must be a JSON object", value)
        return value

    return extract


def _query_extractor(name: str, annotation: Any, default: Any, where: str) -> Extractor:
    inner, optional = _unwrap_optional(annotation)
    required = default is inspect.Parameter.empty and not optional
    fallback = None if default is inspect.Parameter.empty else default
    if typing.get_origin(inner) is list or inner is list:
        args = typing.get_args(inner)
        convert_item = _CONVERTERS.get(args[0] if args else str)
        if convert_item is None:
            raise TypeError(f"{where}: query parameter {name!r} has an unsupported item type {args[0]!r}")

        def extract_list(request: Request) -> Any:
            values = request.query_params.getlist(name)
            if not values:
                if required:
                    raise _Invalid("query", name, "field required", missing=True)
                return fallback
            try:
                return [convert_item(v) for v in values]
            except ValueError as exc:
                raise _Invalid("query", name, str(exc), values) from None

        return extract_list
    convert = _CONVERTERS.get(inner)
    if convert is None:
        raise TypeError(
            f"{where}: query parameter {name!r} has an unsupported type {annotation!r}; "
            "use int, float, bool, str, uuid.UUID, Optional[...] or List[...], "
            "or take request: Request"
        )

    def extract(request: Request) -> Any:
        raw = request.query_params.get(name)
        if raw is None:
            if required:
                raise _Invalid("query", name, "field required", missing=True)
            return fallback
        try:
            return convert(raw)
        except ValueError as exc:
            raise _Invalid("query", name, str(exc), raw) from None

    return extract

