"""Noticing that ``.py`` files changed, for ``sufast run --reload``.

``watcher(dirs)`` returns a ``watchfiles`` based watcher when that package
is installed (it is optional and imported only here), and otherwise one
that polls modification times with the standard library. Both answer the
same question: which files changed since the last call.

Directories that hold no source of the app are skipped: hidden ones
(``.git``, ``.venv``), ``__pycache__``, ``node_modules`` and
``site-packages``; the polling watcher also skips any virtual environment
(a directory with a ``pyvenv.cfg``), and watchfiles' own filter skips the
usual ones by name.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Dict, Iterator, Sequence, Set, Tuple

__all__ = ["POLL_INTERVAL", "PollingWatcher", "Watcher", "watcher"]

#: How often the polling watcher looks at modification times, in seconds.
POLL_INTERVAL = 0.3

_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages"}


class Watcher:
    """Reports changed ``.py`` files under some directories."""

    #: How it watches, for the supervisor's first line.
    how = ""

    def changes(self, timeout: float) -> Set[Path]:
        """Waits up to ``timeout`` seconds for changes; returns the files
        that were added, modified or removed (empty when none)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stops watching."""


def watcher(dirs: Sequence[Path]) -> Watcher:
    """The best watcher this machine has for ``dirs``."""
    try:
        import watchfiles  # noqa: F401  (optional)
    except ImportError:
        return PollingWatcher(dirs)
    return _WatchfilesWatcher(dirs)


def _wanted_dir(entry: os.DirEntry) -> bool:
    name = entry.name
    if name.startswith(".") or name in _SKIPPED_DIRS:
        return False
    return not os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))


def _source_files(root: Path) -> Iterator[os.DirEntry]:
    pending = [str(root)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if _wanted_dir(entry):
                                pending.append(entry.path)
                        elif entry.name.endswith(".py") and entry.is_file():
                            yield entry
                    except OSError:  # removed meanwhile
                        continue
        except OSError:  # a directory removed meanwhile, or unreadable
            continue


class PollingWatcher(Watcher):
    """Compares each ``.py`` file's modification time and size with the
    previous look, every ``POLL_INTERVAL`` seconds."""

    how = f"polling every {POLL_INTERVAL:g} s"

    def __init__(self, dirs: Sequence[Path], interval: float = POLL_INTERVAL) -> None:
        self._dirs = list(dirs)
        self._interval = interval
        self._closed = threading.Event()
        self._seen = self._snapshot()

    def _snapshot(self) -> Dict[str, Tuple[int, int]]:
        seen: Dict[str, Tuple[int, int]] = {}
        for root in self._dirs:
            for entry in _source_files(root):
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                seen[entry.path] = (stat.st_mtime_ns, stat.st_size)
        return seen

    def changes(self, timeout: float) -> Set[Path]:
        # One look per call, after at most one interval: the supervisor
        # calls again at once when nothing changed.
        if self._closed.wait(min(timeout, self._interval)):
            return set()
        now = self._snapshot()
        before = self._seen
        self._seen = now
        changed = {path for path, stamp in now.items() if before.get(path) != stamp}
        changed.update(path for path in before if path not in now)
        return {Path(path) for path in changed}

    def close(self) -> None:
        self._closed.set()


class _WatchfilesWatcher(Watcher):
    """``watchfiles.watch`` on a thread of its own, handing each batch of
    changes over through a queue."""

    how = "watchfiles"

    def __init__(self, dirs: Sequence[Path]) -> None:
        import watchfiles

        self._stop = threading.Event()
        self._batches: "queue.Queue[Set[Path]]" = queue.Queue()
        self._iterator = watchfiles.watch(
            *dirs,
            # Its default filter skips the same directories by name.
            watch_filter=watchfiles.PythonFilter(),
            stop_event=self._stop,
            yield_on_timeout=False,
            raise_interrupt=False,
        )
        self._thread = threading.Thread(target=self._pump, name="sufast-watchfiles", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for batch in self._iterator:
            self._batches.put({Path(path) for _change, path in batch})

    def changes(self, timeout: float) -> Set[Path]:
        try:
            changed = self._batches.get(timeout=timeout)
        except queue.Empty:
            return set()
        while True:
            try:
                changed |= self._batches.get_nowait()
            except queue.Empty:
                return changed

    def close(self) -> None:
        self._stop.set()
