"""The call seam: where a per-request handler is called, sync or async,
and its result or exception becomes the response in the native layout.

``Endpoint`` is a per-request handler made ready at registration (its
arguments read from the signature, its common response heads encoded),
so that a request costs one call and one encoding."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .background import BackgroundTasks
from .exceptions import HTTPException
from . import middleware as _middleware
from .middleware import HTTPMiddleware, compose, run_here
from .params import Arguments, Depends, RequestValidationError, _scope_of
from .requests import Request
from .websockets import WebSocket, WebSocketDisconnect
from .responses import (
    BODILESS,
    HeadersInput,
    JSONResponse,
    Response,
    _check_status,
    dump_json,
    encode_head,
    PlainTextResponse,
    StreamingResponse,
    encode_response,
    normalize_headers,
    own_copy,
    prepared_head,
    with_route_headers,
)

_new = object.__new__

__all__ = ["Endpoint", "INTERNAL_ERROR"]

logger = logging.getLogger("sufast")

_JSON = "application/json"
INTERNAL_ERROR = encode_head(500, [("content-type", _JSON)]) + b'{"detail": "Internal Server Error"}'

#: Told of every exception that made a 500 (a handler's or middleware's
#: that no exception handler took, or an exception handler's own), before
#: the 500 is sent: the TestClient's raise_server_exceptions.
unhandled_observer: Optional[Callable[[BaseException], None]] = None


def _internal_error() -> Response:
    """The 500 as a response middleware may still change."""
    return JSONResponse({"detail": "Internal Server Error"}, 500)


class ExceptionHandlers:
    """The App's ``exception_handler`` registrations: by exception class
    (the most specific base of a raised exception wins) and by status code
    (for ``HTTPException``, before its class)."""

    def __init__(self) -> None:
        self.by_class: Dict[type, Callable[..., Any]] = {}
        self.by_status: Dict[int, Callable[..., Any]] = {}

    def add(self, key: Union[int, type], handler: Callable[..., Any]) -> None:
        self.check(key)
        if isinstance(key, int):
            self.by_status[key] = handler
        else:
            self.by_class[key] = handler

    @staticmethod
    def check(key: Any) -> None:
        """Refuses what is neither an exception class nor an error status."""
        if isinstance(key, bool) or not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException))):
            raise TypeError(f"exception_handler takes an exception class or a status code, got {key!r}")
        if isinstance(key, int):
            if not 400 <= key <= 599:
                raise ValueError(f"exception_handler status codes are 400 to 599, got {key}")

    def covers_status(self, status: int) -> bool:
        """Whether an ``HTTPException`` with ``status`` has a handler."""
        return status in self.by_status or HTTPException in self.by_class

    def find(self, exc: BaseException) -> Optional[Callable[..., Any]]:
        if not (self.by_class or self.by_status):
            return None
        if isinstance(exc, HTTPException) and exc.status_code in self.by_status:
            return self.by_status[exc.status_code]
        if isinstance(exc, RequestValidationError) and 422 in self.by_status:
            return self.by_status[422]
        for cls in type(exc).__mro__:
            if cls in self.by_class:
                return self.by_class[cls]
        return None


def _call_handler(handler: Callable[..., Any], request: Request, exc: BaseException) -> Any:
    """An exception handler's answer, on a handler thread (an async one
    runs on the thread's own loop)."""
    answer = handler(request, exc)
    return run_here(answer) if inspect.isawaitable(answer) else answer


async def _call_handler_async(handler: Callable[..., Any], request: Request, exc: BaseException) -> Any:
    """An exception handler's answer, on the app's loop."""
    answer = handler(request, exc)
    return await answer if inspect.isawaitable(answer) else answer


def _observe(exc: BaseException) -> None:
    observer = unhandled_observer
    if observer is not None:
        observer(exc)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 422
    return 500


def _finish(generator: Any, raised: Optional[BaseException], request: Request, route: str) -> None:
    try:
        if raised is None:
            next(generator)
        else:
            generator.throw(raised)
    except StopIteration:
        return
    except BaseException as exc:
        if exc is not raised:
            logger.error("%s %s: route %s: dependency clean-up raised %s", request.method, request.path, route, type(exc).__name__, exc_info=exc)
        return
    logger.error("%s %s: route %s: a generator dependency yielded more than once", request.method, request.path, route)
    generator.close()


