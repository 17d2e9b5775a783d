"""Exceptions and warnings sufast raises."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

HeadersLike = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


class SufastError(RuntimeError):
    """A failure reported by the native library, with its message.

    ``code`` is the library's stable error code (see ``SufastErrorCode`` in
    ``include/sufast.h``), or ``None`` when the failure happened before the
    library could be asked (for example, the library file is missing).
    """

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RouteError(TypeError, ValueError):
    """A route could not be registered: the message names the route and
    its handler and says what is wrong. It is a ``TypeError`` and a
    ``ValueError`` both, so code that caught either keeps working."""

    def __init__(self, message: str, route: str = "", handler: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: ``"METHOD /path"``.
        self.route = route
        #: The handler's qualified name.
        self.handler = handler


class RequestValidationError(Exception):
    """One or more parameters were missing or could not be converted; the
    request gets 422 with ``errors`` as its ``detail`` (FastAPI's shape),
    unless an ``exception_handler`` for this class (or for 422) answers."""

    def __init__(self, errors: List[Dict[str, Any]]) -> None:
        super().__init__(errors)
        self._errors = errors

    def errors(self) -> List[Dict[str, Any]]:
        """What is wrong, one dict per parameter (``loc``, ``msg``, ``input``)."""
        return self._errors


class RouteWarning(UserWarning):
    """A route was registered, but not as its handler intended (it raised)."""


class HTTPException(Exception):
    """Raise in a handler to answer with ``status_code`` and a JSON body
    ``{"detail": detail}`` (the status phrase when no detail is given).

    >>> raise HTTPException(404, "no such user")  # doctest: +SKIP
    """

    def __init__(self, status_code: int, detail: Any = None, headers: Optional[HeadersLike] = None) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = ""
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.headers = headers

    def __repr__(self) -> str:
        return f"HTTPException(status_code={self.status_code!r}, detail={self.detail!r})"
