"""Routes: ``Router`` (routes grouped under a prefix, with tags and
dependencies), running a precomputed handler once, turning what it
returned into a stored response, and the route-table JSON the native
server reads (always flat: routers exist only in Python)."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, TypeVar, Union

from .exceptions import RouteError
from .responses import BODILESS, FileResponse, HeadersInput, JSONResponse, PlainTextResponse, Response, StreamingResponse, normalize_headers, with_route_headers
from .staticfiles import StaticFiles

__all__ = ["APP_WIDE_KEY", "METHODS", "Mount", "Route", "Router", "describe", "parameters", "precompute", "render", "route_entry_table", "route_table"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: The route table's key for the app-wide section (headers, CORS); no
#: method can be spelled with ``@``.
APP_WIDE_KEY = "@app"

_SERVER_ERROR = {"detail": "Internal Server Error"}

Handler = TypeVar("Handler", bound=Callable[..., Any])


class Decorators:
    """``get``/``post``/``put``/``patch``/``delete`` for anything with an
    ``add_route``: the App and routers."""

    def add_route(self, method: str, path: str, endpoint: Callable[..., Any], **options: Any) -> Any:
        raise NotImplementedError

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Registers a handler for GET (and HEAD) requests to ``path``; ``options`` as
        for ``add_route``."""
        return self._decorator("GET", path, options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Registers a handler for POST requests to ``path``; ``options`` as
        for ``add_route``."""
        return self._decorator("POST", path, options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Registers a handler for PUT requests to ``path``; ``options`` as
        for ``add_route``."""
        return self._decorator("PUT", path, options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Registers a handler for PATCH requests to ``path``; ``options`` as
        for ``add_route``."""
        return self._decorator("PATCH", path, options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Registers a handler for DELETE requests to ``path``; ``options`` as
        for ``add_route``."""
        return self._decorator("DELETE", path, options)

    def websocket(self, path: str, *, dependencies: Optional[Sequence[Any]] = None) -> Callable[[Handler], Handler]:
        """Registers an ``async def`` handler for WebSocket connections to
        ``path``: it takes a ``WebSocket`` (annotated, or named
        ``websocket``), and path, query, header and cookie parameters and
        ``dependencies`` as HTTP handlers do. HTTP middleware does not
        apply; a plain request to the path gets 426."""
        return self._decorator("GET", path, {"_websocket": True, "dependencies": dependencies, "include_in_schema": False})

    def _decorator(self, method: str, path: str, options: Dict[str, Any]) -> Callable[[Handler], Handler]:
        def register(endpoint: Handler) -> Handler:
            self.add_route(method, path, endpoint, _stacklevel=4, **options)
            return endpoint

        return register


def check_prefix(prefix: str) -> str:
    """A router prefix: ``""`` or ``/a/b``, never ending in ``/``."""
    if not isinstance(prefix, str):
        raise TypeError(f"a router prefix must be a str, got {prefix!r}")
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"a router prefix must start with '/' and not end with '/', got {prefix!r}")
    return prefix


class PlannedRoute:
    """A route a router holds until it is included: the full path so far,
    and the tags and dependencies of every router above it."""

    __slots__ = ("method", "path", "endpoint", "tags", "dependencies", "options")

    def __init__(self, method: str, path: str, endpoint: Callable[..., Any], tags: List[str], dependencies: List[Any], options: Dict[str, Any]) -> None:
        self.method = method
        self.path = path
        self.endpoint = endpoint
        self.tags = tags
        self.dependencies = dependencies
        self.options = options

    def under(self, prefix: str, tags: Sequence[str], dependencies: Sequence[Any]) -> "PlannedRoute":
        """The same route included under ``prefix``, its tags and
        dependencies first."""
        return PlannedRoute(self.method, prefix + self.path, self.endpoint, [*tags, *self.tags], [*dependencies, *self.dependencies], self.options)


class Router(Decorators):
    """Routes grouped under a path ``prefix``, with ``tags`` and
    ``dependencies`` (``Depends`` run for every route, their values
    unused) that apply to each; added to an App, or to another router,
    with ``include_router``. Routes are copied when the router is
    included: add them first.

    >>> router = Router(prefix="/articles", tags=["articles"])
    >>> @router.get("/{slug}")
    ... def article(slug: str):
    ...     return {"slug": slug}
    """

    def __init__(self, prefix: str = "", *, tags: Optional[Sequence[str]] = None, dependencies: Optional[Sequence[Any]] = None) -> None:
        self.prefix = check_prefix(prefix)
        self.tags = list(tags or [])
        self.dependencies = list(dependencies or [])
        #: The routes, with this router's prefix, tags and dependencies;
        #: and its mounts.
        self.routes: List[Union[PlannedRoute, "PlannedMount"]] = []

    def add_route(
        self,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        *,
        tags: Optional[Sequence[str]] = None,
        dependencies: Optional[Sequence[Any]] = None,
        _stacklevel: int = 2,
        **options: Any,
    ) -> None:
        """Adds a route; ``options`` as for ``App.add_route``, checked when
        the router is included."""
        if method not in METHODS:
            raise ValueError(f"route {method} {path}: method must be one of {', '.join(METHODS)}")
        self.routes.append(
            PlannedRoute(method, self.prefix + path, endpoint, [*self.tags, *(tags or [])], [*self.dependencies, *(dependencies or [])], options)
        )

    def mount(self, path: str, app: Any, name: Optional[str] = None) -> None:
        """Mounts ``app`` (a ``StaticFiles``) at ``path`` under this
        router's prefix, once the router is included (see ``App.mount``)."""
        prefix = mount_prefix(path, app)
        self.routes.append(PlannedMount(self.prefix + prefix, app, name))

    def include_router(
        self, router: "Router", *, prefix: str = "", tags: Optional[Sequence[str]] = None, dependencies: Optional[Sequence[Any]] = None
    ) -> None:
        """Adds ``router``'s routes under this router's prefix and
        ``prefix``, with this router's tags and dependencies and these."""
        check_prefix(prefix)
        for route in router.routes:
            self.routes.append(route.under(self.prefix + prefix, [*self.tags, *(tags or [])], [*self.dependencies, *(dependencies or [])]))


class PlannedMount:
    """A mount a router holds until it is included: its full path so far."""

    __slots__ = ("path", "app", "name")

    def __init__(self, path: str, app: Any, name: Optional[str]) -> None:
        self.path = path
        self.app = app
        self.name = name

    def under(self, prefix: str, tags: Sequence[str], dependencies: Sequence[Any]) -> "PlannedMount":
        """The same mount included under ``prefix`` (tags and dependencies
        do not apply to files)."""
        return PlannedMount(prefix + self.path, self.app, self.name)


def mount_prefix(path: Any, app: Any) -> str:
    """The prefix a mount at ``path`` serves under (``/static``; ``""`` for
    ``/``), once ``app`` is known to be one the server can serve."""
    if not isinstance(path, str) or not (path == "" or path.startswith("/")):
        raise RouteError(f"mount {path!r}: the path must start with '/'", f"GET {path}", type(app).__name__)
    prefix = path.rstrip("/")
    if not isinstance(app, StaticFiles):
        raise RouteError(
            f"mount {path}: cannot mount {type(app).__name__}: only StaticFiles can be mounted; "
            "sub-applications are not supported yet",
            f"GET {prefix}/{{path:path}}",
            type(app).__name__,
        )
    return prefix


class Mount:
    """A ``StaticFiles`` directory mounted at a path (``App.mount``): the
    server answers GET and HEAD requests to ``{prefix}/{path:path}`` from
    it with no Python per request (the files tier); with ``html=True``,
    ``{prefix}/`` and ``{prefix}`` too. One entry of ``app.routes``, left
    out of the OpenAPI document as FastAPI leaves mounts out."""

    method = "GET"
    include_in_schema = False
    #: What the route summary and the middleware look for on a route.
    error: Optional[BaseException] = None
    handler_id: Optional[int] = None
    cache_ttl: Optional[float] = None
    form = False

    def __init__(self, path: str, app: StaticFiles, name: Optional[str] = None) -> None:
        #: ``/static``: where the directory is mounted.
        self.prefix = mount_prefix(path, app)
        #: The route-table pattern: ``/static/{path:path}``.
        self.path = f"{self.prefix}/{{path:path}}"
        self.app = app
        self.name = name
        self.tags: List[str] = []

    @property
    def tier(self) -> str:
        """``files``: the server answers from the directory."""
        return "files"

    @property
    def endpoint(self) -> StaticFiles:
        """What messages name as the route's handler."""
        return self.app

    def table_entry(self) -> Dict[str, Any]:
        """This mount in the route-table format (see README)."""
        return self.app.table_entry()

    def __repr__(self) -> str:
        return f"<Mount {self.prefix or '/'} {self.app!r}>"


class Route:
    """A registered route: its tier, and the response the server stores
    (static) or the handler it asks (dynamic, cached)."""

    def __init__(
        self,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        response: Optional[Response] = None,
        error: Optional[BaseException] = None,
        handler_id: Optional[int] = None,
        cache_ttl: Optional[float] = None,
        cache_max_entries: Optional[int] = None,
        stale_ttl: Optional[float] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.endpoint = endpoint
        self.response = response
        #: The exception the handler raised at registration; the route then
        #: answers 500.
        self.error = error
        #: The id the server asks the handler by (per-request tiers only).
        self.handler_id = handler_id
        self.cache_ttl = cache_ttl
        self.cache_max_entries = cache_max_entries
        #: How old a stored response may be and still be sent while it is
        #: re-rendered; ``None``: twice ``cache_ttl``.
        self.stale_ttl = stale_ttl
        #: Labels for OpenAPI, from the route and its routers.
        self.tags: List[str] = []
        # What its OpenAPI operation says (App.add_route's keywords; see
        # sufast.openapi.operation_info).
        self.status_code = 200
        #: As given to ``add_route`` (by default, the return annotation).
        self.response_model: Any = None
        #: The ``Depends`` of the App, routers and route, run before the handler's.
        self.dependencies: List[Any] = []
        self.summary: Optional[str] = None
        self.description: Optional[str] = None
        self.responses: Dict[Any, Dict[str, Any]] = {}
        self.operation_id: Optional[str] = None
        self.include_in_schema = True
        self.deprecated: Optional[bool] = None
        #: Whether its handler reads a form: the server parses form bodies
        #: for it as they arrive (per-request tiers only).
        self.form = False
        #: Whether it takes WebSocket connections (``@app.websocket``).
        self.websocket = False
        #: Whether its handler reads the body as it arrives (its code
        #: calls ``request.stream()``): the server hands it over in pieces.
        self.stream = False

    @property
    def tier(self) -> str:
        """``static`` (ran once), ``cached`` (kept for ``cache_ttl``) or
        ``dynamic`` (runs per request)."""
        if self.handler_id is None:
            return "static"
        if self.websocket:
            return "websocket"
        return "dynamic" if self.cache_ttl is None else "cached"

    @property
    def name(self) -> str:
        """``GET /users``: how messages name this route."""
        return f"{self.method} {self.path}"

    def table_entry(self) -> Dict[str, Any]:
        """This route in the route-table format (see README)."""
        if self.handler_id is not None:
            if self.websocket:
                return {"kind": "websocket", "handler": self.handler_id}
            if self.cache_ttl is None:
                if self.form:
                    return {"kind": "dynamic", "handler": self.handler_id, "form": True}
                if self.stream:
                    return {"kind": "dynamic", "handler": self.handler_id, "stream": True}
                return {"kind": "dynamic", "handler": self.handler_id}
            entry = {
                "kind": "cached",
                "handler": self.handler_id,
                "ttl_ms": max(1, round(self.cache_ttl * 1000)),
                "max_entries": self.cache_max_entries,
            }
            if self.stale_ttl is not None:
                entry["stale_ttl_ms"] = max(1, round(self.stale_ttl * 1000))
            return entry
        if self.response is not None:
            return response_entry(self.response)
        # As a per-request handler's 500: the reason went to the
        # RouteWarning at registration, never on the wire.
        return response_entry(JSONResponse(_SERVER_ERROR, status_code=500))

    def __repr__(self) -> str:
        return f"<Route {self.name} {self.tier}>"


def response_entry(response: Response) -> Dict[str, Any]:
    """A response in the route-table format: text bodies stay readable,
    other bytes travel as base64."""
    entry: Dict[str, Any] = {
        "status": response.status_code,
        "content_type": response.content_type,
        "headers": [[n, v] for n, v in response.headers.items() if n != "content-type"],
    }
    try:
        entry["body"] = response.body.decode("utf-8")
    except UnicodeDecodeError:
        entry["body_base64"] = base64.b64encode(response.body).decode("ascii")
    return entry


def render(result: Any, status_code: int, headers: HeadersInput) -> Response:
    """Turns a handler's return value into a response.

    A ``Response`` is taken as is (the route's headers are added unless it
    sets the same name); ``str`` becomes ``text/plain``; ``bytes`` become
    ``application/octet-stream``; anything else is serialized as JSON. Raises ``TypeError`` when the value
    cannot be serialized. With a status that has no body (204, 304), any
    value but a ``Response`` gives an empty response, as in FastAPI.
    """
    extra = normalize_headers(headers)
    if isinstance(result, Response):
        return with_route_headers(result, extra)
    if status_code in BODILESS:
        return Response(None, status_code, extra)
    if isinstance(result, str):
        return PlainTextResponse(result, status_code, extra)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(result, status_code, extra, media_type="application/octet-stream")
    return JSONResponse(result, status_code, extra)


def _call_once(endpoint: Callable[[], Any]) -> Any:
    result = endpoint()
    if inspect.isawaitable(result):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if inspect.iscoroutine(result):
                result.close()
            raise RuntimeError("an async handler cannot be precomputed inside a running event loop")

        async def wait() -> Any:
            return await result

        result = asyncio.run(wait())
    return result


def precompute(
    method: str,
    path: str,
    endpoint: Callable[[], Any],
    status_code: int = 200,
    headers: HeadersInput = None,
    output: Optional[Callable[[Any], Any]] = None,
) -> Optional[Route]:
    """Runs a zero-argument handler once and stores what it returned
    (through ``output``, its response model's filter, if any).

    ``None`` for a handler that answers with a stream or a file, which
    cannot be stored: its route is then served per request (the stream
    made at registration is closed unread).

    A handler that raises is kept as a 500 route with the exception in
    ``Route.error``; a value that cannot be serialized raises ``TypeError``
    naming the route.
    """
    try:
        result = _call_once(endpoint)
    except Exception as exc:  # the handler's failure becomes a 500 route
        return Route(method, path, endpoint, error=exc)
    if isinstance(result, (StreamingResponse, FileResponse)) or inspect.isgenerator(result) or inspect.isasyncgen(result):
        source = getattr(result, "body_iterator", result)
        if inspect.isgenerator(source):
            source.close()
        elif inspect.isasyncgen(source):
            asyncio.run(source.aclose())
        return None
    try:
        if output is not None and not isinstance(result, Response):
            result = output(result)
        response = render(result, status_code, headers)
    except TypeError as exc:
        raise TypeError(f"route {method} {path}: handler {describe(endpoint)} returned {exc}") from exc
    return Route(method, path, endpoint, response=response)


def describe(endpoint: Callable[..., Any]) -> str:
    """How messages name a handler: its qualified name."""
    return getattr(endpoint, "__qualname__", None) or repr(endpoint)


def route_entry_table(method: str, path: str, entry: Dict[str, Any]) -> bytes:
    """A table of one route, for checking it on its own."""
    return _dump({method: {path: entry}})


def route_table_of(method: str, entries: Dict[str, Any]) -> bytes:
    """A table of one method's routes (``{path: entry}``), for checking."""
    return _dump({method: entries})


def route_table(routes: Iterable[Route], app_wide: Optional[Dict[str, Any]] = None) -> bytes:
    """The whole route table as UTF-8 JSON for ``set_routes``, with the
    app-wide section (``{"headers": ..., "cors": ...}``) when given."""
    table: Dict[str, Dict[str, Any]] = {}
    if app_wide:
        table[APP_WIDE_KEY] = app_wide
    for route in routes:
        table.setdefault(route.method, {})[route.path] = route.table_entry()
    return _dump(table)


def _dump(table: Dict[str, Any]) -> bytes:
    return json.dumps(table, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parameters(endpoint: Callable[..., Any]) -> List[str]:
    """The names of the parameters a handler declares."""
    return list(inspect.signature(endpoint).parameters)

