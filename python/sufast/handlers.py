"""The call seam: where a per-request handler is called, sync or async,
and its result or exception becomes the response in the native layout.

``Endpoint`` is a per-request handler made ready at registration (its
arguments read from the signature, its common response heads encoded),
so that a request costs one call and one encoding."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable, Optional, Sequence

from .exceptions import HTTPException
from .params import Arguments, Depends, RequestValidationError
from .requests import Request
from .responses import (
    BODILESS,
    HeadersInput,
    JSONResponse,
    Response,
    _check_status,
    dump_json,
    encode_head,
    encode_response,
    normalize_headers,
    with_route_headers,
)

__all__ = ["Endpoint", "INTERNAL_ERROR"]

logger = logging.getLogger("sufast")

_JSON = "application/json"
INTERNAL_ERROR = encode_head(500, [("content-type", _JSON)]) + b'{"detail": "Internal Server Error"}'


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
    ) -> None:
        self.name = name
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)
        )
        where = f"route {name}: handler {getattr(function, '__qualname__', repr(function))}"
        self.arguments = Arguments(function, path, where, dependencies)
        if self.arguments.is_async and not self.is_async:
            raise TypeError(
                f"{where}: a plain def handler cannot use an async dependency; "
                "make the handler async def, or the dependency a plain def"
            )
        self.status_code = _check_status(status_code)
        self.headers = normalize_headers(headers)
        self._own_type = any(n.lower() == "content-type" for n, _ in self.headers)
        self._json_head = self._head(_JSON)
        self._text_head = self._head("text/plain; charset=utf-8")
        self._bytes_head = self._head("application/octet-stream")
        # A status with no body: whatever the handler returns (but a
        # Response), the answer is this head alone, as in FastAPI.
        self._bodiless = encode_head(self.status_code, self.headers) if self.status_code in BODILESS else None

    def _head(self, content_type: str) -> bytes:
        pairs = self.headers if self._own_type else [("content-type", content_type)] + self.headers
        return encode_head(self.status_code, pairs)

    def call(self, request: Request) -> bytes:
        """Runs the (sync) handler for ``request``: the response, whatever
        the handler did."""
        try:
            result = self.function(**self.prepare(request))
        except BaseException as exc:  # every request gets an answer
            if request._exits:
                request._raised = exc
            return self.failure(exc, request)
        return self.response(result, request)

    async def call_async(self, request: Request) -> bytes:
        """Runs the ``async def`` handler for ``request`` the same way; a
        cancellation (the server stopped) propagates."""
        request._awaitable = True
        try:
            if self.arguments.is_async:
                request._path_param_reader = self.arguments.read_path_params
                kwargs = await self.arguments.solve_async(request)
            else:
                kwargs = self.prepare(request)
            result = await self.function(**kwargs)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # every request gets an answer
            if request._exits:
                request._raised = exc
            return self.failure(exc, request)
        return self.response(result, request)

    def finish(self, request: Request) -> None:
        """Runs the code after the ``yield`` of the request's generator
        dependencies, the last one first, once its response was sent; the
        handler's exception, if any, is raised at the ``yield``."""
        exits, request._exits = request._exits or [], None
        for generator in reversed(exits):
            if inspect.isasyncgen(generator):
                logger.error("%s %s: route %s: an async generator dependency must be finished on the event loop", request.method, request.path, self.name)
                continue
            _finish(generator, request._raised, request, self.name)

    async def finish_async(self, request: Request) -> None:
        """``finish`` for an ``async def`` handler's dependencies."""
        exits, request._exits = request._exits or [], None
        for generator in reversed(exits):
            raised = request._raised
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

    def encode(self, result: Any) -> bytes:
        """A handler's return value as a response in the native layout.
        Raises ``TypeError`` for a value that cannot be sent."""
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
        return self._json_head + dump_json(result)

    def response(self, result: Any, request: Request) -> bytes:
        """``encode``, with a value that cannot be sent logged and answered
        with a 500."""
        try:
            return self.encode(result)
        except Exception as exc:
            logger.error(
                "%s %s: route %s: the handler returned a value that cannot be sent (%s: %s); the client got a 500",
                request.method,
                request.path,
                self.name,
                type(exc).__name__,
                exc,
            )
            return INTERNAL_ERROR

    def failure(self, exc: BaseException, request: Request) -> bytes:
        """The response to a handler (or its arguments) that raised."""
        try:
            if isinstance(exc, HTTPException):
                return encode_response(JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers))
            if isinstance(exc, RequestValidationError):
                return encode_response(JSONResponse({"detail": exc.errors}, 422))
        except Exception:
            logger.exception("%s %s: route %s: the error response could not be built", request.method, request.path, self.name)
            return INTERNAL_ERROR
        logger.error(
            "%s %s: route %s: handler raised %s; the client got a 500",
            request.method,
            request.path,
            self.name,
            type(exc).__name__,
            exc_info=exc,
        )
        return INTERNAL_ERROR

