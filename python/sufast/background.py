"""``BackgroundTasks``: work a handler leaves for after its response."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable, List, Tuple

from .middleware import run_here, unmark

__all__ = ["BackgroundTasks"]

logger = logging.getLogger("sufast")


class BackgroundTasks:
    """Take a parameter annotated ``BackgroundTasks`` and add tasks to it;
    they run once the response was handed to the server, in the order
    added: sync ones on the handler's thread (for an ``async def``
    handler, on a thread of the loop's executor), async ones on the app's
    loop. An exception is logged and never reaches the client, and the
    next task still runs."""

    def __init__(self) -> None:
        self.tasks: List[Tuple[Callable[..., Any], tuple, dict]] = []

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Runs ``func(*args, **kwargs)`` after the response."""
        if not callable(func):
            raise TypeError(f"add_task takes a callable, got {func!r}")
        self.tasks.append((func, args, kwargs))

    def run(self) -> None:
        """Runs every task here (a handler thread)."""
        for func, args, kwargs in self.tasks:
            try:
                unmark()  # what an async task before it marked
                result = func(*args, **kwargs)
                if inspect.isawaitable(result):
                    run_here(result)
            except Exception:
                logger.exception("background task %s raised", _name(func))

    async def run_async(self) -> None:
        """Runs every task from the app's loop."""
        loop = asyncio.get_running_loop()
        for func, args, kwargs in self.tasks:
            try:
                if inspect.iscoroutinefunction(func):
                    await func(*args, **kwargs)
                else:
                    result = await loop.run_in_executor(None, lambda: func(*args, **kwargs))
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                logger.exception("background task %s raised", _name(func))


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)
