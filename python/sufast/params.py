"""Handler parameters: read a handler's signature once, at registration,
into ``Param`` objects (name, source, annotation, default and an
extractor); per request only the extractors run.

Where a parameter comes from:
- ``request`` (by name, or annotated ``Request``): the ``Request``;
- a name in the path pattern: that path parameter;
- annotated ``bytes``: the raw body; annotated ``dict``: the JSON body;
- ``Form()``: a form field; ``File()`` or annotated ``UploadFile``: a
  form's file (the route then reads forms: the library parses them);
- anything else: the query string.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import inspect
import math
import re
import sys
import typing
import uuid
from typing import Annotated, Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union

from .background import BackgroundTasks
from .exceptions import HTTPException, RequestValidationError
from .forms import UploadFile
from .models import is_model
from .models import validator as model_validator
from .requests import Request, RequestScope
from .websockets import WebSocket

__all__ = [
    "Arguments",
    "Body",
    "Cookie",
    "Depends",
    "File",
    "Form",
    "Header",
    "Param",
    "Path",
    "Query",
    "RequestValidationError",
    "check_path_parameters",
    "check_path_style",
    "path_parameters",
]

Extractor = Callable[[Request], Any]

_PATH_PARAM = re.compile(r"\{([^{}:]+)(?::([^{}]+))?\}")
_INT = re.compile(r"-?[0-9]+")


class _Invalid(Exception):
    """One parameter's error, in FastAPI's shape: ``type``, ``loc``
    (``[where, name]``, and the item's index in a list), ``msg`` and
    ``input`` (``None`` when the value is missing)."""

    def __init__(self, where: str, name: str, kind: str, message: str, given: Any = None, index: Optional[int] = None) -> None:
        super().__init__(message)
        loc: List[Any] = [where, name] if index is None else [where, name, index]
        self.detail: Dict[str, Any] = {"type": kind, "loc": loc, "msg": message, "input": given}


def _missing(where: str, name: str) -> _Invalid:
    return _Invalid(where, name, "missing", "Field required")


class _Bad(ValueError):
    """A value a converter refused: pydantic's error type and message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _to_int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise _Bad("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
    return int(text)


def _to_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or "_" in text:
        raise _Bad("float_parsing", "Input should be a valid number, unable to parse string as a number")
    return value


# What pydantic's lax mode (FastAPI's default) takes for a boolean.
_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _Bad("bool_parsing", "Input should be a valid boolean, unable to interpret input")


def _to_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _Bad("uuid_parsing", "Input should be a valid UUID") from None


# Types a string converts to with the body validators.
_SINGLE_VALUES = (datetime.datetime, datetime.date, datetime.time, decimal.Decimal)


def _validated(annotation: Any, where: str) -> Optional[Callable[[str], Any]]:
    """A converter for a type the body validators take (an Enum, a
    Literal, a date, ...): the value as a string, validated as in a body;
    ``None`` for a type that is no single value (a set, a tuple, a model)."""
    single = typing.get_origin(annotation) is Literal or annotation in _SINGLE_VALUES
    if not single and not (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return None
    check = model_validator(annotation, where)

    def convert(text: str) -> Any:
        errors: List[Dict[str, Any]] = []
        value = check(text, (), errors)
        if errors:
            raise _Bad(errors[0]["type"], errors[0]["msg"])
        return value

    return convert


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
    "BackgroundTasks": BackgroundTasks,
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


def check_path_parameters(path: str, endpoint: Callable[..., Any], dependencies: Sequence["Depends"] = ()) -> None:
    """Refuses a path parameter that no parameter of the handler (or of a
    dependency) takes, unless one takes the ``Request`` and reads it there."""
    taken = set()
    seen: set = set()
    found = _parameters_deep(endpoint, seen)
    for dependency in dependencies:
        found += _parameters_deep(dependency.dependency, seen)
    for name, annotation in found:
        if annotation is Request or annotation == "Request" or (name == "request" and annotation is inspect.Parameter.empty):
            return
        taken.add(name)
    for name, _ in path_parameters(path):
        if name not in taken:
            raise ValueError(
                f"path parameter {name!r} is not a parameter of the handler; "
                f"add {name}: str (or another type) to it, or rename it in the path"
            )


def _parameters_deep(endpoint: Callable[..., Any], seen: set) -> List[Tuple[str, Any]]:
    """``(name or path alias, annotation)`` of a handler's parameters and
    of its dependencies', all the way down."""
    found = []
    hints = _hints(endpoint)
    for parameter in inspect.signature(endpoint).parameters.values():
        annotation, marker = _marker_of(hints.get(parameter.name, parameter.annotation), parameter.default)
        if isinstance(marker, Depends):
            if marker.dependency not in seen:
                seen.add(marker.dependency)
                found.extend(_parameters_deep(marker.dependency, seen))
            continue
        name = marker.key(parameter.name) if isinstance(marker, Path) else parameter.name
        found.append((name, annotation))
    return found


def _hints(endpoint: Callable[..., Any]) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(endpoint, include_extras=True)
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


_REQUIRED: Any = inspect.Parameter.empty


class _Marker:
    """Where a parameter's value comes from, given as its default
    (``token: str = Header()``) or in ``Annotated[str, Header()]``."""

    source = ""
    __slots__ = ("default", "alias")

    def __init__(self, default: Any = _REQUIRED, *, alias: Optional[str] = None) -> None:
        #: The value when the request has none; ``...`` or nothing: required.
        self.default = _REQUIRED if default is ... else default
        #: The name the request uses, when it is not the parameter's.
        self.alias = alias

    def key(self, name: str) -> str:
        return self.alias if self.alias is not None else name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alias={self.alias!r})"


class Query(_Marker):
    """A query-string parameter (what an unmarked parameter is), with
    ``alias=`` for a key that is not a Python name (``Query(alias="page-size")``)."""

    source = "query"
    __slots__ = ()


class Body(_Marker):
    """The JSON body, validated as the parameter's annotation (a model or
    a standard type); ``embed=True`` reads the body's field of the
    parameter's name (``{"item": ...}``), as several body parameters do."""

    source = "body"
    __slots__ = ("embed",)

    def __init__(self, default: Any = _REQUIRED, *, embed: bool = False, alias: Optional[str] = None) -> None:
        super().__init__(default, alias=alias)
        self.embed = embed


class Form(_Marker):
    """A field of a form body (``multipart/form-data`` or
    ``application/x-www-form-urlencoded``), converted to the parameter's
    annotation (``age: int = Form()``); an empty value counts as missing,
    as in FastAPI. ``List[str]`` takes every value of a repeated name."""

    source = "form"
    __slots__ = ()


class File(Form):
    """A file of a ``multipart/form-data`` body: annotated ``UploadFile``
    (or ``List[UploadFile]`` for several of one name), or ``bytes`` for
    its content. A parameter annotated ``UploadFile`` needs no marker."""

    source = "file"
    __slots__ = ()


class Header(_Marker):
    """A request header. Underscores in the parameter's name become
    hyphens (``user_agent`` reads ``User-Agent``) unless
    ``convert_underscores=False``; names are case-insensitive."""

    source = "header"
    __slots__ = ("convert_underscores",)

    def __init__(self, default: Any = _REQUIRED, *, alias: Optional[str] = None, convert_underscores: bool = True) -> None:
        super().__init__(default, alias=alias)
        self.convert_underscores = convert_underscores

    def key(self, name: str) -> str:
        if self.alias is not None:
            return self.alias.lower()
        return (name.replace("_", "-") if self.convert_underscores else name).lower()


class Cookie(_Marker):
    """A cookie by name."""

    source = "cookie"
    __slots__ = ()


class Path(_Marker):
    """A path parameter, said explicitly (``alias=`` names the pattern's
    parameter when it is not the Python name). Always required."""

    source = "path"
    __slots__ = ()

    def __init__(self, default: Any = _REQUIRED, *, alias: Optional[str] = None) -> None:
        super().__init__(_REQUIRED, alias=alias)


class Depends:
    """A parameter whose value a dependency gives: ``user = Depends(current_user)``.

    The dependency takes the parameters a handler takes (path, query,
    header, cookie, request, other dependencies), sync or async. It runs
    once per request, however many parameters depend on it, unless
    ``use_cache=False``. A generator dependency gives what it yields; the
    code after its ``yield`` runs once the response was handed to the
    server, also when the handler raised (the exception is raised at the
    ``yield``)."""

    __slots__ = ("dependency", "use_cache")

    def __init__(self, dependency: Callable[..., Any], *, use_cache: bool = True) -> None:
        if not callable(dependency):
            raise TypeError(f"Depends() takes a callable, got {dependency!r}")
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        return f"Depends({getattr(self.dependency, '__qualname__', self.dependency)!r})"


class Param:
    """One parameter of a handler as read at registration: its name, where
    its value comes from (``source``: ``"request"``, ``"path"``,
    ``"query"``, ``"header"``, ``"cookie"``, ``"body"`` or
    ``"depends"``), the name the request uses (``key``), its annotation
    and default, and ``extract``, which gives its value for a request (or
    raises). A dependency's own parameters are in ``dependency``."""

    __slots__ = ("name", "source", "key", "annotation", "default", "extract", "dependency")

    def __init__(
        self,
        name: str,
        source: str,
        annotation: Any,
        default: Any,
        extract: Extractor,
        key: Optional[str] = None,
        dependency: Optional["Dependency"] = None,
    ) -> None:
        self.name = name
        self.source = source
        self.key = name if key is None else key
        self.annotation = annotation
        #: ``inspect.Parameter.empty`` when there is none.
        self.default = default
        self.extract = extract
        self.dependency = dependency

    @property
    def required(self) -> bool:
        """Whether a request must supply it."""
        if self.source in ("request", "path", "depends"):
            return True
        return self.default is inspect.Parameter.empty and not _unwrap_optional(self.annotation)[1]

    def __repr__(self) -> str:
        return f"<Param {self.name} from {self.source}>"


class Arguments:
    """The parameters of one handler; calling it with a request returns the
    keyword arguments or raises ``RequestValidationError``."""

    def __init__(self, endpoint: Callable[..., Any], path: str, where: str, dependencies: Sequence["Depends"] = ()) -> None:
        self.path_params = path_parameters(path)
        path_index = {name: i for i, (name, _) in enumerate(self.path_params)}
        hints = _hints(endpoint)
        self.params: List[Param] = []
        for parameter in inspect.signature(endpoint).parameters.values():
            annotation = hints.get(parameter.name, parameter.annotation)
            annotation, marker = _marker_of(annotation, parameter.default)
            if isinstance(annotation, str):
                annotation = _BY_NAME.get(annotation, annotation)
            if isinstance(marker, Depends):
                dependency = Dependency(marker, path, where)
                self.params.append(Param(parameter.name, "depends", annotation, marker, dependency.solve, dependency=dependency))
                continue
            default = parameter.default
            if marker is not None and (marker is default or marker.default is not _REQUIRED):
                # Header(5) gives the default; with Annotated[int, Header()]
                # the parameter's own default (`= 5`) does.
                default = marker.default
            source, extract, key = self._extractor(parameter, annotation, default, marker, path_index, where)
            self.params.append(Param(parameter.name, source, annotation, default, extract, key=key))
        # Several model bodies: each is the body's field of its name.
        models = [p for p in self.params if getattr(p.extract, "embeddable", False)]
        if len(models) > 1:
            for param in models:
                param.extract = _model_body(param.key, param.annotation, param.default, where, embed=True)
        # What a request runs: a name and an extractor per parameter; the
        # dependencies after the others.
        self._plan: List[Tuple[str, Extractor]] = [(p.name, p.extract) for p in self.params if p.source != "depends"]
        # Those of the route and its routers first, their values unused
        # (no name), then the handler's.
        self._dependencies: List[Tuple[Optional[str], "Dependency"]] = [(None, Dependency(d, path, where)) for d in dependencies]
        self._dependencies += [(p.name, p.dependency) for p in self.params if p.dependency is not None]
        #: Whether a dependency (here or further down) is a coroutine or an
        #: async generator: the arguments must then be awaited.
        self.is_async = any(d.is_async for _, d in self._dependencies)
        # The same extraction with the dependencies left out, for
        # solve_async, which solves those itself.
        self._without_dependencies = copy.copy(self)
        self._without_dependencies._dependencies = []
        self.wants_input = bool(self.params)
        #: Whether a parameter (here or in a dependency) reads the form:
        #: the route's form bodies are then parsed as they arrive.
        self.reads_form = any(p.source in ("form", "file") for p in self.params) or any(
            d.arguments.reads_form for _, d in self._dependencies
        )
        #: Whether a parameter (here or in a dependency) reads the body.
        self.reads_body = any(p.source in ("body", "form", "file") for p in self.params) or any(
            d.arguments.reads_body for _, d in self._dependencies
        )
        readers = [(name, _BY_CONVERTOR.get(convertor, _to_str)) for name, convertor in self.path_params]

        def read_path_params(values: List[str]) -> Dict[str, Any]:
            return {name: convert(value) for (name, convert), value in zip(readers, values)}

        #: Gives ``Request.path_params`` from the raw values.
        self.read_path_params = read_path_params

    def plan_cache(self) -> None:
        """Keeps per request only the values of dependencies that this
        tree asks for more than once (call it on a handler's arguments)."""
        found: List["Dependency"] = []

        def walk(arguments: "Arguments") -> None:
            for _, dependency in arguments._dependencies:
                found.append(dependency)
                walk(dependency.arguments)

        walk(self)
        counts: Dict[Any, int] = {}
        for dependency in found:
            counts[dependency.call] = counts.get(dependency.call, 0) + 1
        for dependency in found:
            dependency.cached = dependency.use_cache and counts[dependency.call] > 1

    def _extractor(
        self,
        parameter: inspect.Parameter,
        annotation: Any,
        default: Any,
        marker: Optional[_Marker],
        path_index: Dict[str, int],
        where: str,
    ) -> Tuple[str, Extractor, str]:
        name = parameter.name
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"{where}: parameter {name!r} cannot be filled (no *args or **kwargs)")
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{where}: parameter {name!r} is positional-only; sufast passes parameters by name")
        if marker is not None:
            key = marker.key(name)
            if isinstance(marker, Body):
                return "body", _model_body(key, annotation, default, where, embed=marker.embed), key
            if isinstance(marker, Form):
                return marker.source, _form_extractor(marker.source, key, annotation, default, where), key
            if marker.source == "path":
                if key not in path_index:
                    raise TypeError(f"{where}: parameter {name!r} is Path(), but the path has no {{{key}}}")
                return "path", self._path_extractor(key, path_index[key], annotation, where), key
            return marker.source, _value_extractor(marker.source, key, annotation, default, where), key
        if annotation is Request or (name == "request" and annotation is inspect.Parameter.empty):
            return "request", _the_request, name
        if annotation is WebSocket or annotation == "WebSocket" or (name == "websocket" and annotation is inspect.Parameter.empty):
            return "request", _the_websocket, name
        if annotation is BackgroundTasks:
            return "background", _background_tasks, name
        if name in path_index:
            return "path", self._path_extractor(name, path_index[name], annotation, where), name
        if annotation is bytes:
            return "body", _the_body, name
        if annotation is dict or typing.get_origin(annotation) is dict:
            return "body", _json_object(name), name
        if _is_upload(annotation):
            return "file", _form_extractor("file", name, annotation, default, where), name
        if is_model(_unwrap_optional(annotation)[0]):
            return "body", _model_body(name, annotation, default, where, embed=False), name
        return "query", _value_extractor("query", name, annotation, default, where), name

    def _path_extractor(self, name: str, index: int, annotation: Any, where: str) -> Extractor:
        if annotation is inspect.Parameter.empty:
            convert = _BY_CONVERTOR.get(self.path_params[index][1], _to_str)
        else:
            inner = _unwrap_optional(annotation)[0]
            found = _CONVERTERS.get(inner) or _validated(inner, where)
            if found is None:
                raise TypeError(f"{where}: path parameter {name!r} has an unsupported type {annotation!r}")
            convert = found

        def extract(request: Request) -> Any:
            raw = request._params[index]
            try:
                return convert(raw)
            except _Bad as exc:
                raise _Invalid("path", name, exc.kind, str(exc), raw) from None

        return extract

    def __call__(self, request: Request) -> Dict[str, Any]:
        """The keyword arguments, with sync dependencies solved."""
        kwargs = {}
        errors = None
        for name, extract in self._plan:
            try:
                kwargs[name] = extract(request)
            except _Invalid as invalid:
                errors = errors or []
                errors.append(invalid.detail)
            except RequestValidationError as invalid:  # a body's errors, all of them
                errors = errors or []
                errors.extend(invalid.errors())
        for name, dependency in self._dependencies:
            try:
                value = dependency.solve(request)
                if name is not None:
                    kwargs[name] = value
            except RequestValidationError as invalid:
                errors = errors or []
                errors.extend(invalid.errors())
        if errors:
            raise RequestValidationError(errors)
        return kwargs

    async def solve_async(self, request: Request) -> Dict[str, Any]:
        """The keyword arguments, with sync and async dependencies solved."""
        try:
            kwargs, errors = self._without_dependencies(request), []
        except RequestValidationError as invalid:
            kwargs, errors = {}, list(invalid.errors())
        for name, dependency in self._dependencies:
            try:
                value = await dependency.solve_async(request)
            except RequestValidationError as invalid:
                errors.extend(invalid.errors())
                continue
            if name is not None:
                kwargs[name] = value
        if errors:
            raise RequestValidationError(errors)
        return kwargs


