"""``sufast run --reload``: a supervisor process that restarts the app when
its source changes.

The supervisor never imports the app. It binds the listening socket once
and serves it through a child process (``python -m sufast run ... --fd N``)
that it replaces whenever a watched ``.py`` file changes. The socket stays
open across restarts, so clients that connect meanwhile wait in its backlog
and are answered by the next child instead of being refused, and port 0
keeps the one port it picked.

A child that fails (a syntax error, an import error) prints its traceback
and exits; the supervisor says so and waits for the next change. Ctrl-C or
SIGTERM stops the child gracefully (SIGTERM, then SIGKILL after a grace
period; a second Ctrl-C kills at once) and the supervisor exits with 0.

Each child gets the read end of a pipe whose write end only the supervisor
holds: when the supervisor dies, even by SIGKILL, the child reads end of
file and stops itself (see ``watch_supervisor``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from .watching import Watcher, watcher

__all__ = ["ReloadSupervisor", "watch_supervisor"]

# How long a child gets to stop before it is killed: App.stop's 5 s for
# requests in flight, and time to exit.
_STOP_GRACE = 10.0
# How long to wait for changes before looking at the child and the signals.
_TICK = 0.3


def watch_supervisor(fd: int) -> None:
    """In a child: stops this process (as SIGTERM would, gracefully) once
    the supervisor holding the other end of pipe ``fd`` is gone."""

    def wait_for_end_of_file() -> None:
        try:
            while os.read(fd, 512):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_end_of_file, name="sufast-supervisor-watch", daemon=True).start()


class ReloadSupervisor:
    """Serves ``listener`` through a child running ``command`` (which gets
    ``--fd N --reload-pipe M`` appended) and restarts the child when a
    ``.py`` file under ``dirs`` changes."""

    def __init__(self, command: Sequence[str], listener: socket.socket, dirs: Sequence[Path], *, quiet: bool = False) -> None:
        """``quiet`` leaves out what it watches and each restart, and says
        only that the app exited (as the log levels above info do)."""
        self._command = list(command)
        self._quiet = quiet
        self._listener = listener
        self._dirs = list(dirs)
        self._child: Optional[subprocess.Popen] = None
        self._reported_exit = False
        self._signals: List[int] = []
        self._pipe = (-1, -1)

    def run(self) -> int:
        """Supervises until Ctrl-C or SIGTERM; returns the exit code (0)."""
        previous: Dict[int, Any] = {
            signum: signal.signal(signum, self._on_stop_signal) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        watching: Optional[Watcher] = None
        self._pipe = os.pipe()
        try:
            watching = watcher(self._dirs)
            for directory in self._dirs:
                self._info(f"watching for changes in {directory} ({watching.how})")
            self._info(f"reloader (pid {os.getpid()}) listening on {self._address()}")
            self._start_child()
            while not self._signals:
                changed = watching.changes(_TICK)
                if self._signals:
                    break
                if changed:
                    self._info(f"change in {_describe(changed)}; restarting")
                    self._stop_child()
                    if self._signals:
                        break
                    self._start_child()
                self._note_exit()
        finally:
            if watching is not None:
                watching.close()
            stopped_child = self._stop_child()
            for fd in self._pipe:
                os.close(fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if not stopped_child and not self._quiet:
            # A running child says it as it stops; otherwise no one has.
            print("sufast stopped", flush=True)
        return 0

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)
        child = self._child
        if child is not None and len(self._signals) > 1 and child.poll() is None:
            child.kill()  # a second Ctrl-C: stop waiting

    def _info(self, line: str) -> None:
        if not self._quiet:
            _say(line)

    def _address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def _start_child(self) -> None:
        command = self._command + ["--fd", str(self._listener.fileno()), "--reload-pipe", str(self._pipe[0])]
        env = dict(os.environ)
        # Bytecode caches record source times in whole seconds: two edits
        # within one second could load the first one's stale cache.
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        sys.stdout.flush()
        sys.stderr.flush()
        self._child = subprocess.Popen(command, pass_fds=(self._listener.fileno(), self._pipe[0]), env=env)
        self._reported_exit = False

    def _note_exit(self) -> None:
        child = self._child
        if child is None or self._reported_exit or child.poll() is None:
            return
        self._reported_exit = True
        code = child.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        _say(f"the app {how}; waiting for changes to restart it")

    def _stop_child(self) -> bool:
        """Stops the child gracefully; returns whether it was running and
        stopped cleanly (then it printed that it stopped)."""
        child = self._child
        if child is None:
            return False
        self._child = None
        if child.poll() is not None:
            # A Ctrl-C in a terminal reaches the child too, and it may
            # have stopped (and said so) already.
            return child.returncode == 0 and not self._reported_exit
        # SIGINT from a terminal reached the child already; SIGTERM is
        # what it gets otherwise.
        child.terminate()
        deadline = time.monotonic() + _STOP_GRACE
        while True:
            try:
                return child.wait(timeout=min(_TICK, max(0.0, deadline - time.monotonic()))) == 0
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    _say(f"the app (pid {child.pid}) did not stop within {_STOP_GRACE:g} s; killing it")
                    child.kill()
                    child.wait()
                    return False


def _describe(changed: Set[Path]) -> str:
    first = min(changed)
    try:
        shown = str(first.relative_to(Path.cwd()))
    except ValueError:
        shown = str(first)
    more = len(changed) - 1
    return shown if more == 0 else f"{shown} and {more} more"


def _say(line: str) -> None:
    print(f"sufast: {line}", flush=True)

