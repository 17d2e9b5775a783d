"""Small containers of the public API."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ["Headers", "MultiDict", "MutableHeaders", "State"]


class State:
    """Attributes an app keeps for its handlers (``app.state.db = ...``,
    read as ``request.app.state.db``), or a request for its handler
    (``request.state``); a missing one raises ``AttributeError`` naming
    it."""

    def __init__(self, values: Optional[Dict[str, Any]] = None, *, owner: str = "app") -> None:
        object.__setattr__(self, "_values", dict(values or {}))
        object.__setattr__(self, "_owner", owner)

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_values", "_owner"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the {self._owner} state has no {name!r}") from None

    def __delattr__(self, name: str) -> None:
        del self._values[name]

    def __repr__(self) -> str:
        return f"State({self._values!r})"


class MultiDict:
    """Values by key, read-only, where a key may repeat: ``d[key]`` is the
    last value (as a single-valued parameter sees it), ``getlist`` gives
    them all in order."""

    __slots__ = ("_items", "_last")

    def __init__(self, items: Optional[Sequence[Tuple[str, Any]]] = None) -> None:
        self._items: List[Tuple[str, Any]] = list(items or ())
        self._last: Dict[str, Any] = dict(self._items)

    def __getitem__(self, key: str) -> Any:
        return self._last[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._last.get(key, default)

    def getlist(self, key: str) -> List[Any]:
        """Every value of ``key``, in order."""
        return [value for name, value in self._items if name == key]

    def multi_items(self) -> List[Tuple[str, Any]]:
        """Every ``(key, value)`` pair, in order."""
        return list(self._items)

    def items(self) -> List[Tuple[str, Any]]:
        return list(self._last.items())

    def keys(self) -> List[str]:
        return list(self._last)

    def values(self) -> List[Any]:
        return list(self._last.values())

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)


class Headers:
    """Request headers: case-insensitive, repeats kept in the order received.

    ``headers["accept"]`` is the first value; ``getlist`` gives them all.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Tuple[str, str]]) -> None:
        self._items = [(name.lower(), value) for name, value in items]

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for key, value in self._items:
            if key == wanted:
                return value
        raise KeyError(name)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        try:
            return self[name]
        except KeyError:
            return default

    def getlist(self, name: str) -> List[str]:
        """Every value of ``name``, in order."""
        wanted = name.lower()
        return [value for key, value in self._items if key == wanted]

    def items(self) -> List[Tuple[str, str]]:
        """Every ``(name, value)`` pair, names in lower case, repeats kept."""
        return list(self._items)

    def keys(self) -> List[str]:
        seen: Dict[str, None] = {}
        for key, _ in self._items:
            seen.setdefault(key)
        return list(seen)

    def values(self) -> List[str]:
        return [value for _, value in self._items]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(key == name.lower() for key, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class MutableHeaders(Headers):
    """A response's headers: ``Headers`` that can be changed.

    ``headers["x-time"] = "1"`` sets one value (in the place of the first
    one there was, the others removed); ``append`` adds another, as for
    ``Set-Cookie``; ``del headers["x-time"]`` removes every one.
    """

    __slots__ = ()

    @classmethod
    def _lowered(cls, items: List[Tuple[str, str]]) -> "MutableHeaders":
        """Headers from pairs whose names are already lower case (a copy)."""
        headers = cls.__new__(cls)
        headers._items = list(items)
        return headers

    def __setitem__(self, name: str, value: str) -> None:
        if type(name) is not str or type(value) is not str:
            _check_pair(name, value)
        wanted = name.lower()
        items = self._items
        first = -1
        index = 0
        for key, _ in items:
            if key == wanted:
                first = index
                break
            index += 1
        if first < 0:
            items.append((wanted, value))
            return
        items[first] = (wanted, value)
        for index in range(len(items) - 1, first, -1):
            if items[index][0] == wanted:
                del items[index]

    def __delitem__(self, name: str) -> None:
        wanted = name.lower()
        kept = [(key, value) for key, value in self._items if key != wanted]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items[:] = kept

    def append(self, name: str, value: str) -> None:
        """Adds a ``name: value`` header, keeping those of the same name."""
        _check_pair(name, value)
        self._items.append((name.lower(), value))

    def setdefault(self, name: str, value: str) -> str:
        """The first value of ``name``, set to ``value`` if there is none."""
        try:
            return self[name]
        except KeyError:
            self.append(name, value)
            return value

    def update(self, other: Any) -> None:
        """Sets every header of ``other`` (a mapping or ``(name, value)`` pairs)."""
        for name, value in other.items() if hasattr(other, "items") else other:
            self[name] = value

    def pop(self, name: str, *default: Any) -> Any:
        """Removes every ``name`` header and gives the first value (or
        ``default``, or raises ``KeyError``)."""
        try:
            value = self[name]
        except KeyError:
            if default:
                return default[0]
            raise
        del self[name]
        return value

    def __repr__(self) -> str:
        return f"MutableHeaders({self._items!r})"


def _check_pair(name: Any, value: Any) -> None:
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