class Endpoint:
    """A handler that runs per request."""

    def __init__(
        self,
        name: str,
        path: str,
        function: Callable[..., Any],
        status_code: int = 200,
        headers: HeadersInput = None,
        dependencies: Sequence[Depends] = (),
        exception_handlers: Optional[ExceptionHandlers] = None,
        output: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        self.name = name
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)
        )
        where = f"route {name}: handler {getattr(function, '__qualname__', repr(function))}"
        self.arguments = Arguments(function, path, where, dependencies)
        self.arguments.plan_cache()
        self.exception_handlers = exception_handlers or ExceptionHandlers()
        if self.arguments.is_async and not self.is_async:
            raise TypeError(
                f"{where}: a plain def handler cannot use an async dependency; "
                "make the handler async def, or the dependency a plain def"
            )
        self.status_code = _check_status(status_code)
        #: The response model's filter: what is sent of a return value.
        self.output = output
        self.headers = normalize_headers(headers)
        self._own_type = any(n.lower() == "content-type" for n, _ in self.headers)
        # The heads of what this route sends, encoded once: for the
        # wire, and for the Response objects middleware gets.
        self._json = prepared_head(self.status_code, self._pairs(_JSON))
        self._text = prepared_head(self.status_code, self._pairs("text/plain; charset=utf-8"))
        self._bytes = prepared_head(self.status_code, self._pairs("application/octet-stream"))
        self._json_head = self._json[2]
        self._text_head = self._text[2]
        self._bytes_head = self._bytes[2]
        self._empty = prepared_head(self.status_code, self.headers)
        # A status with no body: whatever the handler returns (but a
        # Response), the answer is this head alone, as in FastAPI.
        self._bodiless = encode_head(self.status_code, self.headers) if self.status_code in BODILESS else None
        #: Whether requests go to the app's event loop (an ``async def``
        #: handler, and no plain ``def`` middleware around it).
        self.on_loop = self.is_async
        # The middleware chain, if any: a sync call on a handler thread,
        # or an async one on the loop (see middleware.compose).
        self._chain: Optional[Callable[[Request], Any]] = None
        self._chain_async: Optional[Callable[[Request], Any]] = None
        self._middleware: List[HTTPMiddleware] = []
        self._run_on_loop: Optional[Callable[[Callable[[], Any]], Any]] = None

    def _pairs(self, content_type: str) -> List[Tuple[str, str]]:
        return list(self.headers) if self._own_type else [("content-type", content_type)] + self.headers

    def use_middleware(self, middleware: Sequence[HTTPMiddleware], run_on_loop: Callable[[Callable[[], Any]], Any]) -> None:
        """Puts ``middleware`` (first outermost) around this handler;
        ``run_on_loop(make)`` runs a coroutine on the app's loop from a
        handler thread."""
        self._middleware = list(middleware)
        self._run_on_loop = run_on_loop
        self._chain = self._chain_async = None
        self.on_loop = self.is_async
        if not middleware:
            return
        on_loop, call = compose(self._middleware, self.respond, self.respond_async if self.is_async else None, run_on_loop)
        self.on_loop = on_loop
        if on_loop:
            self._chain_async = call
        else:
            self._chain = call

    @property
    def middleware(self) -> List[HTTPMiddleware]:
        """The middleware around this handler, outermost first."""
        return list(self._middleware)

    def call(self, request: Request) -> bytes:
        """Runs the (sync) handler for ``request``, on a handler thread,
        through its middleware: the response, whatever the handler did."""
        chain = self._chain
        if chain is not None:
            try:
                response = chain(request)
            except BaseException as exc:
                return self._escaped(exc, request)
            return self._sent(response, request)
        if _middleware.marking:
            _middleware.unmark()
        try:
            result = self.function(**self.prepare(request))
        except BaseException as exc:  # every request gets an answer
            if request._scope is not None:
                request._scope.raised = exc
            return self._escaped(exc, request)
        return self.response(result, request)

    async def call_async(self, request: Request) -> bytes:
        """Runs the ``async def`` handler for ``request`` the same way; a
        cancellation (the server stopped) propagates."""
        chain = self._chain_async
        if chain is not None:
            try:
                response = await chain(request)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                return await self._escaped_async(exc, request)
            return self._sent(response, request)
        request._awaitable = True
        try:
            kwargs = await self.solve_async(request) if self.arguments.is_async else self.prepare(request)
            result = await self.function(**kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # every request gets an answer
            if request._scope is not None:
                request._scope.raised = exc
            return await self._escaped_async(exc, request)
        return self.response(result, request)

    # Through middleware: the handler gives a Response ----------------------

    def respond(self, request: Request) -> Response:
        """Runs the sync handler for ``request``: its response, an
        exception handler's, or an ``HTTPException``'s; any other
        exception propagates (through the middleware)."""
        request._awaitable = False
        try:
            result = self.function(**self.prepare(request))
        except BaseException as exc:
            handler = self._caught(exc, request)
            if isinstance(handler, Response):
                return handler
            try:
                answer = _call_handler(handler, request, exc)
            except BaseException as failed:
                self._handler_failed(failed, exc, request)
                return _internal_error()
            return self._handled_response(answer, exc, request)
        if type(result) is dict and self._bodiless is None and self.output is None:
            # to_response's most common case, without the call.
            try:
                body = dump_json(result)
            except TypeError as exc:
                self._unsendable(exc, request)
                return _internal_error()
            response = _new(JSONResponse)
            response.status_code = self.status_code
            response.body = body
            response._head = self._json
            return response
        return self.to_response(result, request)

    async def respond_async(self, request: Request) -> Response:
        """``respond`` for the ``async def`` handler."""
        request._awaitable = True
        try:
            kwargs = await self.solve_async(request) if self.arguments.is_async else self.prepare(request)
            result = await self.function(**kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            handler = self._caught(exc, request)
            if isinstance(handler, Response):
                return handler
            try:
                answer = await _call_handler_async(handler, request, exc)
            except BaseException as failed:
                self._handler_failed(failed, exc, request)
                return _internal_error()
            return self._handled_response(answer, exc, request)
        return self.to_response(result, request)

    def _caught(self, exc: BaseException, request: Request) -> Any:
        """What answers ``exc`` inside the middleware: an exception
        handler (to call), a response (an ``HTTPException``'s, a 422), or
        nothing: then ``exc`` is raised again, for the middleware to see."""
        if request._scope is not None:
            request._scope.raised = exc
        handler = self.exception_handlers.find(exc)
        if handler is not None:
            return handler
        if isinstance(exc, HTTPException):
            return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)
        if isinstance(exc, RequestValidationError):
            return JSONResponse({"detail": exc.errors()}, 422)
        request._raised = exc
        raise exc

    def _handled_response(self, result: Any, exc: BaseException, request: Request) -> Response:
        try:
            if isinstance(result, Response):
                return own_copy(result)
            return JSONResponse(result, _status_of(exc))
        except Exception as failed:
            self._handler_failed(failed, exc, request)
            return _internal_error()

    def to_response(self, result: Any, request: Request) -> Response:
        """A handler's return value as a ``Response`` that middleware may
        change (a copy, if the handler returned one)."""
        if isinstance(result, Response):
            return with_route_headers(result, self.headers) if self.headers else own_copy(result)
        if self.output is not None:
            try:
                result = self.output(result)
            except TypeError as exc:
                self._unsendable(exc, request)
                return _internal_error()
        if self._bodiless is not None:
            cls, head, body = Response, self._empty, b""
        elif isinstance(result, str):
            cls, head, body = PlainTextResponse, self._text, result.encode("utf-8")
        elif isinstance(result, (bytes, bytearray, memoryview)):
            cls, head, body = Response, self._bytes, bytes(result)
        else:
            try:
                body = dump_json(result)
            except TypeError as exc:
                if inspect.isgenerator(result) or inspect.isasyncgen(result):
                    return self.streaming(result)
                self._unsendable(exc, request)
                return _internal_error()
            cls, head = JSONResponse, self._json
        response = _new(cls)
        response.status_code = self.status_code
        response.body = body
        response._head = head
        return response

    def _sent(self, response: Any, request: Request) -> bytes:
        """What the outermost middleware returned, encoded; anything but a
        ``Response`` is logged and answered with a 500."""
        if isinstance(response, Response):
            head = response._head
            if head is not None and response._headers is None and response.status_code == head[0]:
                return head[2] + response.body  # encode_response's first case, without the call
        else:
            logger.error(
                "%s %s: route %s: middleware %s returned %s, not a Response; the client got a 500",
                request.method,
                request.path,
                self.name,
                self._middleware[0].name,
                type(response).__name__,
            )
            _observe(TypeError(f"middleware {self._middleware[0].name} returned {type(response).__name__}, not a Response"))
            return INTERNAL_ERROR
        try:
            return encode_response(response)
        except Exception as exc:
            self._unsendable(exc, request, "middleware")
            return INTERNAL_ERROR

    def _escaped(self, exc: BaseException, request: Request) -> bytes:
        """The answer to an exception that came out of the middleware
        chain (the handler's, one no handler took, or a middleware's own)."""
        handler = None if exc is request._raised else self.exception_handlers.find(exc)
        if handler is None:
            return self.failure(exc, request)
        try:
            answer = _call_handler(handler, request, exc)
        except BaseException as failed:
            return self._handler_failed(failed, exc, request)
        return self._handled(answer, exc, request)

    async def _escaped_async(self, exc: BaseException, request: Request) -> bytes:
        """``_escaped`` on the loop."""
        handler = None if exc is request._raised else self.exception_handlers.find(exc)
        if handler is None:
            return self.failure(exc, request)
        try:
            answer = await _call_handler_async(handler, request, exc)
        except BaseException as failed:
            return self._handler_failed(failed, exc, request)
        return self._handled(answer, exc, request)

    # Without middleware: the handler's answer is encoded at once ------------

    def _handled(self, result: Any, exc: BaseException, request: Request) -> bytes:
        """The response an exception handler gave: a ``Response`` as is,
        another value as JSON with the exception's status."""
        try:
            if isinstance(result, Response):
                return encode_response(result)
            return encode_response(JSONResponse(result, _status_of(exc)))
        except Exception as failed:
            return self._handler_failed(failed, exc, request)

    def _handler_failed(self, failed: BaseException, exc: BaseException, request: Request) -> bytes:
        _observe(failed)
        logger.error(
            "%s %s: route %s: the exception handler for %s raised %s; the client got a 500",
            request.method,
            request.path,
            self.name,
            type(exc).__name__,
            type(failed).__name__,
            exc_info=failed,
        )
        return INTERNAL_ERROR

    def after_response(self, request: Request) -> None:
        """What runs once the response was sent, on the handler's thread:
        the background tasks, then the dependencies' clean-up."""
        if self.is_async and not self.on_loop and self._run_on_loop is not None:
            # An async handler run through plain def middleware: its
            # tasks and clean-up belong on the loop.
            self._run_on_loop(lambda: self.after_response_async(request))
            return
        if _middleware.marking:
            _middleware.unmark()
        scope = request._scope
        tasks = scope.values.get(BackgroundTasks)
        if tasks is not None:
            tasks.run()
            _middleware.unmark()
        if scope.exits:
            self.finish(request)

    async def after_response_async(self, request: Request) -> None:
        """The same for an ``async def`` handler, on the loop."""
        scope = request._scope
        tasks = scope.values.get(BackgroundTasks)
        if tasks is not None:
            await tasks.run_async()
        if scope.exits:
            await self.finish_async(request)

    def finish(self, request: Request) -> None:
        """Runs the code after the ``yield`` of the request's generator
        dependencies, the last one first, once its response was sent; the
        handler's exception, if any, is raised at the ``yield``."""
        scope = request._scope
        exits, scope.exits = scope.exits, []
        for generator in reversed(exits):
            if inspect.isasyncgen(generator):
                logger.error("%s %s: route %s: an async generator dependency must be finished on the event loop", request.method, request.path, self.name)
                continue
            _finish(generator, scope.raised, request, self.name)

    async def finish_async(self, request: Request) -> None:
        """``finish`` for an ``async def`` handler's dependencies."""
        scope = request._scope
        exits, scope.exits = scope.exits, []
        for generator in reversed(exits):
            raised = scope.raised
            try:
                if inspect.isasyncgen(generator):
                    if raised is None:
                        await generator.__anext__()
                    else:
                        await generator.athrow(raised)
                else:
                    _finish(generator, raised, request, self.name)
                    continue
            except StopAsyncIteration:
                continue
            except BaseException as exc:
                if exc is not raised:
                    logger.error("%s %s: route %s: dependency clean-up raised %s", request.method, request.path, self.name, type(exc).__name__, exc_info=exc)
                continue
            logger.error("%s %s: route %s: a generator dependency yielded more than once", request.method, request.path, self.name)
            await generator.aclose()

    def prepare(self, request: Request) -> dict:
        """The keyword arguments for this request (or a 422/400 raised)."""
        request._path_param_reader = self.arguments.read_path_params
        return self.arguments(request)

    async def solve_async(self, request: Request) -> dict:
        """``prepare`` when a dependency is async: it is awaited (a plain
        ``prepare`` costs no coroutine when none is)."""
        request._path_param_reader = self.arguments.read_path_params
        return await self.arguments.solve_async(request)

    def encode(self, result: Any) -> bytes:
        """A handler's return value as a response in the native layout.
        Raises ``TypeError`` for a value that cannot be sent."""
        if self.output is not None and not isinstance(result, Response):
            result = self.output(result)
        if isinstance(result, Response):
            if self.headers:
                result = with_route_headers(result, self.headers)
            return encode_response(result)
        if self._bodiless is not None:
            return self._bodiless
        if isinstance(result, str):
            return self._text_head + result.encode("utf-8")
        if isinstance(result, (bytes, bytearray, memoryview)):
            return self._bytes_head + bytes(result)
        try:
            return self._json_head + dump_json(result)
        except TypeError:
            if inspect.isgenerator(result) or inspect.isasyncgen(result):
                return encode_response(self.streaming(result))
            raise

    def streaming(self, source: Any) -> StreamingResponse:
        """A returned generator as the response that streams it, with the
        route's status and headers."""
        return StreamingResponse(source, self.status_code, self.headers)

    def response(self, result: Any, request: Request) -> bytes:
        """``encode``, with a value that cannot be sent logged and answered
        with a 500."""
        try:
            return self.encode(result)
        except Exception as exc:
            self._unsendable(exc, request)
            return INTERNAL_ERROR

    def _unsendable(self, exc: BaseException, request: Request, who: str = "handler") -> None:
        _observe(exc)
        logger.error(
            "%s %s: route %s: the %s returned a value that cannot be sent (%s: %s); the client got a 500",
            request.method,
            request.path,
            self.name,
            who,
            type(exc).__name__,
            exc,
        )

    def failure(self, exc: BaseException, request: Request) -> bytes:
        """The response to a handler (or its arguments) that raised."""
        try:
            if isinstance(exc, HTTPException):
                return encode_response(JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers))
            if isinstance(exc, RequestValidationError):
                return encode_response(JSONResponse({"detail": exc.errors()}, 422))
        except Exception:
            logger.exception("%s %s: route %s: the error response could not be built", request.method, request.path, self.name)
            return INTERNAL_ERROR
        _observe(exc)
        logger.error(
            "%s %s: route %s: %s raised %s; the client got a 500",
            request.method,
            request.path,
            self.name,
            "handler" if not self._middleware or exc is request._raised else "middleware",
            type(exc).__name__,
            exc_info=exc,
        )
        return INTERNAL_ERROR



