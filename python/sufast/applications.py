"""``App``: register handlers with decorators, then serve them with the
native server (``run`` blocks, ``start``/``stop`` do not)."""

from __future__ import annotations

import atexit
import inspect
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from . import requests as _requests
from ._version import __version__
from .compression import Compression
from .cors import CORS
from .datastructures import State
from .exceptions import HTTPException, RouteError, RouteWarning, SufastError
from .limits import server_limits
from .logs import configure_logger, log_options
from .responses import HeadersInput, normalize_headers
from ._pool import HandlerPool
from .handlers import Endpoint, ExceptionHandlers, WebSocketEndpoint
from .middleware import HTTPMiddleware, names
from .params import Depends, check_path_parameters, check_path_style
from .models import DEFAULT_RESPONSE_MODEL, resolve_response_model
from .openapi import get_openapi, openapi_routes, operation_info
from .purity import stale_reasons
from .requests import Request
from .routing import Decorators, Handler, Mount, PlannedMount, Route, Router, check_prefix, describe, parameters, precompute, route_entry_table, route_table, route_table_of
from .workers import serve_workers

__all__ = ["App"]

logger = logging.getLogger("sufast")


# The native server is one per process; this is the App serving it.
_serving_lock = threading.Lock()
_serving: Optional["App"] = None


