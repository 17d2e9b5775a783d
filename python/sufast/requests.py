"""``Request``: what a per-request handler can read of the HTTP request.
Everything but the basics is parsed on first use, so a handler pays only
for what it reads."""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, unquote

from ._json import load_json
from .datastructures import Headers, MultiDict, State
from .exceptions import HTTPException
from .forms import FormData, decode_form, is_form

__all__ = ["Address", "ClientDisconnect", "Headers", "QueryParams", "Request", "decode_records"]


class ClientDisconnect(Exception):
    """The client went away before the request body was read (or the
    request was answered first): raised by ``request.stream()``."""


class Address(NamedTuple):
    """The client's address."""

    host: str
    port: int


class QueryParams(MultiDict):
    """Query-string parameters; a key may repeat.

    ``params["tag"]`` is the last value (as a single-valued parameter sees
    it); ``getlist`` gives them all in order.
    """

    __slots__ = ()

    def __init__(self, query: str) -> None:
        super().__init__(_parse_query(query))

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


def _parse_query(query: str) -> List[Tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``, split by hand when
    nothing in it is encoded (no ``%``, no ``+``), which is most queries."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


class _Ready:
    """An awaitable that is already done: ``await request.json()`` in an
    ``async def`` handler costs no trip through the event loop."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Iterator[Any]:
        return self.value
        yield  # pragma: no cover - makes this a generator


_MISSING = object()
# The body of a route whose handler reads it as it arrives (the record's
# held length is STREAMED_BODY), until it is read; then what was read.
_STREAMED = object()
_CONSUMED = object()
# SufastRead's held length of a streamed body (STREAMED_BODY in the header).
_STREAMED_HELD = 0xFFFFFFFF


class RequestScope:
    """What one request's dependencies leave: their values by callable
    (and its ``BackgroundTasks``), the generators to finish once the
    response is sent, and what the handler raised."""

    __slots__ = ("values", "exits", "raised")

    def __init__(self) -> None:
        self.values: Dict[Any, Any] = {}
        self.exits: List[Any] = []
        self.raised: Optional[BaseException] = None


class Request:
    """One HTTP request as a handler sees it.

    In an ``async def`` handler, ``body()``, ``text()`` and ``json()`` are
    awaitable (``await request.json()``); in a plain ``def`` handler they
    return the value directly.
    """

    __slots__ = (
        "id",
        "handler",
        "method",
        "_raw_path",
        "_query",
        "_host",
        "_port",
        "_params",
        "_headers_raw",
        "_body",
        "_scheme",
        "_awaitable",
        "_path_params",
        "_path_param_reader",
        "_headers",
        "_query_params",
        "_cookies",
        "_json",
        "_scope",
        "_raised",
        "_state",
        "_form",
    )

    def __init__(
        self,
        id: int,
        handler: int,
        method: str,
        raw_path: str,
        query: str,
        host: str,
        port: int,
        params: List[str],
        headers_raw: bytes,
        body: bytes,
        scheme: str = "http",
    ) -> None:
        self.id = id
        self.handler = handler
        #: The request method, e.g. ``"GET"``.
        self.method = method
        self._raw_path = raw_path
        self._query = query
        self._host = host
        self._port = port
        self._params = params
        self._headers_raw = headers_raw
        self._body = body
        self._scheme = scheme
        self._awaitable = False
        self._path_params: Optional[Dict[str, Any]] = None
        self._path_param_reader: Optional[Callable[[List[str]], Dict[str, Any]]] = None
        self._headers: Optional[Headers] = None
        # What dependencies and background tasks leave (a RequestScope),
        # made by the first that needs it.
        self._scope: Optional[RequestScope] = None
        self._query_params: Optional[QueryParams] = None
        self._cookies: Optional[Dict[str, str]] = None
        self._json: Any = _MISSING
        # What the handler raised that no exception handler took, as it
        # passes through middleware.
        self._raised: Optional[BaseException] = None
        self._state: Optional[State] = None
        self._form: Optional[FormData] = None

    @property
    def app(self) -> Any:
        """The App serving this request (``request.app.state``)."""
        from . import applications

        return applications._serving

    @property
    def state(self) -> State:
        """Attributes for this request alone: what middleware or a
        dependency leaves for the handler (``request.state.user = ...``)."""
        if self._state is None:
            self._state = State(owner="request")
        return self._state

    @property
    def path(self) -> str:
        """The path, percent-decoded (``/caf%C3%A9`` reads ``/café``)."""
        return unquote(self._raw_path)

    @property
    def scheme(self) -> str:
        """``"http"``, or ``"https"`` when a trusted proxy said the client
        used it (see ``App(forwarded_allow_ips=...)``)."""
        return self._scheme

    @property
    def url(self) -> str:
        """The full URL as the client asked for it, path still encoded; its
        scheme is ``scheme``."""
        host = self.headers.get("host") or "localhost"
        query = f"?{self._query}" if self._query else ""
        return f"{self._scheme}://{host}{self._raw_path}{query}"

    @property
    def query_string(self) -> str:
        """The raw query string, without the ``?``."""
        return self._query

    @property
    def path_params(self) -> Dict[str, Any]:
        """Path parameters by name, converted as the route's convertors say."""
        if self._path_params is None:
            reader = self._path_param_reader
            self._path_params = reader(self._params) if reader is not None else {}
        return self._path_params

    @property
    def query_params(self) -> QueryParams:
        if self._query_params is None:
            self._query_params = QueryParams(self._query)
        return self._query_params

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(_decode_headers(self._headers_raw))
        return self._headers

    @property
    def cookies(self) -> Dict[str, str]:
        """Cookies from every ``Cookie`` header; a repeated name keeps the first."""
        if self._cookies is None:
            cookies: Dict[str, str] = {}
            for header in self.headers.getlist("cookie"):
                for chunk in header.split(";"):
                    name, sep, value = chunk.partition("=")
                    name, value = name.strip(), value.strip()
                    if not sep or not name:
                        continue
                    if len(value) >= 2 and value[0] == value[-1] == '"':
                        value = value[1:-1]
                    cookies.setdefault(name, value)
            self._cookies = cookies
        return self._cookies

    @property
    def client(self) -> Optional[Address]:
        """The client's ``(host, port)``, or ``None`` when unknown. Behind a
        trusted proxy (``App(forwarded_allow_ips=...)``), the client the
        proxy named, port 0 when it named none."""
        return Address(self._host, self._port) if self._host else None

    def _give(self, value: Any) -> Any:
        return _Ready(value) if self._awaitable else value

    def body(self) -> Any:
        """The body as bytes. On a route whose handler takes ``Form()`` or
        ``File()`` parameters a form body was parsed as it arrived (large
        files went to disk); read it with ``form()`` there."""
        if self._body is _STREAMED:
            return self._read_streamed(lambda data: data)
        return self._give(self._raw_body())

    def text(self) -> Any:
        """The body decoded as UTF-8 (invalid bytes are replaced)."""
        if self._body is _STREAMED:
            return self._read_streamed(lambda data: data.decode("utf-8", "replace"))
        return self._give(self._raw_body().decode("utf-8", "replace"))

    def stream(self) -> "BodyStream":
        """The body as it arrives: ``async for chunk in request.stream()``
        in ``async def`` code, ``for chunk in request.stream()`` in ``def``
        code. On a route whose handler's code calls ``stream()`` (and that
        reads no body parameter), the server hands the body over piece by
        piece with bounded memory (``stream_buffer``); elsewhere the body
        was read whole and comes as one chunk. Once streamed, the body is
        gone: ``body()`` then raises ``RuntimeError``. A body that breaks
        off raises ``HTTPException`` (408, 413, 400) or
        ``ClientDisconnect``."""
        return BodyStream(self)

    def _read_streamed(self, convert: Callable[[bytes], Any]) -> Any:
        if self._awaitable:

            async def read() -> Any:
                data = b"".join([chunk async for chunk in BodyStream(self)])
                self._body = data
                return convert(data)

            return read()
        data = b"".join(BodyStream(self))
        self._body = data
        return convert(data)

    def _raw_body(self) -> bytes:
        if self.handler in form_handlers and self._parsed_form():
            raise RuntimeError(
                f"{self.method} {self.path}: the body was parsed as a form as it arrived, since the route "
                "reads Form() or File() parameters; read it with request.form()"
            )
        if self._body is _STREAMED:
            if self._awaitable:
                raise RuntimeError(f"{self.method} {self.path}: the body streams in; await request.body() first")
            self._body = b"".join(BodyStream(self))
        if self._body is _CONSUMED:
            raise RuntimeError(f"{self.method} {self.path}: the body was read with request.stream() already")
        return self._body

    def form(self) -> Any:
        """The form body, ``multipart/form-data`` or
        ``application/x-www-form-urlencoded``, as ``FormData``: fields as
        ``str``, files as ``UploadFile``. A body of another type gives an
        empty form; a malformed one fails the request with 400, one over
        ``max_form_parts`` or ``max_part_size`` with 413."""
        form = self._form_data()
        for _, value in form._items:
            if type(value) is not str:
                value._awaitable = self._awaitable  # await file.read() in async def code
        return self._give(form)

    def _parsed_form(self) -> bool:
        """Whether the library parsed this request's body as a form (see
        ``rust-core/src/forms.rs``): the route reads forms and the
        Content-Type names one."""
        return self.handler in form_handlers and is_form(self.headers.get("content-type"))

    def _form_data(self) -> FormData:
        form = self._form
        if form is not None:
            return form
        content_type = self.headers.get("content-type")
        if not is_form(content_type):
            form = FormData()
        elif self.handler in form_handlers:
            form, on_disk = decode_form(self._body)
            if on_disk:
                # Its files are closed once the response is sent (the
                # library deletes them then).
                scope = self._scope
                if scope is None:
                    scope = self._scope = RequestScope()
                closer = _closing(form)
                next(closer)
                scope.exits.append(closer)
        else:
            from . import _native

            record, status, detail = _native.parse_form(content_type.encode("latin-1"), self._body)
            if status:
                raise HTTPException(status, detail)
            form = decode_form(record)[0]
        self._form = form
        return form

    def json(self) -> Any:
        """The body parsed as JSON. A body that is not JSON makes the
        request fail with 400."""
        return self._give(self._json_value())

    def _json_value(self) -> Any:
        if self._json is _MISSING:
            try:
                self._json = load_json(self._raw_body())
            except (ValueError, UnicodeDecodeError) as exc:
                raise HTTPException(400, f"Invalid JSON body: {exc}") from None
        return self._json

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._raw_path}>"


