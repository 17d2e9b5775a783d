"""What the server and the ``sufast`` logger write, and at which level: the
``start``/``run`` keywords ``access_log``, ``access_log_format`` and
``log_level`` turned into the library's options, and the logger set up to
write as the server does (``sufast: <level>: <message>`` on stderr)."""

from __future__ import annotations

import logging
import sys
from typing import Dict, Optional

from . import _native

__all__ = ["configure_logger", "log_options"]


def log_options(access_log: Optional[bool], access_log_format: str, log_level: str, production: bool) -> Dict[str, int]:
    """The library options for these ``start`` keywords, checked."""
    if access_log is not None and not isinstance(access_log, bool):
        raise TypeError(f"access_log must be True, False or None, got {access_log!r}")
    if access_log_format not in ("common", "json"):
        raise ValueError(f"access_log_format must be 'common' or 'json', got {access_log_format!r}")
    if log_level not in _native.LOG_LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(_native.LOG_LEVELS)}, got {log_level!r}")
    if access_log is None:
        access_log = not production
    chosen = access_log_format if access_log else "off"
    return {"access_log": _native.ACCESS_LOGS[chosen], "log_level": _native.LOG_LEVELS[log_level]}


# Python's levels for the library's; trace has none of its own.
_PYTHON_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.level = record.levelname.lower()
        return super().format(record)


def configure_logger(log_level: str) -> None:
    """The ``sufast`` logger writes as the server does, ``sufast: <level>:
    <message>`` on stderr, at the same level, unless the application
    configured logging itself (a handler here or on the root logger)."""
    logger = logging.getLogger("sufast")
    logger.setLevel(_PYTHON_LEVELS[log_level])
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LowerLevelFormatter("sufast: %(level)s: %(message)s"))
        logger.addHandler(handler)