class App(Decorators):
    """A sufast application.

    >>> app = App()
    >>> @app.get("/")
    ... def hello():
    ...     return {"message": "hello"}
    """

    def __init__(
        self,
        *,
        threads: int = 8,
        max_threads: int = 64,
        max_pending: int = 1024,
        max_body_size: int = 16 * 1024 * 1024,
        cache_max_entries: int = 1024,
        headers: HeadersInput = None,
        cors: Optional[CORS] = None,
        compression: Union[Compression, bool, None] = None,
        forwarded_allow_ips: Optional[Sequence[str]] = None,
        header_timeout: float = 10.0,
        keepalive_timeout: float = 5.0,
        body_timeout: float = 30.0,
        request_timeout: float = 60.0,
        max_header_size: int = 64 * 1024,
        max_connections: Optional[int] = None,
        max_form_parts: int = 1000,
        max_part_size: int = 1024 * 1024,
        upload_spool_size: int = 1024 * 1024,
        stream_buffer: int = 256 * 1024,
        send_timeout: float = 30.0,
        ws_max_size: int = 1024 * 1024,
        dependencies: Optional[Sequence[Depends]] = None,
        exception_handlers: Optional[Mapping[Union[int, type], Callable[..., Any]]] = None,
        lifespan: Optional[Callable[["App"], Any]] = None,
        precompute: bool = True,
        on_startup: Optional[Sequence[Callable[[], Any]]] = None,
        on_shutdown: Optional[Sequence[Callable[[], Any]]] = None,
        middleware: Optional[Sequence[Callable[..., Any]]] = None,
        title: str = "sufast",
        version: str = "0.1.0",
        description: str = "",
        openapi_url: Optional[str] = "/openapi.json",
        docs_url: Optional[str] = "/docs",
        redoc_url: Optional[str] = "/redoc",
    ) -> None:
        """``threads`` Python threads run sync handlers (and hand ``async
        def`` ones to the app's event loop); when every one of them has
        been inside one request for over a second, another starts, up to
        ``max_threads``, and beyond that requests to handlers get 503 at
        once until one is free; at most ``max_pending``
        requests may wait for or be inside handlers (more get 503 at once);
        request bodies over ``max_body_size`` bytes get 413; a cached route
        keeps at most ``cache_max_entries`` responses unless it says
        otherwise.

        ``headers`` (a dict, or ``(name, value)`` pairs) go on every
        response the server sends, its own errors included, unless the
        response sets the same name. ``cors`` is a ``CORS`` policy the
        server applies to every response, answering preflight requests
        itself. A bad header or policy raises ``SufastError`` here.

        ``compression`` gzips responses for the clients whose
        ``Accept-Encoding`` takes it, in the server (no Python per
        request): ``True`` with the defaults, or a ``Compression``
        (``minimum_size`` in bytes, ``level`` 1 to 9); ``None`` or ``False``
        (the default) leaves responses as they are. Files mounted with
        ``StaticFiles`` are not compressed on the fly.

        ``forwarded_allow_ips`` lists the proxies (IP addresses, networks
        such as ``"10.0.0.0/8"``, or ``"*"`` for any) whose
        ``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``Forwarded`` headers
        are believed: a request from one of them gets the client and scheme
        the headers name in ``request.client``, ``request.url`` and the
        access log. From anyone else the headers are ignored. By default no
        proxy is trusted.

        The server's limits (see the README's Limits): a request head not
        complete ``header_timeout`` seconds after the accept (or, on a
        kept-alive connection, after its first byte) gets 408 and the
        connection closes; a connection idle ``keepalive_timeout`` seconds
        between requests is closed; a head over ``max_header_size`` bytes gets 431; a
        body that pauses longer than ``body_timeout`` seconds gets 408; a
        handler that has not answered after ``request_timeout`` seconds
        gets its client a 504. At most ``max_connections`` connections are
        open at once (default: the open-files limit less an eighth), more
        wait until one closes. A form with more than ``max_form_parts``
        fields and files, or a field (not a file) over ``max_part_size``
        bytes, gets 413; an uploaded file over ``upload_spool_size`` bytes
        is written to a temporary file as it arrives, not kept in memory.
        A streamed response buffers at most ``stream_buffer`` bytes (plus
        one chunk) before its producer waits; a client that reads nothing
        for ``send_timeout`` seconds while it waits is disconnected. A
        WebSocket message over ``ws_max_size`` bytes closes its socket
        with 1009.

        ``title``, ``version`` and ``description`` head the OpenAPI
        document (``app.openapi()``), which the server sends from
        ``openapi_url``, with Swagger UI at ``docs_url`` and ReDoc at
        ``redoc_url``: stored routes made when the app starts.
        ``openapi_url=None`` turns all three off, ``docs_url=None`` or
        ``redoc_url=None`` one page.
        """
        for what, url in (("openapi_url", openapi_url), ("docs_url", docs_url), ("redoc_url", redoc_url)):
            if url is not None and (not isinstance(url, str) or not url.startswith("/")):
                raise ValueError(f"{what} must be a path starting with '/', or None, got {url!r}")
        self.title = title
        self.version = version
        self.description = description
        self.openapi_version = "3.1.0"
        self.openapi_url = openapi_url
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        #: The document ``openapi()`` built, kept from then on.
        self.openapi_schema: Optional[Dict[str, Any]] = None
        # The stored routes of the document and its pages, made at start.
        self._openapi_routes: List[Route] = []
        _check_count("threads", threads)
        _check_count("max_threads", max_threads)
        if max_threads < threads:
            raise ValueError(f"max_threads ({max_threads}) must be at least threads ({threads})")
        _check_count("max_pending", max_pending, 2**32 - 1)
        _check_count("max_body_size", max_body_size, 2**64 - 1)
        _check_count("cache_max_entries", cache_max_entries, 2**32 - 1)
        self._headers = headers
        self._cors = cors
        self._compression = _compression(compression)
        #: Run for every route registered on the app, before its own.
        self._dependencies: List[Depends] = _depends_list("App", dependencies)
        #: What start-up code keeps for handlers: ``request.app.state``.
        self.state = State()
        for what, hooks in (("on_startup", on_startup), ("on_shutdown", on_shutdown)):
            if any(not callable(hook) for hook in hooks or ()):
                raise TypeError(f"{what} must be a list of callables, got {hooks!r}")
        if lifespan is not None and not callable(lifespan):
            raise TypeError(f"lifespan must be a callable taking the app and giving a context manager, got {lifespan!r}")
        self._lifespan = lifespan
        if not isinstance(precompute, bool):
            raise TypeError(f"precompute must be True or False, got {precompute!r}")
        #: False: handlers without parameters run per request too.
        self._precompute = precompute
        self._on_startup = list(on_startup or [])
        self._on_shutdown = list(on_shutdown or [])
        self._lifespan_context: Any = None
        self._exception_handlers = ExceptionHandlers()
        for key, handler in (exception_handlers or {}).items():
            self._exception_handlers.add(key, handler)
        self._forwarded_allow_ips = _ip_list(forwarded_allow_ips)
        self._app_wide = _app_wide(headers, cors, self._forwarded_allow_ips, self._compression)
        # What is served: the App's section, or start()'s override of it.
        self._serving_app_wide = self._app_wide
        self._routes: Dict[Tuple[str, str], Route] = {}
        self._endpoints: Dict[int, Endpoint] = {}
        self._next_handler = 1
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._limits = server_limits(
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
            body_timeout=body_timeout,
            request_timeout=request_timeout,
            max_header_size=max_header_size,
            max_connections=max_connections,
            max_form_parts=max_form_parts,
            max_part_size=max_part_size,
            upload_spool_size=upload_spool_size,
            stream_buffer=stream_buffer,
            send_timeout=send_timeout,
            ws_max_size=ws_max_size,
        )
        self._max_pending = max_pending
        self._max_body_size = max_body_size
        self._cache_max_entries = cache_max_entries
        self._pool = HandlerPool(self._endpoints, threads, max_threads)
        # Handler ids of the endpoints that answer unmatched requests (by
        # status: 404, 405), made once an exception handler covers them.
        self._fallbacks: Dict[int, int] = {}
        #: HTTP middleware, outermost first, around every dynamic route.
        self._middleware: List[HTTPMiddleware] = []
        for function in middleware or ():
            self._add_middleware(function)

    # Registration -----------------------------------------------------------

    def middleware(self, kind: str) -> Callable[[Handler], Handler]:
        """Registers ``function(request, call_next)`` (``"http"`` is the
        only kind) around every per-request (dynamic) route: it may read
        the request, call ``call_next(request)`` for the route's response
        (``await`` it in an ``async def`` middleware), change that and
        return it, or return a ``Response`` of its own. The first
        registered runs first. Static and cached routes are served
        without it (``dynamic=True`` sends one through it). Register
        middleware before the app starts."""
        if kind != "http":
            raise ValueError(f"middleware kind must be 'http', got {kind!r}")

        def register(function: Handler) -> Handler:
            self._add_middleware(function)
            return function

        return register

    def _add_middleware(self, function: Callable[..., Any]) -> None:
        if self.running:
            raise SufastError("middleware cannot be added while the app is serving; add it before start()")
        with self._lock:
            self._middleware.append(HTTPMiddleware(function))
            covered = [r.handler_id for r in self._routes.values() if r.handler_id is not None and r.cache_ttl is None]
            for handler_id in covered + list(self._fallbacks.values()):
                self._endpoints[handler_id].use_middleware(self._middleware, self._pool.run_on_loop)

    def exception_handler(self, key: Union[int, type]) -> Callable[[Handler], Handler]:
        """Registers ``handler(request, exc)`` for exceptions of class
        ``key`` (and its subclasses) or, given a status code, for
        ``HTTPException`` with it (422 also covers
        ``RequestValidationError``), raised by per-request handlers and
        their dependencies. It returns a ``Response`` (or a value sent as
        JSON with the exception's status), sync or async."""

        ExceptionHandlers.check(key)

        def register(handler: Handler) -> Handler:
            with self._lock:
                self._exception_handlers.add(key, handler)
                if self.running:  # it may now answer unmatched requests
                    self._ship()
            return handler

        return register

    def include_router(
        self, router: Router, *, prefix: str = "", tags: Optional[Sequence[str]] = None, dependencies: Optional[Sequence[Depends]] = None
    ) -> None:
        """Registers every route of ``router`` (and of the routers it
        includes) under ``prefix``, with ``tags`` and ``dependencies``
        before the router's own. The route table stays flat."""
        check_prefix(prefix)
        for planned in router.routes:
            route = planned.under(prefix, tags or [], dependencies or [])
            if isinstance(route, PlannedMount):
                self.mount(route.path, route.app, name=route.name)
                continue
            self.add_route(
                route.method, route.path, route.endpoint, tags=route.tags, dependencies=route.dependencies, _stacklevel=3, **route.options
            )

    def mount(self, path: str, app: Any, name: Optional[str] = None) -> Mount:
        """Serves the directory of ``app``, a ``StaticFiles``, at ``path``:
        GET and HEAD requests to ``{path}/{file}`` are answered by the
        server from the files, with no Python per request (the ``files``
        tier; middleware does not see them, app-wide headers and CORS
        apply). Other applications cannot be mounted yet: ``RouteError``.
        The mount is one entry of ``routes`` (its path
        ``/static/{path:path}``), left out of the OpenAPI document. If the
        server is running, it serves the mount at once."""
        mount = Mount(path, app, name)
        key = (mount.method, mount.path)
        with self._lock:
            if key in self._routes:
                earlier = describe(self._routes[key].endpoint)
                raise RouteError(f"mount {path}: {mount.path} is already registered, by {earlier}", f"GET {mount.path}", repr(app))
            # Clashes with the GET routes there are, and the directory.
            if os.path.isdir(app.directory):  # else (check_dir=False) when the app starts
                table = {p: {"status": 200} for (m, p) in self._routes if m == mount.method}
                table[mount.path] = mount.table_entry()
                try:
                    _native.check_routes(route_table_of(mount.method, table))
                except SufastError as exc:
                    raise RouteError(f"mount {path}: {exc.message}", f"GET {mount.path}", repr(app)) from None
            self._routes[key] = mount
        if self.running:
            try:
                self._ship()
            except SufastError:
                with self._lock:
                    del self._routes[key]
                raise
        return mount

    def add_route(
        self,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        *,
        status_code: int = 200,
        headers: HeadersInput = None,
        dynamic: Optional[bool] = None,
        cache_ttl: Optional[float] = None,
        cache_max_entries: Optional[int] = None,
        stale_ttl: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        dependencies: Optional[Sequence[Depends]] = None,
        response_model: Any = DEFAULT_RESPONSE_MODEL,
        summary: Optional[str] = None,
        description: Optional[str] = None,
        responses: Optional[Mapping[Union[int, str], Mapping[str, Any]]] = None,
        operation_id: Optional[str] = None,
        include_in_schema: bool = True,
        deprecated: Optional[bool] = None,
        _websocket: bool = False,
        _stacklevel: int = 2,
    ) -> Route:
        """Registers ``endpoint`` for ``method`` requests to ``path``.

        A handler that declares parameters runs per request. One without
        runs now, once, and its result is what the server sends; if it
        raises, the route answers 500 and a ``RouteWarning`` names it.
        When its code reads a module-level object that can change or calls
        something not known to give the same answer each time (the clock,
        random numbers, I/O, a method of a global), a ``RouteWarning``
        names what it read; ``dynamic=False`` keeps it precomputed without
        the warning. ``dynamic=True`` runs it per request instead; ``cache_ttl=seconds``
        runs it when its stored response (per path and query, at most
        ``cache_max_entries`` of them) is older than that; while that one
        render runs, others get the old copy if it is younger than
        ``stale_ttl`` (default twice ``cache_ttl``), else they wait for the
        render. ``status_code``
        and ``headers`` apply to plain return values. ``dependencies``
        (``Depends``) run before the handler, their values unused, after
        the App's; a route with any runs per request. ``tags`` label it
        (for OpenAPI). ``response_model`` (by default the return
        annotation, when it names a dataclass, TypedDict, pydantic model
        or a list of them; ``None`` for none) checks what the handler
        returns and sends only the model's fields; a value that does not
        match is logged and answered with a 500. If the server is running, it serves the new route
        at once.

        For the OpenAPI document, as in FastAPI: ``summary`` (default: the
        docstring's first line, else the handler's name) and
        ``description`` (default: the rest of the docstring) of the
        operation, ``responses`` (``{404: {"description": ..., "model":
        Model}}``) beside the ``status_code`` one, ``operation_id``,
        ``deprecated``; ``include_in_schema=False`` leaves the route out.
        """
        name = f"{method} {path}"
        try:
            extra = self._dependencies + _depends_list(f"route {name}", dependencies)
            output = resolve_response_model(endpoint, response_model, f"route {name}: response_model")
            info = operation_info(
                status_code=status_code, response_model=response_model, dependencies=extra, summary=summary, description=description,
                responses=responses, operation_id=operation_id, include_in_schema=include_in_schema, deprecated=deprecated,
            )  # fmt: skip
            route = self._register(
                name, method, path, endpoint, status_code, headers, dynamic, cache_ttl, cache_max_entries, stale_ttl, _stacklevel + 1, extra, output,
                _websocket,
            )
            route.tags = [str(tag) for tag in tags or []]
            for key, value in info.items():
                setattr(route, key, value)
        except RouteError:
            raise
        except (TypeError, ValueError, SufastError) as exc:
            handler = describe(endpoint)
            raise RouteError(_naming(name, handler, str(exc)), name, handler) from None
        if self.running:
            try:
                self._ship()
            except SufastError:
                with self._lock:
                    del self._routes[(method, path)]
                raise
        return route

    def _register(
        self,
        name: str,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        status_code: int,
        headers: HeadersInput,
        dynamic: Optional[bool],
        cache_ttl: Optional[float],
        cache_max_entries: Optional[int],
        stale_ttl: Optional[float],
        stacklevel: int,
        dependencies: List[Depends],
        output: Optional[Callable[[Any], Any]] = None,
        websocket: bool = False,
    ) -> Route:
        check_path_style(path)
        if cache_ttl is not None:
            if dynamic:
                raise ValueError(f"route {name}: give dynamic=True or cache_ttl, not both")
            if isinstance(cache_ttl, bool) or not isinstance(cache_ttl, (int, float)) or not 0.001 <= cache_ttl <= 4_000_000:
                raise ValueError(f"route {name}: cache_ttl must be a number of seconds from 0.001 to 4000000, got {cache_ttl!r}")
            if cache_max_entries is None:
                cache_max_entries = self._cache_max_entries
            _check_count(f"route {name}: cache_max_entries", cache_max_entries)
            if stale_ttl is not None and (
                isinstance(stale_ttl, bool) or not isinstance(stale_ttl, (int, float)) or not cache_ttl <= stale_ttl <= 4_000_000
            ):
                raise ValueError(f"route {name}: stale_ttl must be a number of seconds from cache_ttl ({cache_ttl}) to 4000000, got {stale_ttl!r}")
        elif cache_max_entries is not None or stale_ttl is not None:
            raise ValueError(f"route {name}: cache_max_entries and stale_ttl need cache_ttl")
        if websocket:
            if not inspect.iscoroutinefunction(endpoint):
                raise TypeError("a WebSocket handler must be async def")
            if cache_ttl is not None:
                raise ValueError("a WebSocket route cannot have cache_ttl")
        per_request = (
            websocket
            or dynamic
            or not self._precompute
            or inspect.isgeneratorfunction(endpoint)
            or inspect.isasyncgenfunction(endpoint) or cache_ttl is not None or bool(parameters(endpoint)) or bool(dependencies)
        )
        with self._lock:
            if (method, path) in self._routes:
                earlier = describe(self._routes[(method, path)].endpoint)
                raise ValueError(f"the route is already registered, by handler {earlier}")
            # Check the path, status and headers, and that the path does
            # not clash with another route's, before running the handler.
            placeholder = {"status": status_code, "headers": normalize_headers(headers)}
            same_method = {p: {"status": 200} for (m, p) in self._routes if m == method}
            same_method[path] = placeholder
            try:
                _native.check_routes(route_table_of(method, same_method))
            except SufastError as exc:
                # Name the handler of the route it clashes with, if one.
                # The longest path the message names is the other route ("/u"
                # is in "/u/{id}" too).
                named = exc.message.replace(f"route {name}", "")
                others = [r for (m, p), r in self._routes.items() if m == method and p in named]
                if others:
                    other = max(others, key=lambda r: len(r.path))
                    raise SufastError(f"{exc.message} (handler {describe(other.endpoint)})", exc.code) from None
                raise
            check_path_parameters(path, endpoint, dependencies)
            route = None
            if not per_request:
                # None: it answers with a stream or a file, sent per request.
                route = precompute(method, path, endpoint, status_code, headers, output)
                if route is not None and dynamic is None:
                    _warn_if_stale(name, endpoint, stacklevel + 1)
            if route is None:
                per_request = True
                handler_id = self._next_handler
                kind = WebSocketEndpoint if websocket else Endpoint
                handler = kind(name, path, endpoint, status_code, headers, dependencies, self._exception_handlers, output)
                if cache_ttl is None and self._middleware and not websocket:
                    handler.use_middleware(self._middleware, self._pool.run_on_loop)
                route = Route(
                    method, path, endpoint, handler_id=handler_id, cache_ttl=cache_ttl, cache_max_entries=cache_max_entries, stale_ttl=stale_ttl
                )
                route.form = cache_ttl is None and handler.arguments.reads_form and not websocket
                route.websocket = websocket
                # A handler whose code calls stream() gets its body as it
                # arrives, unless a parameter reads the body whole.
                route.stream = (
                    cache_ttl is None and not websocket and not handler.arguments.reads_body and _calls_stream(endpoint)
                )
            _native.check_routes(route_entry_table(method, path, route.table_entry()))
            if route.error is not None:
                warnings.warn(
                    f"route {name}: handler raised {type(route.error).__name__}: {route.error}; "
                    "the route answers 500",
                    RouteWarning,
                    stacklevel=stacklevel,
                )
            if per_request:
                self._next_handler += 1
                self._endpoints[handler_id] = handler
            self._routes[(method, path)] = route
        return route

    @property
    def routes(self) -> List[Route]:
        """The registered routes, in registration order."""
        with self._lock:
            return list(self._routes.values())

    def openapi(self) -> Dict[str, Any]:
        """The app's OpenAPI 3.1 document, built from its routes the first
        time and kept (``openapi_schema``) from then on, as FastAPI does."""
        if self.openapi_schema is None:
            self.openapi_schema = get_openapi(
                title=self.title, version=self.version, openapi_version=self.openapi_version, description=self.description, routes=self.routes
            )
        return self.openapi_schema

    # Serving ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether this app is the one the native server is serving."""
        return _serving is self

    @property
    def port(self) -> int:
        """The port this app is served on, or 0 when it is not running."""
        return _native.bound_port() if self.running else 0

    def _ship(self) -> None:
        app_wide = {**self._serving_app_wide, **self._fallback_handlers()}
        routes = self.routes
        # The document's routes first: a route of the app's own at one of
        # their paths replaces it.
        _native.set_routes(route_table([*self._openapi_routes, *routes], app_wide))
        _requests.form_handlers = frozenset(r.handler_id for r in routes if r.form)

    def _fallback_handlers(self) -> Dict[str, int]:
        """The route table's handlers for unmatched requests: for 404 and
        405, when an exception handler covers them (else the server
        answers those itself, with no Python)."""
        section = {}
        for status, (key, function) in _FALLBACKS.items():
            if not self._exception_handlers.covers_status(status):
                continue
            handler_id = self._fallbacks.get(status)
            if handler_id is None:
                handler_id = self._next_handler
                endpoint = Endpoint("(no route)", "/", function, exception_handlers=self._exception_handlers)
                if self._middleware:
                    endpoint.use_middleware(self._middleware, self._pool.run_on_loop)
                self._next_handler += 1
                self._endpoints[handler_id] = endpoint
                self._fallbacks[status] = handler_id
            section[key] = handler_id
        return section

    def start(
        self,
        port: int = 0,
        *,
        production: bool = False,
        host: Optional[str] = None,
        fd: Optional[int] = None,
        access_log: Optional[bool] = None,
        access_log_format: str = "common",
        log_level: str = "info",
        forwarded_allow_ips: Optional[Sequence[str]] = None,
        _log_routes: bool = True,
    ) -> int:
        """Starts serving without blocking and returns the bound port.

        ``production`` binds 0.0.0.0 and turns the access log off unless
        ``access_log`` says otherwise; otherwise the server binds 127.0.0.1. ``host`` overrides the
        address. Port 0 picks a free port. ``fd`` serves a TCP socket the
        caller already bound and set listening (``host`` and ``port`` are
        then ignored); the caller keeps it and closes it.

        ``access_log`` writes one line per request to stderr, from the
        server itself (no Python runs for it): by default in development
        and not in production. ``access_log_format`` is ``"common"`` (the
        Common Log Format plus the duration) or ``"json"`` (JSON lines).
        ``log_level`` (``"critical"``, ``"error"``, ``"warning"``,
        ``"info"``, ``"debug"``, ``"trace"``) sets what the server and the
        ``sufast`` logger report. ``forwarded_allow_ips`` replaces the
        App's list of trusted proxies while it serves.
        """
        options = log_options(access_log, access_log_format, log_level, production)
        app_wide = self._app_wide
        if forwarded_allow_ips is not None:
            app_wide = _app_wide(self._headers, self._cors, _ip_list(forwarded_allow_ips), self._compression)
        global _serving
        with _serving_lock:
            if _serving is not None:
                raise SufastError(f"an App is already being served on port {_native.bound_port()}; stop it first")
            # Held for this app while its start-up code runs (which may
            # register routes, so the app's own lock is not held).
            _serving = self
        try:
            configure_logger(log_level)
            self._pool.start_loop()
            try:
                self._pool.run_on_loop(self._enter_lifespan)
            except BaseException:
                self._pool.stop(timeout=0)
                raise
            with self._lock:
                self._serving_app_wide = app_wide
                _native.set_limits(self._max_pending, self._max_body_size)
                for name, value in {**options, **self._limits}.items():
                    _native.set_option(name, value)
                try:
                    if self.openapi_url is not None:  # after the start-up code, which may add routes
                        self._openapi_routes = openapi_routes(self.openapi, self.title, self.openapi_url, self.docs_url, self.redoc_url)
                    self._ship()
                    bound = _native.start(port, production, host) if fd is None else _native.start_fd(fd, production)
                except BaseException:
                    self._pool.stop(timeout=0, before_loop_stops=self._exit_lifespan)
                    raise
                self._stopped.clear()
                self._pool.start_threads()
                if _log_routes:
                    # What run() prints in its banner (which it prints instead).
                    logger.info("serving on port %d:\n%s", bound, self._route_summary())
                elif self._middleware:
                    logger.info("middleware: %s", self._middleware_note())
        except BaseException:
            with _serving_lock:
                _serving = None
            raise
        _register_atexit()
        return bound

    async def _enter_lifespan(self) -> None:
        """Runs ``on_startup`` and enters ``lifespan``, on the app's loop."""
        for hook in self._on_startup:
            result = hook()
            if inspect.isawaitable(result):
                await result
        if self._lifespan is not None:
            context = self._lifespan(self)
            if hasattr(context, "__aenter__"):
                state = await context.__aenter__()
            elif hasattr(context, "__enter__"):
                state = context.__enter__()
            else:
                raise TypeError(f"lifespan must give a context manager, got {context!r}")
            self._lifespan_context = context
            if isinstance(state, Mapping):
                for name, value in state.items():
                    setattr(self.state, name, value)

    async def _exit_lifespan(self) -> None:
        """Leaves ``lifespan`` and runs ``on_shutdown``, on the app's loop."""
        context, self._lifespan_context = self._lifespan_context, None
        if context is not None:
            try:
                if hasattr(context, "__aexit__"):
                    await context.__aexit__(None, None, None)
                else:
                    context.__exit__(None, None, None)
            except Exception:
                logger.exception("the app's lifespan raised while shutting down")
        for hook in self._on_shutdown:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("an on_shutdown function raised")

    def stop(self, timeout: float = 5.0) -> None:
        """Stops serving: in-flight requests get ``timeout`` seconds to finish.
        Does nothing if this app is not running."""
        global _serving
        with _serving_lock:
            if _serving is not self:
                return
            try:
                _native.stop(timeout)
            finally:
                # Handlers answered requests in flight until the deadline;
                # threads waiting for requests wake at once, and one still
                # inside a handler is left to finish alone.
                self._pool.stop(timeout=0.25, before_loop_stops=self._exit_lifespan)
                _serving = None
                self._stopped.set()

    def run(
        self,
        port: int = 8000,
        production: bool = False,
        host: Optional[str] = None,
        workers: int = 1,
        *,
        fd: Optional[int] = None,
        access_log: Optional[bool] = None,
        access_log_format: str = "common",
        log_level: str = "info",
        forwarded_allow_ips: Optional[Sequence[str]] = None,
    ) -> None:
        """Serves until Ctrl-C, SIGTERM or ``stop()``, then stops gracefully.

        ``workers`` > 1 serves from that many processes forked from this one
        (not on Windows), all accepting on one socket that this process
        binds (or ``fd``); a worker that dies is replaced. Ctrl-C or SIGTERM
        stops them all gracefully. See ``sufast.workers``. The other
        keywords are ``start``'s. The banner (where it serves, and the
        routes) and the stop are printed at log level info and below.
        """
        _check_count("workers", workers)
        options: Dict[str, Any] = {
            "production": production,
            "access_log": access_log,
            "access_log_format": access_log_format,
            "log_level": log_level,
            "forwarded_allow_ips": forwarded_allow_ips,
        }
        log_options(access_log, access_log_format, log_level, production)
        chatty = _native.LOG_LEVELS[log_level] >= _native.LOG_LEVELS["info"]
        if workers > 1:
            serve_workers(self, workers, port=port, host=host, fd=fd, options=options, chatty=chatty)
            return
        # Signals are routed before the server starts: a SIGTERM that
        # arrives while it starts stops it gracefully, not the process.
        requested = threading.Event()

        def request_stop() -> None:
            requested.set()
            self._stopped.set()

        previous = _install_stop_signals(request_stop)
        try:
            bound = self.start(port, host=host, fd=fd, _log_routes=False, **options)
            if requested.is_set():  # start() cleared the flag
                self._stopped.set()
            if chatty:
                print(self._banner(host, bound, production), flush=True)
            # A timed wait: a signal handler runs only once the main thread
            # wakes, and an untimed wait wakes only if the signal lands on
            # the main thread (the kernel may pick one of the server's), nor
            # ever on Windows.
            while not self._stopped.wait(0.5):
                pass
        finally:
            _restore_signals(previous)
            self.stop()
        if chatty:
            print("sufast stopped", flush=True)

    def _banner(self, host: Optional[str], port: int, production: bool, workers: int = 1) -> str:
        shown = host or ("0.0.0.0" if production else "127.0.0.1")
        mode = "production" if production else "development"
        if workers > 1:
            mode += f", {workers} workers"
        return f"sufast {__version__} serving on http://{shown}:{port} ({mode}; Ctrl-C to stop)\n{self._route_summary()}"

    def _route_summary(self) -> str:
        middleware = bool(self._middleware)
        rows = []
        for r in self.routes:
            shown = r.tier + ("" if r.error is None else " (500: handler raised)")
            if middleware and r.tier == "dynamic":
                shown += " + middleware"
            rows.append((r.method, r.path, shown))
        if not rows:
            return "  (no routes)"
        width = max(len(path) for _, path, _ in rows)
        lines = [f"  {method:<7} {path:<{width}}  {tier}" for method, path, tier in rows]
        if middleware:
            lines.append(f"  middleware: {self._middleware_note()}")
        return "\n".join(lines)

    def _middleware_note(self) -> str:
        """What the middleware covers, in one line."""
        routes = self.routes
        stored = sum(1 for r in routes if r.tier in ("static", "cached"))
        files = sum(1 for r in routes if r.tier == "files")
        note = f"{names(self._middleware)}, around the dynamic routes"
        if stored:
            note += f"; {stored} static or cached route{'s are' if stored != 1 else ' is'} served without it (dynamic=True sends one through it)"
        if files:
            note += f"; {files} mounted director{'ies are' if files != 1 else 'y is'} served without it"
        return note


