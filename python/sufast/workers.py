"""``App.run(workers=N)``: serving from N processes that share one socket.

The parent process binds one listening socket and forks the workers; each
worker hands the inherited socket to the native server, which accepts on a
copy of its own. All workers take connections from the same kernel queue,
so port 0 works, and while a worker is being replaced its share of clients
waits in the backlog instead of being refused.

The parent only supervises: it never starts the native server, so no tokio
runtime, handler thread or event loop exists in it when it forks (those
start in each worker, in ``App.start``). It forwards Ctrl-C and SIGTERM to
the workers, waits for their graceful stops, and replaces a worker that
exits while no stop was asked for, with a growing delay and a limit so that
workers which fail at start are not forked over and over.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from . import _native
from .exceptions import SufastError
from .sockets import listen

if TYPE_CHECKING:
    from .applications import App

__all__ = ["serve_workers"]

logger = logging.getLogger("sufast")

# A worker that exits sooner than this after its fork failed to start.
_QUICK_EXIT = 1.0
# That many quick exits in a row and the parent gives up.
_MAX_QUICK_EXITS = 5
# The wait before replacing a worker after the first quick exit in a row;
# it doubles with each further one.
_FIRST_BACKOFF = 0.1
# How long workers get to stop before they are killed: App.stop's 5 s for
# requests in flight, and time to exit.
_STOP_GRACE = 10.0
# How often a worker checks that its parent still runs.
_PARENT_CHECK = 1.0


def serve_workers(
    app: "App",
    workers: int,
    *,
    port: int,
    host: Optional[str],
    fd: Optional[int] = None,
    options: Dict[str, Any],
    chatty: bool = True,
) -> None:
    """Serves ``app`` from ``workers`` forked processes until Ctrl-C or
    SIGTERM, then stops them all gracefully and returns (as ``App.run``).

    Raises ``SufastError`` where ``os.fork`` does not exist, outside the
    main thread, while a server already runs in this process, when the
    socket cannot be bound, or when workers keep exiting right after they
    start. ``options`` are the keywords of ``App.start`` each worker
    serves with; ``fd`` is a listening socket to share instead of binding
    one; ``chatty`` prints the banner and the stop.
    """
    if not hasattr(os, "fork"):
        raise SufastError(f"workers={workers} needs os.fork, which {sys.platform} lacks; use workers=1")
    if threading.current_thread() is not threading.main_thread():
        raise SufastError(f"workers={workers} must run in the main thread: it handles the stop signals")
    running = _native.bound_port()
    if running:
        raise SufastError(f"a server is already running in this process on port {running}; stop it before forking workers")
    _warn_if_threaded()
    production = bool(options.get("production"))
    if fd is None:
        listener = listen(host or ("0.0.0.0" if production else "127.0.0.1"), port)
    else:
        listener = socket.socket(fileno=os.dup(fd))
    try:
        banner = app._banner(host, listener.getsockname()[1], production, workers) if chatty else None
        _Supervisor(app, workers, listener, options).run(banner)
    finally:
        listener.close()
    if chatty:
        print("sufast stopped", flush=True)


def _warn_if_threaded() -> None:
    # A fork copies only the calling thread: a lock another thread holds
    # stays locked forever in every worker.
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    try:
        native = len(os.listdir("/proc/self/task")) - 1 - len(others)
    except OSError:  # no /proc: only Python's threads are known
        native = 0
    if others or native > 0:
        found = ", ".join(others + ([f"{native} outside Python"] if native > 0 else []))
        warnings.warn(
            f"forking workers while other threads run ({found}); a lock one of them holds stays locked in the workers",
            RuntimeWarning,
            stacklevel=4,
        )


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Supervisor:
    """The parent's side: forks the workers and keeps ``count`` of them
    running until a stop signal, then stops them."""

    def __init__(self, app: "App", count: int, listener: socket.socket, options: Dict[str, Any]) -> None:
        self._app = app
        self._count = count
        self._listener = listener
        self._options = options
        self._parent = os.getpid()
        self._workers: Dict[int, float] = {}  # pid -> when it was forked
        self._due: List[float] = []  # when to fork the replacements owed
        self._signals: List[int] = []  # stop signals received, in order
        self._quick_exits = 0
        self._failure: Optional[str] = None
        self._deadline: Optional[float] = None  # set once stopping
        self._killed = False
        self._wakeup = (-1, -1)

    def run(self, banner: Optional[str]) -> None:
        """Prints ``banner`` once signals are handled, then supervises until
        every worker has stopped; raises ``SufastError`` if it gave up on
        workers that kept failing."""
        # Signals are only noted by their handlers; the loop below waits
        # on a pipe that each signal, SIGCHLD included, writes a byte to.
        reader, writer = self._wakeup = os.pipe()
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)
        previous_fd = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        previous = {signum: signal.signal(signum, self._on_stop_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _noted)
        try:
            if banner is not None:
                print(banner, flush=True)
            for _ in range(self._count):
                self._spawn()
            self._supervise()
        finally:
            # Only after a bug in this loop: no worker may outlive it.
            for pid in list(self._workers):
                _kill(pid, signal.SIGKILL)
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(reader)
            os.close(writer)
        if self._failure is not None:
            raise SufastError(self._failure)

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)

    # The parent -------------------------------------------------------------

    def _supervise(self) -> None:
        while True:
            self._reap()
            now = time.monotonic()
            if self._signals or self._failure is not None:
                if self._deadline is None:
                    self._deadline = now + _STOP_GRACE
                    self._due.clear()
                    forwarded = self._signals[0] if self._signals else signal.SIGTERM
                    for pid in self._workers:
                        _kill(pid, forwarded)
                if not self._workers:
                    return
                # A second Ctrl-C, or workers past their grace: kill them.
                if not self._killed and (len(self._signals) > 1 or now >= self._deadline):
                    self._killed = True
                    for pid in self._workers:
                        _kill(pid, signal.SIGKILL)
                self._wait(None if self._killed else self._deadline - now)
                continue
            while self._due and self._due[0] <= now:
                self._due.pop(0)
                try:
                    self._spawn()
                except OSError as exc:
                    self._quick_exit(f"a worker could not be forked ({exc})")
            self._wait(self._due[0] - now if self._due else None)

    def _wait(self, timeout: Optional[float]) -> None:
        reader = self._wakeup[0]
        select.select([reader], [], [], None if timeout is None else max(0.0, timeout))
        try:
            while os.read(reader, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        for pid, started in list(self._workers.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else
                done, status = pid, 0
            if done == 0:
                continue
            del self._workers[pid]
            how = _describe(status)
            if self._signals or self._failure is not None:
                if status != 0 and not self._killed:
                    logger.warning("worker %d %s while stopping", pid, how)
                continue
            lived = time.monotonic() - started
            if lived >= _QUICK_EXIT:
                self._quick_exits = 0
                logger.warning("worker %d %s after %.1f s; starting another", pid, how, lived)
                self._replace_at(time.monotonic())
            else:
                self._quick_exit(f"worker {pid} {how} after {lived:.2f} s")

    def _quick_exit(self, what: str) -> None:
        self._quick_exits += 1
        if self._quick_exits >= _MAX_QUICK_EXITS:
            self._failure = (
                f"workers keep failing at start ({self._quick_exits} in a row within {_QUICK_EXIT:g} s; "
                f"last: {what}); giving up"
            )
            return
        delay = _FIRST_BACKOFF * 2 ** (self._quick_exits - 1)
        logger.warning("%s; starting another in %.1f s", what, delay)
        self._replace_at(time.monotonic() + delay)

    def _replace_at(self, when: float) -> None:
        self._due.append(when)
        self._due.sort()

    def _spawn(self) -> None:
        # Whatever is buffered would be written again by the worker.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._become_worker()
        self._workers[pid] = time.monotonic()

    # The worker -------------------------------------------------------------

    def _become_worker(self) -> None:
        """Runs in the forked child and never returns to the caller."""
        code = 1
        try:
            code = self._serve()
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _serve(self) -> int:
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda _signum, _frame: stop.set())
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.close(self._wakeup[0])
        os.close(self._wakeup[1])
        self._workers.clear()
        # A stop signal that came before the handlers above was noted by the
        # parent's handler, in this process's copy of the list.
        if self._signals:
            return 0
        app = self._app
        try:
            app.start(fd=self._listener.fileno(), _log_routes=False, **self._options)
        finally:
            # The native server accepts on a copy; the parent keeps its own.
            self._listener.close()
        try:
            while not stop.wait(_PARENT_CHECK) and app.running:
                if os.getppid() != self._parent:
                    logger.error("worker %d lost its parent process; stopping", os.getpid())
                    break
        finally:
            app.stop()
        return 0


def _noted(_signum: int, _frame: Any) -> None:
    """SIGCHLD's handler: the wakeup byte it causes is all that matters."""


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:  # exited already; reaped on the next turn
        pass
