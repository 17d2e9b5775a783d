"""Sending streamed answers (``StreamingResponse``, a returned generator,
``EventSourceResponse``) and files (``FileResponse``) through the
library's stream exports.

A handler thread sends a sync iterable itself, waiting in the library
(the GIL released) while the stream's buffer is full. The event loop
sends an async iterable, and waits for room on the library's ready
socket, which it watches: no thread is held by a slow client. An async
iterable met on a handler thread is sent on the loop; a sync iterator met
on the loop is advanced in the loop's default executor, one item at a
time, as Starlette does.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import threading
from typing import Any, Callable, Dict, Optional

from . import _native
from .responses import Streamed

__all__ = ["send_sync", "send_async"]

logger = logging.getLogger("sufast")

# The largest chunk the library takes in one call; larger ones are split.
_MAX_CHUNK = 1 << 20
# The largest WebSocket message the library sends, with its kind byte.
MAX_MESSAGE = (16 << 20) + 1
# How long one wait for room lasts before the chunk is offered again (the
# library closes a stream that stays full for send_timeout_ms).
_WAIT_MS = 1000

_local = threading.local()


def _streamer() -> _native.Streamer:
    streamer = getattr(_local, "streamer", None)
    if streamer is None:
        streamer = _local.streamer = _native.streamer()
    return streamer


def _chunk_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"a stream yielded {type(item).__name__}; chunks must be bytes or str")


def _pieces(data: bytes) -> Any:
    if len(data) <= _MAX_CHUNK:
        return (data,)
    return (data[at : at + _MAX_CHUNK] for at in range(0, len(data), _MAX_CHUNK))


def is_async_source(source: Any) -> bool:
    """Whether ``source`` is iterated with ``async for``."""
    return hasattr(source, "__aiter__")


def send_file(request_id: int, streamed: Streamed, where: str) -> None:
    """Answers with a FileResponse: the library opens and sends the file."""
    streamer = _streamer()
    code = streamer.file(request_id, bytes(streamed), streamed.path or b"")
    if code == _native.SENT_FAILED:
        logger.error("%s: the file response cannot be sent (%s); the client got a 500", where, streamer.error())


def send_sync(request_id: int, streamed: Streamed, where: str, run_on_loop: Optional[Callable[[Callable[[], Any]], Any]]) -> None:
    """Sends ``streamed`` from a handler thread; returns when the stream
    ended, failed or its client left."""
    if streamed.path is not None:
        send_file(request_id, streamed, where)
        return
    source = streamed.source
    if is_async_source(source):
        if run_on_loop is None:
            _refuse(request_id, where, "an async iterable needs the event loop, which is not running")
            return
        run_on_loop(lambda: send_async(request_id, streamed, where))
        return
    streamer = _streamer()
    if not _opened(streamer, request_id, streamed, where):
        _close(source, where)
        return
    complete = gone = False
    try:
        for item in source:
            for piece in _pieces(_chunk_bytes(item)):
                code = streamer.chunk(request_id, piece, _WAIT_MS)
                while code == _native.SENT_FULL:
                    code = streamer.chunk(request_id, piece, _WAIT_MS)
                if code != _native.SENT_OK:
                    gone = code == _native.SENT_GONE
                    if not gone:
                        logger.error("%s: a chunk cannot be sent (%s)", where, streamer.error())
                    break
            else:
                continue
            break
        else:
            complete = True
    except Exception as exc:
        _failed(where, exc)
    finally:
        if complete or not gone:
            streamer.end(request_id, complete)
        if not complete:
            _close(source, where)


async def send_async(request_id: int, streamed: Streamed, where: str) -> None:
    """Sends ``streamed`` from the event loop."""
    if streamed.path is not None:
        send_file(request_id, streamed, where)
        return
    source = streamed.source
    streamer = _streamer()
    watch()
    if not _opened(streamer, request_id, streamed, where):
        await _aclose(source, where)
        return
    complete = gone = False
    try:
        if is_async_source(source):
            items = source.__aiter__()
            next_item = items.__anext__
        else:
            next_item = _in_executor(source)
        while True:
            try:
                item = await next_item()
            except StopAsyncIteration:
                complete = True
                break
            for piece in _pieces(_chunk_bytes(item)):
                code = streamer.chunk(request_id, piece, 0)
                while code == _native.SENT_FULL:
                    await _room(request_id)
                    code = streamer.chunk(request_id, piece, 0)
                if code != _native.SENT_OK:
                    gone = code == _native.SENT_GONE
                    if not gone:
                        logger.error("%s: a chunk cannot be sent (%s)", where, streamer.error())
                    break
            if gone or code != _native.SENT_OK:
                break
    except asyncio.CancelledError:
        streamer.end(request_id, False)
        await _aclose(source, where)
        raise
    except Exception as exc:
        _failed(where, exc)
    if complete or not gone:
        streamer.end(request_id, complete)
    if not complete:
        await _aclose(source, where)


def _in_executor(source: Any) -> Callable[[], Any]:
    """``__anext__`` for a sync iterable, each item taken in the loop's
    default executor (a list or tuple is read in place)."""
    if isinstance(source, (list, tuple)):
        items = iter(source)

        async def next_listed() -> Any:
            for item in items:
                return item
            raise StopAsyncIteration

        return next_listed
    iterator = iter(source)
    done = object()
    loop = asyncio.get_running_loop()

    async def next_item() -> Any:
        item = await loop.run_in_executor(None, next, iterator, done)
        if item is done:
            raise StopAsyncIteration
        return item

    return next_item


def _opened(streamer: _native.Streamer, request_id: int, streamed: Streamed, where: str) -> bool:
    code = streamer.head(request_id, bytes(streamed))
    if code == _native.SENT_FAILED:
        logger.error("%s: the streamed response cannot be sent (%s); the client got a 500", where, streamer.error())
    return code == _native.SENT_OK


def _respond(request_id: int, data: bytes) -> Optional[str]:
    """Answers ``request_id`` whole (``sufast_respond``)."""
    respond = getattr(_local, "respond", None)
    if respond is None:
        respond = _local.respond = _native.responder()
    return respond(request_id, data)


def _refuse(request_id: int, where: str, why: str) -> None:
    from .handlers import INTERNAL_ERROR

    logger.error("%s: %s; the client got a 500", where, why)
    _respond(request_id, INTERNAL_ERROR)


def _failed(where: str, exc: BaseException) -> None:
    from .handlers import _observe

    _observe(exc)
    logger.error("%s: the stream raised %s; the response is cut short", where, type(exc).__name__, exc_info=exc)


def _close(source: Any, where: str) -> None:
    """Closes a generator the stream stopped reading (``GeneratorExit``
    at its ``yield``)."""
    close = getattr(source, "close", None)
    if close is None or not inspect.isgenerator(source):
        return
    try:
        close()
    except Exception as exc:
        logger.error("%s: closing the stream's generator raised %s", where, type(exc).__name__, exc_info=exc)


async def _aclose(source: Any, where: str) -> None:
    if inspect.isasyncgen(source):
        try:
            await source.aclose()
        except Exception as exc:
            logger.error("%s: closing the stream's generator raised %s", where, type(exc).__name__, exc_info=exc)
    else:
        _close(source, where)


class ReadFailed(Exception):
    """The frames for a stream ended early; the library's reason."""