def _warn_if_stale(name: str, endpoint: Callable[..., Any], stacklevel: int) -> None:
    """Warns when a handler about to run once reads or calls something
    whose answer may change (see ``sufast.purity``)."""
    reasons = stale_reasons(endpoint)
    if not reasons:
        return
    more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
    warnings.warn(
        f"route {name}: handler {describe(endpoint)} {reasons[0]}{more}, but it runs once, now, and its answer "
        "is served from then on; pass dynamic=True to run it per request, cache_ttl=seconds to run it again "
        "when its answer is older, or dynamic=False to keep it as it is",
        RouteWarning,
        stacklevel=stacklevel,
    )


def _not_found(request: Request) -> None:
    raise HTTPException(404, "Not Found")


def _method_not_allowed(request: Request) -> None:
    # The server gives the Allow value the 405 would carry.
    raise HTTPException(405, "Method Not Allowed", headers={"Allow": request._params[0] if request._params else ""})


#: What answers an unmatched request in Python: the route table's key, and
#: a handler whose exception the app's exception handlers then take.
_FALLBACKS = {404: ("not_found_handler", _not_found), 405: ("method_not_allowed_handler", _method_not_allowed)}


def _depends_list(owner: str, dependencies: Optional[Sequence[Any]]) -> List[Depends]:
    found = list(dependencies or [])
    for dependency in found:
        if not isinstance(dependency, Depends):
            raise TypeError(f"{owner}: dependencies must be Depends(...), got {dependency!r}")
    return found


