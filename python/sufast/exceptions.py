"""Exceptions and warnings sufast raises."""

from __future__ import annotations

from typing import Optional


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


class RouteWarning(UserWarning):
    """A route was registered, but not as its handler intended (it raised)."""
