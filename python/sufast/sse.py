"""Server-sent events: ``EventSourceResponse`` streams events to a
browser's ``EventSource`` (``text/event-stream``), with keep-alive
comments while the source is quiet.

>>> from sufast import App, Header
>>> from sufast.sse import EventSourceResponse, ServerSentEvent
>>> app = App()
>>> @app.get("/ticks")
... async def ticks(last_event_id: str = Header("0")):
...     async def events():
...         for n in range(int(last_event_id) + 1, int(last_event_id) + 4):
...             yield ServerSentEvent(data={"n": n}, event="tick", id=str(n))
...     return EventSourceResponse(events())
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any, AsyncIterator, Iterator, Optional

from .responses import Content, HeadersInput, StreamingResponse, dump_json

__all__ = ["EventSourceResponse", "ServerSentEvent"]

_LINES = re.compile(r"\r\n|\r|\n")


class ServerSentEvent:
    """One event: ``data`` (a ``str`` is sent as it is, line by line; any
    other value as JSON), ``event`` (its type), ``id`` (what the browser
    sends back as ``Last-Event-ID`` when it reconnects), ``retry`` (the
    reconnection delay in milliseconds) and ``comment`` (a line the
    browser ignores)."""

    def __init__(
        self,
        data: Any = None,
        event: Optional[str] = None,
        id: Optional[str] = None,
        retry: Optional[int] = None,
        comment: Optional[str] = None,
    ) -> None:
        for name, value in (("event", event), ("id", id)):
            if value is not None and (_LINES.search(value) or "\0" in value):
                raise ValueError(f"a server-sent event's {name} cannot hold a line break or NUL, got {value!r}")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
            raise ValueError(f"a server-sent event's retry is a number of milliseconds, got {retry!r}")
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    def encode(self) -> bytes:
        """The event as sent, ending with its blank line."""
        lines = []
        if self.comment is not None:
            lines.extend(f": {line}" for line in _LINES.split(self.comment))
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        data = self.data
        if data is not None:
            if isinstance(data, bytes):
                data = data.decode("utf-8")
            elif not isinstance(data, str):
                data = dump_json(data).decode("utf-8")
            lines.extend(f"data: {line}" for line in _LINES.split(data))
        return ("\n".join(lines) + "\n\n").encode("utf-8")

    def __repr__(self) -> str:
        return f"ServerSentEvent(data={self.data!r}, event={self.event!r}, id={self.id!r})"


def _encode(item: Any) -> bytes:
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, dict):
        return ServerSentEvent(**item).encode()
    return ServerSentEvent(data=item).encode()


_PING = b": ping\n\n"


class EventSourceResponse(StreamingResponse):
    """Streams the events ``content`` yields (an iterable or async
    iterable of ``ServerSentEvent``, of ``dict`` with its fields, or of
    data values) as ``text/event-stream``, with ``Cache-Control:
    no-store`` and ``X-Accel-Buffering: no`` (so that nginx passes each
    event on at once).

    While an async source yields nothing for ``ping`` seconds (15 by
    default; ``None`` for never), a ``: ping`` comment is sent, which keeps
    proxies from closing the connection and finds clients that left. The
    client's ``Last-Event-ID`` is a request header: read it with
    ``Header()`` or ``request.headers``.
    """

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: HeadersInput = None,
        ping: Optional[float] = 15,
        media_type: str = "text/event-stream",
    ) -> None:
        if ping is not None and (isinstance(ping, bool) or not isinstance(ping, (int, float)) or ping <= 0):
            raise ValueError(f"ping must be a number of seconds above 0, or None, got {ping!r}")
        super().__init__(content, status_code, headers, media_type)
        self.headers.setdefault("cache-control", "no-store")
        self.headers.setdefault("x-accel-buffering", "no")
        if hasattr(content, "__aiter__"):
            self.body_iterator = _events_async(content, ping)
        else:
            self.body_iterator = _events(content)

    def _media_content_type(self) -> Optional[str]:
        # text/event-stream is always UTF-8: no charset parameter.
        return self.media_type


def _events(source: Any) -> Iterator[bytes]:
    try:
        for item in source:
            yield _encode(item)
    finally:
        if inspect.isgenerator(source):
            source.close()


async def _events_async(source: Any, ping: Optional[float]) -> AsyncIterator[bytes]:
    items = source.__aiter__()
    pending: Optional["asyncio.Future[Any]"] = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(items.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=ping)
            if not done:
                yield _PING
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            yield _encode(item)
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except BaseException:
                pass
        if inspect.isasyncgen(source):
            await source.aclose()