def _naming(route: str, handler: str, message: str) -> str:
    """A registration error's message as "route R: handler H: what"."""
    for prefix in (f"route {route}: handler {handler}: ", f"route {route}: handler {handler} ", f"route {route}: ", f"route {route} "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return f"route {route}: handler {handler}: {message}"


def _app_wide(
    headers: HeadersInput,
    cors: Optional[CORS],
    forwarded_allow_ips: Optional[List[str]] = None,
    compression: Optional[Compression] = None,
) -> Dict[str, Any]:
    """The route table's app-wide section, checked by the library now so
    that a mistake surfaces where the App is made."""
    if cors is not None and not isinstance(cors, CORS):
        raise TypeError(f"cors must be a sufast.CORS, got {type(cors).__name__}")
    section: Dict[str, Any] = {}
    pairs = normalize_headers(headers)
    if pairs:
        section["headers"] = [[name, value] for name, value in pairs]
    if cors is not None:
        section["cors"] = cors.table_entry()
    if compression is not None:
        section["compression"] = compression.table_entry()
    if forwarded_allow_ips:
        section["forwarded_allow_ips"] = forwarded_allow_ips
    if section:
        _native.check_routes(route_table((), section))
    return section


def _compression(value: Union[Compression, bool, None]) -> Optional[Compression]:
    """``compression=`` as settings, or ``None`` for off."""
    if value is None or value is False:
        return None
    if value is True:
        return Compression()
    if not isinstance(value, Compression):
        raise TypeError(f"compression must be True, False, None or a sufast.Compression, got {type(value).__name__}")
    return value


def _ip_list(value: Optional[Sequence[str]]) -> Optional[List[str]]:
    """``forwarded_allow_ips`` as a list; a single string may list several,
    comma-separated, as the command line and ``FORWARDED_ALLOW_IPS`` do."""
    if value is None:
        return None
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"forwarded_allow_ips must be strings (addresses, networks or '*'), got {item!r}")
    return items


