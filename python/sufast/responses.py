"""Response classes: what a handler may return to set the status, the
headers and the exact bytes of the body."""

from __future__ import annotations

import copy
import mimetypes
import os
import struct
from http.cookies import SimpleCookie
from typing import Any, AsyncIterable, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote

from ._json import dump_json
from .datastructures import MutableHeaders

__all__ = [
    "Response",
    "JSONResponse",
    "HTMLResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "StreamingResponse",
    "FileResponse",
    "Streamed",
    "HeadersInput",
    "encode_response",
    "with_route_headers",
    "own_copy",
    "prepared_head",
    "dump_json",
    "normalize_headers",
]

HeadersInput = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


def normalize_headers(headers: HeadersInput) -> List[Tuple[str, str]]:
    """Headers as a list of ``(name, value)`` pairs; a list keeps repeats
    such as several ``Set-Cookie`` headers."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"each header must be a (name, value) pair, got {item!r}") from None
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        pairs.append((name, value))
    return pairs


def _check_status(status_code: int) -> int:
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        raise TypeError(f"status_code must be an int, got {status_code!r}")
    if not 200 <= status_code <= 599:
        raise ValueError(f"status_code must be between 200 and 599, got {status_code}")
    return status_code


#: Statuses whose responses carry no body.
BODILESS = frozenset({204, 304})


class Response:
    """A response given in full: status, headers and body bytes.

    ``content`` may be ``bytes``, ``str`` (encoded as UTF-8) or ``None``
    (empty). ``media_type`` sets ``Content-Type``; ``text/*`` types get
    ``; charset=utf-8``. A ``Content-Type`` in ``headers`` wins over it.
    """

    media_type: Optional[str] = None
    charset = "utf-8"
    # The headers, made a MutableHeaders on first use. ``_head``, for a
    # response a route made, is its head already encoded: (status, pairs,
    # the encoded head, the same without its status and count); it holds
    # while the status is the same and the headers begin with those pairs.
    _headers: Optional[MutableHeaders] = None
    _head: Optional[Tuple[int, List[Tuple[str, str]], bytes, bytes]] = None

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: HeadersInput = None,
        media_type: Optional[str] = None,
    ) -> None:
        self.status_code = _check_status(status_code)
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        pairs = normalize_headers(headers)
        content_type = self._media_content_type()
        if content_type is not None and not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.insert(0, ("content-type", content_type))
        self._headers = MutableHeaders(pairs)

    @property
    def headers(self) -> MutableHeaders:
        """The headers, ``Content-Type`` among them; change them in place
        (``response.headers["x-time"] = "1"``)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = _new(MutableHeaders)
            head = self._head
            headers._items = head[1][:] if head is not None else []
        return headers

    @headers.setter
    def headers(self, headers: HeadersInput) -> None:
        self._headers = MutableHeaders(normalize_headers(headers))
        self._head = None

    def _media_content_type(self) -> Optional[str]:
        media_type = self.media_type
        if media_type and media_type.startswith("text/") and "charset=" not in media_type:
            return f"{media_type}; charset={self.charset}"
        return media_type

    def render(self, content: Any) -> bytes:
        """Turns ``content`` into the body bytes."""
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(
            f"{type(self).__name__} content must be bytes, str or None, got {type(content).__name__}"
        )

    @property
    def content_type(self) -> Optional[str]:
        """The ``Content-Type`` value, or ``None`` to send none."""
        return self.headers.get("content-type")

    def wire_headers(self) -> List[Tuple[str, str]]:
        """Every header as sent."""
        return self.headers.items()

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: Optional[int] = None,
        expires: Optional[str] = None,
        path: Optional[str] = "/",
        domain: Optional[str] = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Optional[str] = "lax",
    ) -> None:
        """Adds a ``Set-Cookie`` header; call it once per cookie."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        for attribute, given in (
            ("max-age", max_age),
            ("expires", expires),
            ("path", path),
            ("domain", domain),
            ("samesite", samesite),
        ):
            if given is not None:
                morsel[attribute] = given
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        self.headers.append("set-cookie", morsel.OutputString())

    def delete_cookie(self, key: str, path: str = "/", domain: Optional[str] = None) -> None:
        """Adds a ``Set-Cookie`` header that expires the cookie ``key``."""
        self.set_cookie(key, max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT", path=path, domain=domain)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, body={self.body[:40]!r})"


class JSONResponse(Response):
    """``content`` serialized as compact UTF-8 JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dump_json(content)


class HTMLResponse(Response):
    """An HTML page."""

    media_type = "text/html"


class PlainTextResponse(Response):
    """Plain text."""

    media_type = "text/plain"


class RedirectResponse(Response):
    """A redirect to ``url`` (``307 Temporary Redirect`` unless told
    otherwise), with an empty body."""

    def __init__(self, url: str, status_code: int = 307, headers: HeadersInput = None) -> None:
        super().__init__(None, status_code, headers)
        location = quote(str(url), safe=":/%#?=@[]!$&'()*+,;")
        self.headers["location"] = location


Content = Union[Iterable[Any], AsyncIterable[Any]]


class StreamingResponse(Response):
    """A body sent as it is produced: ``content`` is an iterable or an
    async iterable (a generator, an async generator) of ``bytes`` or
    ``str`` chunks, each sent when it comes, with chunked transfer
    encoding.

    A producer that outruns its client waits (the server buffers at most
    ``stream_buffer`` bytes per stream); a client that leaves ends the
    stream at the next chunk, and a generator is then closed
    (``GeneratorExit`` at its ``yield``). An exception from ``content``
    cuts the response short, so the client can tell it is incomplete.
    Streams are not compressed.
    """

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: HeadersInput = None,
        media_type: Optional[str] = None,
    ) -> None:
        if not (hasattr(content, "__iter__") or hasattr(content, "__aiter__")) or isinstance(content, (str, bytes, bytearray, memoryview)):
            raise TypeError(
                f"StreamingResponse content must be an iterable or async iterable of chunks, got {type(content).__name__}"
            )
        super().__init__(None, status_code, headers, media_type)
        self.body_iterator = content


class FileResponse(Response):
    """The file at ``path``, opened and sent by the server (Python hands
    over the path, never the bytes), with ``Content-Length``, ``ETag``,
    ``Last-Modified``, conditional GET (304) and single ``Range`` requests
    (206). ``media_type`` defaults to a guess from ``filename`` or the
    path; ``filename`` adds ``Content-Disposition`` (``attachment`` unless
    ``content_disposition_type`` says otherwise). A path that is not a
    file when the request is answered gets a 404.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        status_code: int = 200,
        headers: HeadersInput = None,
        media_type: Optional[str] = None,
        filename: Optional[str] = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = os.fspath(path)
        self.filename = filename
        if media_type is None and filename is not None:
            media_type = mimetypes.guess_type(filename)[0]
        super().__init__(None, status_code, headers, media_type)
        if filename is not None and "content-disposition" not in self.headers:
            quoted = quote(filename)
            if quoted != filename:
                value = f"{content_disposition_type}; filename*=utf-8''{quoted}"
            else:
                value = f'{content_disposition_type}; filename="{filename}"'
            self.headers["content-disposition"] = value


class Streamed(bytes):
    """An encoded head whose body follows as a stream or a file: what
    ``encode_response`` gives for a ``StreamingResponse`` or a
    ``FileResponse``, for the handler thread to send."""

    #: The chunks (a StreamingResponse's ``body_iterator``), or None.
    source: Any = None
    #: A FileResponse's path, as bytes, or None.
    path: Optional[bytes] = None


def _streamed(head: bytes, response: Response) -> Streamed:
    streamed = Streamed(head)
    if isinstance(response, FileResponse):
        streamed.path = os.fsencode(response.path)
    else:
        streamed.source = response.body_iterator  # type: ignore[attr-defined]
    return streamed


def with_route_headers(response: Response, headers: List[Tuple[str, str]]) -> Response:
    """A copy of ``response`` with a route's ``headers`` added, except those
    it sets itself. A copy: the same ``Response`` object may be returned by
    other routes with other headers, which must not stick to it."""
    own = response.headers
    merged = copy.copy(response)
    merged.headers = [(n, v) for n, v in headers if n not in own] + own.items()
    return merged


def own_copy(response: Response) -> Response:
    """A copy of ``response`` whose headers can change without changing
    the original's (which a handler may return again)."""
    copied = copy.copy(response)
    if response._headers is not None:
        copied._headers = MutableHeaders(response._headers.items())
    return copied


_HEAD = struct.Struct("<HI")
_new = object.__new__
_PAIR = struct.Struct("<II")


def encode_head(status_code: int, headers: Iterable[Tuple[str, str]]) -> bytes:
    """The status and headers of a response in the native layout
    (``rust-core/src/wire.rs``); the body follows as is.

    Raises ``UnicodeEncodeError`` for a header that is not Latin-1.
    """
    pairs = list(headers)
    parts = [_HEAD.pack(status_code, len(pairs))]
    for name, value in pairs:
        name_bytes = name.encode("latin-1")
        value_bytes = value.encode("latin-1")
        parts.append(_PAIR.pack(len(name_bytes), len(value_bytes)))
        parts.append(name_bytes)
        parts.append(value_bytes)
    return b"".join(parts)


def prepared_head(status_code: int, pairs: List[Tuple[str, str]]) -> Tuple[int, List[Tuple[str, str]], bytes, bytes]:
    """A head encoded once, for the responses a route makes (``Response._head``)."""
    lowered = [(name.lower(), value) for name, value in pairs]
    wire = encode_head(status_code, lowered)
    return (status_code, lowered, wire, wire[_HEAD.size :])


def encode_response(response: Response) -> bytes:
    """A whole ``Response`` in the native layout."""
    head = response._head
    if head is not None and response.status_code == head[0]:
        headers = response._headers
        if headers is None:
            return head[2] + response.body
        # Headers were read or changed: the encoded head still holds if
        # they begin with its pairs; only what follows them is encoded.
        items = headers._items
        pairs = head[1]
        known = len(pairs)
        if items[:known] == pairs:
            count = len(items)
            if count == known:
                return head[2] + response.body
            if count == known + 1:  # one header added, as middleware often does
                pair = items[known]
                encoded = _ENCODED_PAIRS.get(pair) or _encode_pairs((pair,))
            else:
                encoded = _encode_pairs(items[known:])
            return b"".join((_HEAD.pack(head[0], count), head[3], encoded, response.body))
    if isinstance(response, (StreamingResponse, FileResponse)):
        return _streamed(encode_head(response.status_code, response.headers.items()), response)
    return encode_head(response.status_code, response.headers.items()) + response.body


# Header pairs middleware adds, encoded: most are the same on every
# response. Bounded; emptied when full.
_ENCODED_PAIRS: Dict[Tuple[str, str], bytes] = {}
_ENCODED_PAIRS_MAX = 512


def _encode_pairs(pairs: Iterable[Tuple[str, str]]) -> bytes:
    parts = []
    cache = _ENCODED_PAIRS
    for pair in pairs:
        encoded = cache.get(pair)
        if encoded is None:
            name_bytes = pair[0].encode("latin-1")
            value_bytes = pair[1].encode("latin-1")
            encoded = _PAIR.pack(len(name_bytes), len(value_bytes)) + name_bytes + value_bytes
            if len(cache) >= _ENCODED_PAIRS_MAX:
                cache.clear()
            cache[pair] = encoded
        parts.append(encoded)
    return b"".join(parts)