class FrameReader:
    """Reads the frames a client sends on a request's stream (a streamed
    body's pieces, a WebSocket's messages) with ``sufast_stream_read``,
    into a buffer that grows for a larger frame."""

    def __init__(self, request_id: int) -> None:
        streamer = _streamer()
        self._id = request_id
        self._call = streamer._lib.sufast_stream_read
        self._error = streamer.error
        self._buffer = ctypes.create_string_buffer(64 * 1024)
        self._length = ctypes.c_size_t()
        self._length_ref = ctypes.byref(self._length)
        self._ready: Optional[_Ready] = None

    def read(self, wait_ms: int = 0) -> Optional[bytes]:
        """The next frame, ``b""`` if none came within ``wait_ms`` (the
        GIL released meanwhile), ``None`` once none will come. Raises
        ``ReadFailed`` when they ended early."""
        call, length_ref = self._call, self._length_ref
        while True:
            buffer = self._buffer
            code = call(self._id, buffer, len(buffer), wait_ms, length_ref)
            if code == _native.READ_FRAME:
                return ctypes.string_at(buffer, self._length.value)
            if code == _native.READ_EMPTY:
                return b""
            if code == _native.READ_END:
                return None
            if code == _native.READ_TOO_SMALL:
                self._buffer = ctypes.create_string_buffer(self._length.value)
                continue
            raise ReadFailed(self._error())

    async def next(self) -> Optional[bytes]:
        """``read`` on the event loop: waits for a frame on the ready
        socket, holding no thread."""
        ready = self._ready
        if ready is None:
            # Watched before the first read that can find none, so that
            # the library has the socket to tell.
            ready = self._ready = watch()
        while True:
            frame = self.read(0)
            if frame != b"":
                return frame
            # The watch's reader takes the future out as it sets it.
            waiting = ready.waiting
            future = waiting.get(self._id)
            if future is None or future.done():
                future = waiting[self._id] = ready.loop.create_future()
            await future


class _Ready:
    """One loop's watch on the ready socket: a future per stream that
    waits for room."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: Dict[int, "asyncio.Future[None]"] = {}
        self.streamer = _native.streamer()
        self.fd = self.streamer.ready_fd()
        loop.add_reader(self.fd, self.wake)

    def wake(self) -> None:
        for request_id in self.streamer.ready():
            future = self.waiting.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(None)


_watches: Dict[int, _Ready] = {}


def watch() -> "_Ready":
    """The running loop's watch on the ready socket, made on first use.
    Made before a stream's first call that may report full or empty, so
    that the library has the socket to tell it on."""
    loop = asyncio.get_running_loop()
    ready = _watches.get(id(loop))
    if ready is None or ready.loop is not loop:
        ready = _watches[id(loop)] = _Ready(loop)
    return ready


def _expire(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


async def _room(request_id: int, timeout: Optional[float] = _WAIT_MS / 1000) -> None:
    """Waits until the stream of ``request_id`` has room, has a frame to
    read, or is gone (or ``timeout`` passed: the call is made again
    either way; ``None``: no timeout)."""
    ready = watch()
    future = ready.waiting.get(request_id)
    if future is None or future.done():
        future = ready.waiting[request_id] = ready.loop.create_future()
    timer = ready.loop.call_later(timeout, _expire, future) if timeout is not None else None
    try:
        await future
    finally:
        if timer is not None:
            timer.cancel()
        if ready.waiting.get(request_id) is future:
            del ready.waiting[request_id]