def _check_count(what: str, value: Any, limit: int = 2**31 - 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValueError(f"{what} must be an integer from 1 to {limit}, got {value!r}")


def _install_stop_signals(handler: Callable[[], None]) -> Dict[int, Any]:
    """Routes SIGINT and SIGTERM to ``handler``; returns what to restore.
    Only the main thread may set signal handlers; elsewhere none are set."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        if signum is not None:
            previous[signum] = signal.signal(signum, lambda _signum, _frame: handler())
    return previous


def _restore_signals(previous: Dict[int, Any]) -> None:
    for signum, old in previous.items():
        signal.signal(signum, old)


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_stop_at_exit)


def _stop_at_exit() -> None:
    serving = _serving
    if serving is not None:
        serving.stop(timeout=1.0)


def _calls_stream(endpoint: Callable[..., Any]) -> bool:
    """Whether the handler's own code calls something named ``stream``
    (``request.stream()``), nested functions included."""
    code = getattr(inspect.unwrap(endpoint), "__code__", None)
    if code is None:
        code = getattr(getattr(endpoint, "__call__", None), "__code__", None)
    pending = [code] if code is not None else []
    while pending:
        code = pending.pop()
        if "stream" in code.co_names:
            return True
        pending.extend(const for const in code.co_consts if inspect.iscode(const))
    return False