class Dependency:
    """A ``Depends`` read at registration: the callable, its own
    parameters, and how it gives its value (returns, awaits, yields)."""

    def __init__(self, marker: Depends, path: str, where: str) -> None:
        call = marker.dependency
        self.call = call
        self.use_cache = marker.use_cache
        self.name = getattr(call, "__qualname__", None) or repr(call)
        function = call if inspect.isfunction(call) or inspect.ismethod(call) else getattr(call, "__call__", call)
        self.is_generator = inspect.isgeneratorfunction(function)
        self.is_async_generator = inspect.isasyncgenfunction(function)
        self.is_coroutine = inspect.iscoroutinefunction(function)
        self.arguments = Arguments(call, path, f"{where}: dependency {self.name}")
        self.is_async = self.is_coroutine or self.is_async_generator or self.arguments.is_async
        #: Whether its value is kept for the rest of the request: only
        #: when ``use_cache`` and the callable is met again in the same
        #: handler's tree (see Arguments.plan_cache); a value asked for
        #: once costs no cache.
        self.cached = self.use_cache

    def solve(self, request: Request) -> Any:
        """Its value for ``request`` (from the request's cache when it ran
        already), on a sync handler's thread."""
        if not self.cached:
            value = self.call(**self.arguments(request))
            if self.is_generator:
                _finish_later(request, value)
                value = next(value)
            return value
        cache = _scope_of(request).values
        if self.call in cache:
            return cache[self.call]
        value = self.call(**self.arguments(request))
        if self.is_generator:
            _finish_later(request, value)
            value = next(value)
        cache[self.call] = value
        return value

    async def solve_async(self, request: Request) -> Any:
        """The same in an ``async def`` handler: coroutines are awaited."""
        cache = _scope_of(request).values if self.cached else None
        if cache is not None and self.call in cache:
            return cache[self.call]
        kwargs = await self.arguments.solve_async(request) if self.arguments.is_async else self.arguments(request)
        value = self.call(**kwargs)
        if self.is_coroutine:
            value = await value
        elif self.is_async_generator:
            _finish_later(request, value)
            value = await value.__anext__()
        elif self.is_generator:
            _finish_later(request, value)
            value = next(value)
        if cache is not None:
            cache[self.call] = value
        return value