#: The handler ids of the serving app's routes that read forms: their form
#: bodies arrive parsed (set by the App as it ships its route table).
form_handlers: frozenset = frozenset()


def _closing(form: FormData) -> Iterator[None]:
    """Closes ``form``'s files when the request's clean-up runs (a
    generator, as a dependency's clean-up is)."""
    try:
        yield
    finally:
        form.close()


_FIXED = struct.Struct("<IQIHH8I")
# The path parameters' lengths, by their number (routes have few).
_LENGTHS = [struct.Struct(f"<{n}I") for n in range(16)]
_PAIR = struct.Struct("<II")


def _decode_headers(block: bytes) -> List[Tuple[str, str]]:
    pairs = []
    offset, end = 0, len(block)
    while offset < end:
        name_len, value_len = _PAIR.unpack_from(block, offset)
        offset += 8
        name = block[offset : offset + name_len].decode("latin-1")
        offset += name_len
        pairs.append((name, block[offset : offset + value_len].decode("latin-1")))
        offset += value_len
    return pairs


def decode_records(data: bytes, take_body: Optional[Callable[[int, int], Optional[bytes]]] = None) -> List[Request]:
    """Splits what the native queue handed over into requests (the record
    layout is documented in ``rust-core/src/wire.rs``). A body the record
    holds back is fetched with ``take_body(id, size)``; a request whose
    body is gone (its client left) is skipped."""
    requests = []
    offset, end = 0, len(data)
    fixed = _FIXED.size
    unpack = _FIXED.unpack_from
    while offset < end:
        (rest, rid, handler, port, count, n_method, n_path, n_query, n_host, n_scheme, n_headers, n_body, n_held) = unpack(data, offset)
        record_end = offset + 4 + rest
        pos = offset + fixed
        if count:
            lengths = (_LENGTHS[count] if count < 16 else struct.Struct(f"<{count}I")).unpack_from(data, pos)
            pos += 4 * count
        # Method, path, query, host and scheme lie side by side, all
        # latin-1: one decode, then slices.
        to_query = n_method + n_path
        to_host = to_query + n_query
        to_scheme = to_host + n_host
        text = data[pos : pos + to_scheme + n_scheme].decode("latin-1")
        method = text[:n_method]
        path = text[n_method:to_query]
        query = text[to_query:to_host] if n_query else ""
        host = text[to_host:to_scheme]
        scheme = "http" if n_scheme == 4 else text[to_scheme:]
        pos += to_scheme + n_scheme
        params = []
        if count:
            for length in lengths:
                params.append(data[pos : pos + length].decode("utf-8"))
                pos += length
        headers = data[pos : pos + n_headers]
        pos += n_headers
        offset = record_end
        if n_held == _STREAMED_HELD:
            body = _STREAMED  # read with request.stream() as it arrives
        elif n_held:
            if take_body is None:
                raise ValueError(f"request {rid} holds back its body of {n_held} bytes and no take_body was given")
            held = take_body(rid, n_held)
            if held is None:
                continue
            body = held
        else:
            body = data[pos : pos + n_body] if n_body else b""
        requests.append(Request(rid, handler, method, path, query, host, port, params, headers, body, scheme))
    return requests


