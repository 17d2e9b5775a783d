"""Response classes: what a handler may return to set the status, the
headers and the exact bytes of the body."""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

__all__ = [
    "Response",
    "JSONResponse",
    "HTMLResponse",
    "PlainTextResponse",
    "HeadersInput",
    "dump_json",
    "normalize_headers",
]

HeadersInput = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


def dump_json(content: Any) -> bytes:
    """Compact UTF-8 JSON. Integers of any size and floats keep their exact
    value; NaN and infinities are refused since JSON has no such numbers.

    Raises ``TypeError`` when ``content`` cannot be represented as JSON.
    """
    try:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise TypeError(f"{type(content).__name__} value cannot be serialized to JSON: {exc}") from exc


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


class Response:
    """A response given in full: status, headers and body bytes.

    ``content`` may be ``bytes``, ``str`` (encoded as UTF-8) or ``None``
    (empty). ``media_type`` sets ``Content-Type``; ``text/*`` types get
    ``; charset=utf-8``. A ``Content-Type`` in ``headers`` wins over it.
    """

    media_type: Optional[str] = None
    charset = "utf-8"

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
        self.headers = normalize_headers(headers)

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
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        media_type = self.media_type
        if media_type and media_type.startswith("text/") and "charset=" not in media_type:
            return f"{media_type}; charset={self.charset}"
        return media_type

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
