"""``TestClient``: requests to an App from a test, over real HTTP to the
real server on a free loopback port (no mock of anything).

>>> from sufast.testclient import TestClient
>>> with TestClient(app) as client:  # doctest: +SKIP
...     response = client.get("/items/1", params={"q": "x"})
...     assert response.status_code == 200 and response.json() == {"id": 1}
"""

from __future__ import annotations

import http.client
import json as _json
import threading
import uuid
from http.cookies import SimpleCookie
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlencode, urlsplit

from . import handlers
from .applications import App
from .datastructures import Headers
from .exceptions import SufastError

__all__ = ["TestClient", "TestResponse"]

_MISSING: Any = object()

FileValue = Union[bytes, str, Any, Tuple[Any, ...]]


class TestResponse:
    """What the server answered."""

    __test__ = False

    def __init__(self, method: str, url: str, status_code: int, reason: str, headers: List[Tuple[str, str]], content: bytes) -> None:
        self.request_method = method
        #: The URL asked for, with the client's base URL.
        self.url = url
        self.status_code = status_code
        self.reason_phrase = reason
        #: Case-insensitive; repeats kept (``headers.getlist("set-cookie")``).
        self.headers = Headers(headers)
        #: The body as bytes.
        self.content = content

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def cookies(self) -> Dict[str, str]:
        """The cookies this response set."""
        jar: Dict[str, str] = {}
        for header in self.headers.getlist("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                jar[name] = morsel.value
        return jar

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code}]>"