class BodyStream:
    """``request.stream()``: the body's pieces, by ``for`` or ``async for``."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def _whole(self) -> Iterator[bytes]:
        request = self._request
        body = request._body
        if body is _CONSUMED:
            raise RuntimeError(f"{request.method} {request.path}: the body was streamed already")
        if body:
            yield body

    def __iter__(self) -> Iterator[bytes]:
        request = self._request
        if request._body is not _STREAMED:
            yield from self._whole()
            return
        from ._streams import FrameReader, ReadFailed

        request._body = _CONSUMED
        reader = FrameReader(request.id)
        while True:
            try:
                chunk = reader.read(1000)
            except ReadFailed as failed:
                raise _read_failed(str(failed)) from None
            if chunk is None:
                return
            if chunk:
                yield chunk

    async def _pieces(self) -> Any:
        request = self._request
        if request._body is not _STREAMED:
            for chunk in self._whole():
                yield chunk
            return
        from ._streams import FrameReader, ReadFailed

        request._body = _CONSUMED
        reader = FrameReader(request.id)
        while True:
            try:
                chunk = await reader.next()
            except ReadFailed as failed:
                raise _read_failed(str(failed)) from None
            if chunk is None:
                return
            yield chunk

    def __aiter__(self) -> Any:
        return self._pieces()


def _read_failed(why: str) -> Exception:
    """What a streamed body that ended early raises: its status when the
    library names one (408, 413), else ``ClientDisconnect``."""
    status = why[:3]
    if status in ("408", "413"):
        return HTTPException(int(status), why[4:])
    return ClientDisconnect(why)
