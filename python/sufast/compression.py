"""``Compression``: the response compression an ``App`` hands to the
server, which gzips responses for the clients that take it, as
Starlette's ``GZipMiddleware`` does, with no Python per request."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["Compression"]


class Compression:
    """Gzip compression of responses, with the meaning of Starlette's
    ``GZipMiddleware(minimum_size=500, compresslevel=...)``.

    >>> Compression(minimum_size=1000, level=6)
    Compression(minimum_size=1000, level=6)

    A response is compressed when the request's ``Accept-Encoding`` takes
    gzip, its body has at least ``minimum_size`` bytes, its type compresses
    (text, JSON, XML, JavaScript, SVG, ...; not images, audio, video or
    archives) and it has no ``Content-Encoding`` of its own. ``level`` runs
    from 1 (fastest) to 9 (smallest). Static routes are compressed once,
    when the app starts; cached ones once per render; per-request ones as
    they are answered. The values are checked here.
    """

    def __init__(self, *, minimum_size: int = 500, level: int = 6) -> None:
        if isinstance(minimum_size, bool) or not isinstance(minimum_size, int) or not 0 <= minimum_size <= 2**32 - 1:
            raise ValueError(f"Compression minimum_size must be an integer number of bytes from 0 to {2**32 - 1}, got {minimum_size!r}")
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9:
            raise ValueError(f"Compression level must be an integer from 1 (fastest) to 9 (smallest), got {level!r}")
        self.minimum_size = minimum_size
        self.level = level

    def table_entry(self) -> Dict[str, Any]:
        """The settings in the route-table format (the ``compression``
        field of the ``"@app"`` section; see README)."""
        return {"minimum_size": self.minimum_size, "level": self.level}

    def __repr__(self) -> str:
        return f"Compression(minimum_size={self.minimum_size!r}, level={self.level!r})"
