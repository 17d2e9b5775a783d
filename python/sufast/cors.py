"""``CORS``: the cross-origin policy an ``App`` hands to the server, which
applies it to every response and answers preflight requests itself."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

__all__ = ["CORS"]


class CORS:
    """A CORS policy, with the meaning (and defaults) of Starlette's
    ``CORSMiddleware``.

    >>> CORS(allow_origins=["https://example.com"], allow_methods=["GET", "POST"])
    CORS(allow_origins=['https://example.com'], allow_methods=['GET', 'POST'], ...)

    ``["*"]`` allows every origin, method or request header. Origins are
    ``scheme://host[:port]``, without a path. When every origin is allowed
    without credentials, every response carries
    ``Access-Control-Allow-Origin: *``; otherwise a response names the
    request's origin when it is allowed, and carries ``Vary: Origin``.
    ``max_age`` is how many seconds a browser may keep a preflight's answer.
    The values are checked when the ``App`` is made.
    """

    def __init__(
        self,
        *,
        allow_origins: Sequence[str] = (),
        allow_methods: Sequence[str] = ("GET",),
        allow_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        expose_headers: Sequence[str] = (),
        max_age: int = 600,
    ) -> None:
        self.allow_origins = _strings("allow_origins", allow_origins)
        self.allow_methods = _strings("allow_methods", allow_methods)
        self.allow_headers = _strings("allow_headers", allow_headers)
        self.expose_headers = _strings("expose_headers", expose_headers)
        if not isinstance(allow_credentials, bool):
            raise TypeError(f"CORS allow_credentials must be True or False, got {allow_credentials!r}")
        self.allow_credentials = allow_credentials
        if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= 2**32 - 1:
            raise ValueError(f"CORS max_age must be an integer number of seconds from 0 to {2**32 - 1}, got {max_age!r}")
        self.max_age = max_age

    def table_entry(self) -> Dict[str, Any]:
        """The policy in the route-table format (the ``cors`` field of the
        ``"@app"`` section; see README)."""
        return {
            "allow_origins": self.allow_origins,
            "allow_methods": self.allow_methods,
            "allow_headers": self.allow_headers,
            "allow_credentials": self.allow_credentials,
            "expose_headers": self.expose_headers,
            "max_age": self.max_age,
        }

    def __repr__(self) -> str:
        return f"CORS(allow_origins={self.allow_origins!r}, allow_methods={self.allow_methods!r}, ...)"


def _strings(what: str, values: Sequence[str]) -> List[str]:
    # A bare string is a sequence too: "https://a.com" would become one
    # origin per character.
    if isinstance(values, (str, bytes)):
        raise TypeError(f"CORS {what} must be a list of strings, not a single string: give [{values!r}]")
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"CORS {what} must be a list of strings, got {values!r}") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"CORS {what} must be a list of strings, got the item {item!r}")
    return items
