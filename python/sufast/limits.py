"""The server's named limits, as ``App`` keywords: checked where the App is
made, handed to the library by name when it starts."""

from __future__ import annotations

from typing import Dict, Optional, Union

__all__ = ["DEFAULTS", "server_limits"]

Number = Union[int, float]

#: Every limit's default, as the keywords take them (seconds, bytes, a count).
DEFAULTS: Dict[str, Optional[Number]] = {
    "header_timeout": 10.0,
    "keepalive_timeout": 5.0,
    "body_timeout": 30.0,
    "request_timeout": 60.0,
    "max_header_size": 64 * 1024,
    "max_connections": None,
    "max_form_parts": 1000,
    "max_part_size": 1024 * 1024,
    "upload_spool_size": 1024 * 1024,
    "stream_buffer": 256 * 1024,
    "send_timeout": 30.0,
    "ws_max_size": 1024 * 1024,
}

# keyword: (library option, smallest, largest); timeouts in seconds.
_SECONDS = {
    "header_timeout": ("header_timeout_ms", 0.001, 3600),
    "keepalive_timeout": ("keepalive_timeout_ms", 0.001, 3600),
    "body_timeout": ("body_timeout_ms", 0.001, 3600),
    "request_timeout": ("request_timeout_ms", 0.001, 86400),
    "send_timeout": ("send_timeout_ms", 0.001, 3600),
}
_COUNTS = {
    "max_header_size": ("max_header_size", 1024, 1 << 24),
    "max_connections": ("max_connections", 1, 1 << 24),
    "max_form_parts": ("max_form_parts", 1, 1 << 20),
    "max_part_size": ("max_part_size", 1, (1 << 32) - 1),
    "upload_spool_size": ("upload_spool_size", 0, (1 << 32) - 1),
    "stream_buffer": ("stream_buffer", 1, 1 << 30),
    "ws_max_size": ("ws_max_size", 1, 1 << 30),
}


def server_limits(**given: Optional[Number]) -> Dict[str, int]:
    """The library options for the limit keywords ``given`` (the others at
    their defaults); raises ``ValueError`` naming a value out of range."""
    options: Dict[str, int] = {}
    for keyword, default in DEFAULTS.items():
        value = given.pop(keyword, default)
        if keyword in _SECONDS:
            option, low, high = _SECONDS[keyword]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{keyword} must be a number of seconds from {low} to {high}, got {value!r}")
            options[option] = max(1, round(value * 1000))
        else:
            option, low, high = _COUNTS[keyword]
            if value is None and keyword == "max_connections":
                options[option] = 0  # the library works it out from the open-files limit
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{keyword} must be an integer from {low} to {high}, got {value!r}")
            options[option] = value
    if given:
        raise TypeError(f"unknown limit {', '.join(given)}")
    return options