class TestClient:
    """Sends requests to ``app``, served by the real server on a free
    port of 127.0.0.1 for as long as the client is open.

    ``with TestClient(app) as client:`` starts the app (its start-up code
    runs) and stops it at the end (its shut-down code runs); without
    ``with``, the first request starts it and ``close()`` stops it.
    Cookies the app sets are kept and sent back, as a browser would.
    With ``raise_server_exceptions`` (the default), an exception a
    handler raised that no exception handler took is raised again in the
    test, after its 500 arrived, as Starlette's client does.

    One App is served per process: a second client while another is open
    raises ``SufastError``; clients made one after another are fine.
    """

    __test__ = False

    def __init__(
        self,
        app: App,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        headers: Optional[Mapping[str, str]] = None,
        cookies: Optional[Mapping[str, str]] = None,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(app, App):
            raise TypeError(f"TestClient takes a sufast App, got {type(app).__name__}")
        base = urlsplit(base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise ValueError(f"base_url must be an http URL such as http://testserver, got {base_url!r}")
        self.app = app
        self.base_url = base_url.rstrip("/")
        self._host = base.netloc
        self._prefix = base.path.rstrip("/")
        self.raise_server_exceptions = raise_server_exceptions
        #: Sent with every request.
        self.headers: Dict[str, str] = dict(headers or {})
        #: The cookie jar: what the app set, sent back with every request.
        self.cookies: Dict[str, str] = dict(cookies or {})
        self.timeout = timeout
        self._port = 0
        self._connection: Optional[http.client.HTTPConnection] = None
        self._raised: List[BaseException] = []
        self._lock = threading.Lock()

    # Serving --------------------------------------------------------------

    def __enter__(self) -> "TestClient":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(self) -> None:
        """Starts serving the app, unless this client already does."""
        if self._port:
            return
        try:
            self._port = self.app.start(0, access_log=False, log_level="warning", _log_routes=False)
        except SufastError as exc:
            if "already being served" in exc.message:
                raise SufastError(
                    f"TestClient: {exc.message}; one App is served per process, so close the other TestClient (or stop its App) first",
                    exc.code,
                ) from None
            raise
        handlers.unhandled_observer = self._raised.append

    def close(self) -> None:
        """Stops the app (its shut-down code runs) and closes the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._port:
            if handlers.unhandled_observer == self._raised.append:
                handlers.unhandled_observer = None
            self._port = 0
            self.app.stop()

    # Requests -------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]] = None,
        headers: Optional[Mapping[str, str]] = None,
        cookies: Optional[Mapping[str, str]] = None,
        json: Any = _MISSING,
        data: Optional[Union[Mapping[str, Any], str, bytes]] = None,
        files: Union[Mapping[str, FileValue], Sequence[Tuple[str, FileValue]], None] = None,
        content: Optional[Union[str, bytes]] = None,
    ) -> TestResponse:
        """Sends one request and gives the response. ``params`` go in the
        query string; the body is ``json`` (encoded as JSON), ``content``
        (sent as is), ``data`` (a form, or raw str/bytes) or ``files``
        (with ``data``, a multipart form: each file is bytes, a file
        object, or ``(filename, content[, content_type])``)."""
        with self._lock:
            self.start()
            target = self._target(url, params)
            sent = {"Host": self._host, **self.headers}
            body, content_type = _body(json, data, files, content)
            if content_type is not None:
                sent["Content-Type"] = content_type
            jar = {**self.cookies, **(cookies or {})}
            if jar:
                sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in jar.items())
            sent.update(headers or {})
            status, reason, reply_headers, reply = self._send(method.upper(), target, body, sent)
            response = TestResponse(method.upper(), self.base_url + target, status, reason, reply_headers, reply)
            self._keep_cookies(response)
            if self._raised:
                raised = self._raised[0]
                self._raised.clear()
                if self.raise_server_exceptions:
                    raise raised
            return response

    def get(self, url: str, **options: Any) -> TestResponse:
        return self.request("GET", url, **options)

    def head(self, url: str, **options: Any) -> TestResponse:
        return self.request("HEAD", url, **options)

    def options(self, url: str, **options: Any) -> TestResponse:
        return self.request("OPTIONS", url, **options)

    def post(self, url: str, **options: Any) -> TestResponse:
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Any) -> TestResponse:
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Any) -> TestResponse:
        return self.request("PATCH", url, **options)

    def delete(self, url: str, **options: Any) -> TestResponse:
        return self.request("DELETE", url, **options)

    # Underneath -----------------------------------------------------------

    def _target(self, url: str, params: Any) -> str:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc != self._host:
            raise ValueError(f"TestClient sends requests to its app only ({self.base_url}), got {url!r}")
        path = parts.path or "/"
        if parts.scheme and self._prefix and path.startswith(self._prefix):
            path = path[len(self._prefix) :] or "/"
        query = parts.query
        if params:
            extra = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params), doseq=True)
            query = f"{query}&{extra}" if query else extra
        return path + (f"?{query}" if query else "")

    def _send(self, method: str, target: str, body: Optional[bytes], headers: Dict[str, str]) -> Tuple[int, str, List[Tuple[str, str]], bytes]:
        # A kept-alive connection the server closed meanwhile (it closes
        # idle ones) fails before the request is read: send it again, once.
        for attempt in (1, 2):
            connection = self._connection
            if connection is None:
                connection = self._connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=self.timeout)
            try:
                connection.request(method, target, body=body, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                self._connection = None
                if attempt == 2:
                    raise
                continue
            if reply.will_close:
                connection.close()
                self._connection = None
            return reply.status, reply.reason, reply.getheaders(), data
        raise AssertionError("unreachable")

    def _keep_cookies(self, response: TestResponse) -> None:
        for header in response.headers.getlist("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


def _body(json: Any, data: Any, files: Any, content: Any) -> Tuple[Optional[bytes], Optional[str]]:
    """The request body and its content type."""
    given = [name for name, value in (("json", json is not _MISSING), ("content", content is not None), ("files", files is not None)) if value]
    if len(given) > 1 or (data is not None and (json is not _MISSING or content is not None)):
        raise TypeError("give one body: json=, content=, data= (with files= for a multipart form)")
    if json is not _MISSING:
        return _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), "application/json"
    if content is not None:
        return (content.encode("utf-8") if isinstance(content, str) else bytes(content)), None
    if files is not None:
        return _multipart(data or {}, files)
    if data is None:
        return None, None
    if isinstance(data, (str, bytes)):
        return (data.encode("utf-8") if isinstance(data, str) else data), None
    return urlencode(list(data.items()), doseq=True).encode("utf-8"), "application/x-www-form-urlencoded"


def _multipart(fields: Mapping[str, Any], files: Union[Mapping[str, FileValue], Sequence[Tuple[str, FileValue]]]) -> Tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: List[bytes] = []
    for name, value in fields.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode("utf-8"))
            parts.append(str(item).encode("utf-8") + b"\r\n")
    # A mapping, or (name, file) pairs for several files of one name.
    for name, value in files.items() if isinstance(files, Mapping) else files:
        filename, payload, content_type = name, value, "application/octet-stream"
        if isinstance(value, tuple):
            filename, payload = value[0], value[1]
            if len(value) > 2 and value[2]:
                content_type = value[2]
        if hasattr(payload, "read"):
            payload = payload.read()
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode("utf-8")
        )
        parts.append(bytes(payload) + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
