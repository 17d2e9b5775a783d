"""WebSockets: ``@app.websocket("/ws")`` handlers get a ``WebSocket``.

The server does the handshake, the framing, ping/pong and the message
size limit (``ws_max_size``); the handler accepts, sends and receives
whole messages through the request's stream, on the app's event loop.

>>> from sufast import App, WebSocket
>>> app = App()
>>> @app.websocket("/echo")
... async def echo(websocket: WebSocket):
...     await websocket.accept()
...     async for message in websocket:
...         await websocket.send_text(f"echo: {message}")
"""

from __future__ import annotations

import struct
from typing import Any, AsyncIterator, Dict, Iterable, Optional, Tuple, Union

from . import _native, _streams
from ._json import load_json
from .responses import dump_json, encode_head

__all__ = ["WebSocket", "WebSocketDisconnect"]

_TEXT, _BINARY, _CLOSE = 1, 2, 8
_CODE = struct.Struct("<H")


class WebSocketDisconnect(Exception):
    """The client closed the connection (or it broke: 1006), with its
    close ``code`` and ``reason``."""

    def __init__(self, code: int = 1000, reason: Optional[str] = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)


class WebSocket:
    """One WebSocket connection, in an ``async def`` handler.

    The request's ``headers``, ``query_params``, ``path_params``,
    ``cookies``, ``client`` and ``url`` are readable before and after
    ``accept()``. ``accept()`` must come first; closing before it refuses
    the connection with an HTTP 403. ``receive_*`` raise
    ``WebSocketDisconnect`` once the client closed; ``async for message
    in websocket`` gives each text (``str``) or binary (``bytes``) message
    until then.
    """

    def __init__(self, request: Any) -> None:
        self._request = request
        self._id: int = request.id
        self._streamer = _native.streamer()
        self._reader = _streams.FrameReader(self._id)
        # The call a sent message costs, bound once.
        self._chunk = self._streamer._chunk
        #: Whether ``accept()`` went through.
        self.accepted = False
        #: Whether the connection is over: closed by either side.
        self.closed = False
        #: The close code once the client closed, else None.
        self.close_code: Optional[int] = None
        #: Whether an answer (accept, or a refusal) was given.
        self.answered = False

    def __getattr__(self, name: str) -> Any:
        # headers, query_params, path_params, cookies, client, url, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._request, name)

    async def accept(self, subprotocol: Optional[str] = None, headers: Optional[Iterable[Tuple[str, str]]] = None) -> None:
        """Accepts the connection, choosing ``subprotocol`` (one the client
        offered in ``Sec-WebSocket-Protocol``) and adding ``headers`` to
        the handshake's answer."""
        if self.answered:
            raise RuntimeError("the WebSocket was already accepted or refused")
        pairs = [(name.lower(), value) for name, value in (headers or [])]
        if subprotocol is not None:
            pairs.append(("sec-websocket-protocol", subprotocol))
        _streams.watch()
        code = self._streamer.head(self._id, encode_head(200, pairs))
        self.answered = True
        if code == _native.SENT_FAILED:
            raise RuntimeError(f"the WebSocket cannot be accepted: {self._streamer.error()}")
        if code != _native.SENT_OK:
            self.closed = True
            self.close_code = 1006
            raise WebSocketDisconnect(1006)
        self.accepted = True

    # Receiving -------------------------------------------------------

    async def _frame(self) -> Tuple[int, bytes]:
        if not self.accepted:
            raise RuntimeError("accept() the WebSocket before receiving")
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code)
        try:
            data = await self._reader.next()
        except _streams.ReadFailed as failed:
            raise RuntimeError(f"the WebSocket cannot be read: {failed}") from None
        if data is None:
            return _CLOSE, _CODE.pack(1006)
        return data[0], data[1:]

    async def receive(self) -> Dict[str, Any]:
        """The next message as Starlette gives it:
        ``{"type": "websocket.receive", "text": ...}`` (or ``"bytes"``), or
        ``{"type": "websocket.disconnect", "code": ..., "reason": ...}``."""
        try:
            kind, payload = await self._frame()
        except WebSocketDisconnect as gone:
            return {"type": "websocket.disconnect", "code": gone.code, "reason": gone.reason}
        if kind == _TEXT:
            return {"type": "websocket.receive", "text": payload.decode("utf-8")}
        if kind == _BINARY:
            return {"type": "websocket.receive", "bytes": payload}
        return self._closed_by_client(payload)

    async def _message(self) -> Union[str, bytes]:
        kind, payload = await self._frame()
        if kind == _TEXT:
            return payload.decode("utf-8")
        if kind == _BINARY:
            return payload
        message = self._closed_by_client(payload)
        raise WebSocketDisconnect(message["code"], message["reason"])

    def _closed_by_client(self, payload: bytes) -> Dict[str, Any]:
        code = _CODE.unpack_from(payload)[0] if len(payload) >= 2 else 1005
        reason = payload[2:].decode("utf-8", "replace")
        self.close_code = code
        self.closed = True
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def receive_text(self) -> str:
        """The next message, which must be text."""
        message = await self._message()
        if not isinstance(message, str):
            raise TypeError("expected a text message, got a binary one")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary."""
        message = await self._message()
        if not isinstance(message, bytes):
            raise TypeError("expected a binary message, got a text one")
        return message

    async def receive_json(self, mode: str = "text") -> Any:
        """The next message parsed as JSON (``mode="binary"``: from a
        binary message)."""
        message = await (self.receive_text() if mode == "text" else self.receive_bytes())
        return load_json(message)

    def __aiter__(self) -> AsyncIterator[Union[str, bytes]]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Union[str, bytes]]:
        frame = self._frame
        while True:
            try:
                kind, payload = await frame()
            except WebSocketDisconnect:
                return
            if kind == _TEXT:
                yield payload.decode("utf-8")
            elif kind == _BINARY:
                yield payload
            else:
                self._closed_by_client(payload)
                return

    async def iter_text(self) -> AsyncIterator[str]:
        """Each text message until the client closes."""
        while True:
            try:
                yield await self.receive_text()
            except WebSocketDisconnect:
                return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Each binary message until the client closes."""
        while True:
            try:
                yield await self.receive_bytes()
            except WebSocketDisconnect:
                return

    async def iter_json(self) -> AsyncIterator[Any]:
        """Each text message, parsed as JSON, until the client closes."""
        async for text in self.iter_text():
            yield load_json(text)

    # Sending ---------------------------------------------------------

    async def _send(self, frame: bytes) -> None:
        # Most sends are taken at once: one call, then the checks only
        # when it was not.
        if self.accepted and not self.closed and len(frame) <= _streams.MAX_MESSAGE:
            if self._chunk(self._id, frame, len(frame), 0) == _native.SENT_OK:
                return
        if not self.accepted:
            raise RuntimeError("accept() the WebSocket before sending")
        if self.closed:
            raise WebSocketDisconnect(self.close_code or 1006)
        if len(frame) > _streams.MAX_MESSAGE:
            raise ValueError(f"a WebSocket message of {len(frame) - 1} bytes is larger than the 16 MiB the server sends")
        while True:
            code = self._chunk(self._id, frame, len(frame), 0)
            if code == _native.SENT_OK:
                return
            if code == _native.SENT_FULL:
                await _streams._room(self._id)
                continue
            if code == _native.SENT_GONE:
                self.closed = True
                raise WebSocketDisconnect(self.close_code or 1006)
            raise RuntimeError(f"the WebSocket message cannot be sent: {self._streamer.error()}")

    async def send_text(self, data: str) -> None:
        """Sends a text message."""
        frame = b"\x01" + data.encode("utf-8")
        if self.accepted and not self.closed and len(frame) <= _streams.MAX_MESSAGE:
            if self._chunk(self._id, frame, len(frame), 0) == _native.SENT_OK:
                return
        await self._send(frame)

    async def send_bytes(self, data: bytes) -> None:
        """Sends a binary message."""
        await self._send(b"\x02" + bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Sends ``data`` as JSON, in a text message (``mode="binary"``: a
        binary one)."""
        encoded = dump_json(data)
        await self._send((b"\x01" if mode == "text" else b"\x02") + encoded)

    async def close(self, code: int = 1000, reason: Optional[str] = None) -> None:
        """Closes the connection with ``code``; before ``accept()``,
        refuses it with an HTTP 403."""
        if not self.answered:
            self.refuse(403, "Forbidden: the WebSocket was closed before it was accepted")
            return
        if self.closed or not self.accepted:
            return
        self.closed = True
        frame = b"\x08" + _CODE.pack(code) + (reason or "").encode("utf-8")[:123]
        while self._streamer.chunk(self._id, frame, 0) == _native.SENT_FULL:
            await _streams._room(self._id)
        self._streamer.end(self._id, True)

    def refuse(self, status_code: int, detail: Any) -> None:
        """Refuses the connection with an HTTP response of ``status_code``
        and ``{"detail": detail}``, before ``accept()``."""
        if self.answered:
            return
        self.answered = True
        self.closed = True
        body = dump_json({"detail": detail})
        _streams._respond(self._id, encode_head(status_code, [("content-type", "application/json")]) + body)

    def finish(self, failed: bool) -> None:
        """Ends the stream once the handler returned: closes with 1011 if it
        failed, else 1000, unless it closed already."""
        if not self.answered:
            if failed:
                self.refuse(500, "Internal Server Error")
            else:
                self.refuse(403, "Forbidden: the handler returned without accepting the WebSocket")
            return
        if self.accepted:
            # A close frame already sent makes this end a no-op for the client.
            self._streamer.end(self._id, not failed)
            self.closed = True