def _scope_of(request: Request) -> RequestScope:
    """The request's scope, made by the first that needs it."""
    scope = request._scope
    if scope is None:
        scope = request._scope = RequestScope()
    return scope


def _the_websocket(request: Request) -> Any:
    websocket = request._scope.values.get(WebSocket) if request._scope is not None else None
    if websocket is None:
        raise TypeError("a WebSocket parameter is only given to @app.websocket handlers")
    return websocket


def _background_tasks(request: Request) -> BackgroundTasks:
    # One per request, kept with the dependencies' values.
    cache = _scope_of(request).values
    tasks = cache.get(BackgroundTasks)
    if tasks is None:
        tasks = cache[BackgroundTasks] = BackgroundTasks()
    return tasks


def _the_request(request: Request) -> Request:
    return request


def _the_body(request: Request) -> bytes:
    return request._body


def _json_object(name: str) -> Extractor:
    def extract(request: Request) -> Any:
        value = request._json_value()
        if not isinstance(value, dict):
            raise RequestValidationError([{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid dictionary", "input": value}])
        return value

    return extract


def _finish_later(request: Request, generator: Any) -> None:
    _scope_of(request).exits.append(generator)


def _marker_of(annotation: Any, default: Any) -> Tuple[Any, Any]:
    """The annotation without ``Annotated[...]``, and the parameter's
    marker (``Header()``, ``Depends(...)``, ...) if it has one."""
    marker = default if isinstance(default, (_Marker, Depends)) else None
    if typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation = args[0]
        for extra in args[1:]:
            if isinstance(extra, (_Marker, Depends)):
                marker = extra
    return annotation, marker


_GETTERS: Dict[str, Tuple[Callable[[Request, str], Any], Callable[[Request, str], List[str]]]] = {
    # No query string, no parameters: nothing to parse.
    "query": (lambda r, k: r.query_params.get(k) if r._query else None, lambda r, k: r.query_params.getlist(k) if r._query else []),
    "header": (lambda r, k: r.headers.get(k), lambda r, k: r.headers.getlist(k)),
    "cookie": (lambda r, k: r.cookies.get(k), lambda r, k: [v] if (v := r.cookies.get(k)) is not None else []),
}


def _model_body(name: str, annotation: Any, default: Any, where: str, embed: bool) -> Extractor:
    """The JSON body (or, with ``embed``, its field ``name``) validated as
    ``annotation``: a model (or Optional of one), or with ``Body()`` any
    type the body validators take."""
    inner, optional = _unwrap_optional(annotation)
    check = model_validator(annotation, f"{where}: parameter {name!r}")
    required = default is inspect.Parameter.empty and not optional
    fallback = None if default is inspect.Parameter.empty else default
    loc = ("body", name) if embed else ("body",)

    def missing(given: Any) -> Any:
        if required:
            raise RequestValidationError([{"type": "missing", "loc": list(loc), "msg": "Field required", "input": given}])
        return fallback

    def extract(request: Request) -> Any:
        if not request._body:
            return missing(None)
        try:
            value = request._json_value()
        except HTTPException as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error", "input": {}, "ctx": {"error": str(exc.detail)}}]) from None
        if embed:
            if type(value) is not dict:
                raise RequestValidationError([{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid dictionary", "input": value}])
            if name not in value:
                return missing(value)
            value = value[name]
        errors: List[Dict[str, Any]] = []
        result = check(value, loc, errors)
        if errors:
            raise RequestValidationError(errors)
        return result

    # Several body parameters each read their field (see Arguments).
    extract.embeddable = True  # type: ignore[attr-defined]
    return extract


def _is_upload(annotation: Any) -> bool:
    """``UploadFile``, ``Optional[UploadFile]`` or ``List[UploadFile]``."""
    inner = _unwrap_optional(annotation)[0]
    if typing.get_origin(inner) is list:
        inner = (typing.get_args(inner) or (None,))[0]
    return inner is UploadFile


def _form_extractor(source: str, name: str, annotation: Any, default: Any, where: str) -> Extractor:
    """A form field (``source`` ``"form"``) or file (``"file"``) of the
    name ``name``, validated as ``annotation`` with FastAPI's errors."""
    inner, optional = _unwrap_optional(annotation)
    many = typing.get_origin(inner) is list or inner is list
    item = (typing.get_args(inner) or (str,))[0] if many else inner
    if item is inspect.Parameter.empty:
        item = UploadFile if source == "file" else str
    required = default is inspect.Parameter.empty and not optional
    fallback = None if default is inspect.Parameter.empty else default
    loc = ("body", name)
    described = f"{where}: parameter {name!r}"
    if item is UploadFile or (source == "file" and item is bytes):
        wants_bytes = item is bytes

        def check(value: Any, at: Tuple[Any, ...], errors: List[Dict[str, Any]]) -> Any:
            if not isinstance(value, UploadFile):
                errors.append({"type": "value_error", "loc": list(at), "msg": f"Value error, Expected UploadFile, received: {type(value)}", "input": value})
                return None
            if wants_bytes:
                content = value.file.read()
                value.file.seek(0)
                return content
            return value

    elif source == "file":
        raise TypeError(f"{described} is File(); annotate it UploadFile, List[UploadFile] or bytes")
    else:
        check = model_validator(item, described)

    def extract(request: Request) -> Any:
        form = request._form_data()
        values = form.getlist(name)
        if source == "form":
            values = [v for v in values if v != ""]  # an empty field is a missing one, as in FastAPI
        if not values:
            if required:
                raise RequestValidationError([{"type": "missing", "loc": list(loc), "msg": "Field required", "input": None}])
            return fallback
        errors: List[Dict[str, Any]] = []
        if many:
            result = [check(v, (*loc, i), errors) for i, v in enumerate(values)]
        else:
            result = check(values[-1], loc, errors)
        if errors:
            raise RequestValidationError(errors)
        if request._awaitable:
            for value in result if many else (result,):
                if isinstance(value, UploadFile):
                    value._awaitable = True
        return result

    return extract


def _value_extractor(source: str, name: str, annotation: Any, default: Any, where: str) -> Extractor:
    get_one, get_all = _GETTERS[source]
    inner, optional = _unwrap_optional(annotation)
    required = default is inspect.Parameter.empty and not optional
    fallback = None if default is inspect.Parameter.empty else default
    if typing.get_origin(inner) is list or inner is list:
        args = typing.get_args(inner)
        item_type = args[0] if args else str
        convert_item = _CONVERTERS.get(item_type) or _validated(item_type, where)
        if convert_item is None:
            raise TypeError(f"{where}: {source} parameter {name!r} has an unsupported item type {args[0]!r}")

        def extract_list(request: Request) -> Any:
            values = get_all(request, name)
            if not values:
                if required:
                    raise _missing(source, name)
                return fallback
            converted = []
            for index, value in enumerate(values):
                try:
                    converted.append(convert_item(value))
                except _Bad as exc:
                    raise _Invalid(source, name, exc.kind, str(exc), value, index) from None
            return converted

        return extract_list
    convert = _CONVERTERS.get(inner) or _validated(inner, where)
    if convert is None:
        raise TypeError(
            f"{where}: {source} parameter {name!r} has an unsupported type {annotation!r}; "
            "use int, float, bool, str, uuid.UUID, an Enum, a Literal, a date or datetime, "
            "Optional[...] or List[...], "
            "or take request: Request"
        )

    def extract(request: Request) -> Any:
        raw = get_one(request, name)
        if raw is None:
            if required:
                raise _missing(source, name)
            return fallback
        try:
            return convert(raw)
        except _Bad as exc:
            raise _Invalid(source, name, exc.kind, str(exc), raw) from None

    return extract

