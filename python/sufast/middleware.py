"""HTTP middleware: functions ``(request, call_next)`` around every
per-request route, sync or async, the first declared outermost.

A chain is composed once per route, when the route or a middleware is
registered, so a request costs only the calls themselves. Where it runs
is the handler's choice: around an ``async def`` handler, a chain of
``async def`` middleware runs on the app's event loop; anything else runs
on the handler thread that took the request, where an ``async def``
middleware is driven directly (it costs no loop turn unless it waits for
something, and then it waits on that thread's own loop) and an ``async
def`` handler inside a plain ``def`` middleware runs on the app's loop
while the thread waits for it."""

from __future__ import annotations

import asyncio
import inspect
import threading
import types
from typing import Any, Awaitable, Callable, List, Optional, Sequence, Tuple

__all__ = ["HTTPMiddleware", "drive", "run_here", "compose"]

# asyncio's own record of the loop running on this thread; an async
# middleware driven directly must find one (asyncio.sleep asks for it),
# and plain def code (a handler, a background task) must not (it may
# start a loop of its own). Before Python 3.12 each change or read of
# that record is a system call (getpid), so a handler thread keeps its
# loop marked between requests and clears the mark only before plain
# def code runs: see unmark().
_set_running_loop = asyncio._set_running_loop

# Per handler thread: ``loop``, its own event loop, and ``current``, the
# loop marked as running there by this module (None when none is).
_thread_loops = threading.local()

#: Whether some thread may have a loop marked: until then unmark() is
#: not even called.
marking = False


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread_loops.loop = asyncio.new_event_loop()
    return loop


def _mark() -> asyncio.AbstractEventLoop:
    global marking
    loop = _thread_loop()
    _set_running_loop(loop)
    _thread_loops.current = loop
    marking = True
    return loop


def unmark() -> None:
    """Clears this thread's mark of a running loop, if it has one, before
    plain def code runs (outside a loop that really runs)."""
    current = getattr(_thread_loops, "current", None)
    if current is not None and not current.is_running():
        _set_running_loop(None)
        _thread_loops.current = None


def run_here(awaitable: Any) -> Any:
    """Runs ``awaitable`` to its end on this thread, on a loop of the
    thread's own (never the app's, which runs other requests)."""
    return drive(_wrap(awaitable))


async def _wrap(awaitable: Any) -> Any:
    return await awaitable


@types.coroutine
def _resume(coroutine: Any, yielded: Any) -> Any:
    """The rest of a coroutine that already ran up to its first wait
    (which gave ``yielded``), for a loop to finish."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


def drive(coroutine: Any) -> Any:
    """Runs ``coroutine`` on this (handler) thread and gives its result:
    at once if it never waits, else on the thread's own loop (or, when
    that one already runs an outer middleware that waits, on a new one)."""
    loop = getattr(_thread_loops, "current", None) or _mark()
    try:
        yielded = coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    # It waits: a loop must run it to its end, and marks itself.
    _set_running_loop(None)
    if loop.is_running():
        loop = asyncio.new_event_loop()
    _thread_loops.current = loop
    try:
        return loop.run_until_complete(_wrap(_resume(coroutine, yielded)))
    finally:
        _thread_loops.current = None  # the loop cleared its mark
        if loop is not _thread_loops.loop:
            loop.close()


class HTTPMiddleware:
    """One registered middleware: ``function(request, call_next)``."""

    __slots__ = ("function", "is_async", "name")

    def __init__(self, function: Callable[..., Any]) -> None:
        if not callable(function):
            raise TypeError(f"middleware must be a function taking (request, call_next), got {function!r}")
        self.function = function
        self.name = getattr(function, "__name__", None) or type(function).__name__
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(getattr(function, "__call__", None))
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # a builtin: nothing to check
            return
        try:
            signature.bind(None, None)
        except TypeError:
            raise TypeError(f"middleware {self.name} must take (request, call_next), but its signature is {signature}") from None

    def __repr__(self) -> str:
        return f"<HTTPMiddleware {self.name}{' (async)' if self.is_async else ''}>"


Call = Callable[[Any], Any]


def _sync_layer(function: Callable[..., Any], call_next: Call) -> Call:
    def layer(request: Any) -> Any:
        request._awaitable = False
        return function(request, call_next)

    return layer


def _async_layer(function: Callable[..., Any], call_next: Call) -> Call:
    def layer(request: Any) -> Awaitable[Any]:
        request._awaitable = True
        return function(request, call_next)

    return layer


def _as_async(call: Call) -> Callable[[Any], Awaitable[Any]]:
    """A sync stage as an async ``call_next``: it runs where it is called,
    with no loop marked as running (the handler may start its own)."""

    async def call_next(request: Any) -> Any:
        awaitable = request._awaitable
        loop = getattr(_thread_loops, "current", None)
        _set_running_loop(None)
        _thread_loops.current = None
        try:
            return call(request)
        finally:
            _set_running_loop(loop)
            _thread_loops.current = loop
            request._awaitable = awaitable

    return call_next


def _as_sync(call: Callable[[Any], Awaitable[Any]]) -> Call:
    """An async stage as a sync ``call_next``, driven on this thread."""

    def call_next(request: Any) -> Any:
        awaitable = request._awaitable
        try:
            return drive(call(request))
        finally:
            request._awaitable = awaitable

    return call_next


def compose(
    middleware: Sequence[HTTPMiddleware],
    respond: Call,
    respond_async: Optional[Callable[[Any], Awaitable[Any]]],
    run_on_loop: Callable[[Callable[[], Awaitable[Any]]], Any],
) -> Tuple[bool, Call]:
    """The chain of ``middleware`` (first outermost) around a handler's
    ``respond`` (sync) or ``respond_async`` (given for an ``async def``
    handler): ``(True, async call)`` to run on the app's loop, or
    ``(False, sync call)`` to run on a handler thread. Each call takes the
    request and gives the response the outermost middleware returned."""
    if respond_async is not None and all(m.is_async for m in middleware):
        call: Call = respond_async
        for m in reversed(middleware):
            call = _async_layer(m.function, call)
        return True, call
    if respond_async is not None:
        inner = respond_async

        def call(request: Any) -> Any:
            return run_on_loop(lambda: inner(request))

    else:
        call = respond
    is_async = False
    for m in reversed(middleware[1:]):
        if m.is_async:
            call = _async_layer(m.function, call if is_async else _as_async(call))
        else:
            call = _sync_layer(m.function, _as_sync(call) if is_async else call)
        is_async = m.is_async
    # The outermost layer, with what it needs folded in (one call less).
    outermost = middleware[0].function
    if middleware[0].is_async:
        call_next = call if is_async else _as_async(call)

        def call(request: Any) -> Any:
            request._awaitable = True
            return drive(outermost(request, call_next))

    else:
        call = _sync_layer(outermost, _as_sync(call) if is_async else call)

    return False, call


def names(middleware: List[HTTPMiddleware]) -> str:
    """``a, b``: how messages list the middleware."""
    return ", ".join(m.name for m in middleware)