class WebSocketEndpoint(Endpoint):
    """An ``@app.websocket`` handler: it gets a ``WebSocket`` and answers
    through it (accept, messages, close) rather than with a return value.
    An exception before ``accept()`` refuses the connection (403 for a
    parameter that does not validate or an ``HTTPException``'s status,
    else 500); after it, closes it with 1008 or 1011. Either way it is
    logged, as for HTTP routes."""

    async def call_async(self, request: Request) -> None:  # type: ignore[override]
        websocket = WebSocket(request)
        _scope_of(request).values[WebSocket] = websocket
        request._awaitable = True
        failed = False
        try:
            kwargs = await self.solve_async(request) if self.arguments.is_async else self.prepare(request)
            await self.function(**kwargs)
        except asyncio.CancelledError:
            websocket.finish(True)
            raise
        except WebSocketDisconnect:
            pass
        except (RequestValidationError, HTTPException) as exc:
            request._scope.raised = exc
            if isinstance(exc, HTTPException):
                status, detail = exc.status_code, exc.detail
            else:
                status, detail = 403, exc.errors()
            if not websocket.answered:
                websocket.refuse(status, detail)
            else:
                await websocket.close(1008, str(detail)[:120])
        except BaseException as exc:
            request._scope.raised = exc
            failed = True
            _observe(exc)
            logger.error(
                "%s %s: route %s: the WebSocket handler raised %s; %s",
                request.method,
                request.path,
                self.name,
                type(exc).__name__,
                "it is closed with 1011" if websocket.accepted else "the client got a 500",
                exc_info=exc,
            )
        websocket.finish(failed)
        return None
