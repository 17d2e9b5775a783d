"""Small containers of the public API."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["State"]


class State:
    """Attributes an app keeps for its handlers (``app.state.db = ...``,
    read as ``request.app.state.db``); a missing one raises
    ``AttributeError`` naming it."""

    def __init__(self, values: Dict[str, Any] = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the app state has no {name!r}") from None

    def __delattr__(self, name: str) -> None:
        del self._values[name]

    def __repr__(self) -> str:
        return f"State({self._values!r})"
