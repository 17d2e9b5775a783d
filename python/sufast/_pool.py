"""The handler threads: they take requests from the native queue (a
blocking call that releases the GIL), run sync handlers themselves and
hand ``async def`` handlers to one event loop that the app owns. Tokio's
threads never run Python.

A watchdog keeps stuck sync handlers from taking the service down: while
every thread is inside a request and at least half of them have been
inside one for over a second, it starts another thread every tenth of a
second, up to ``max_threads``, and logs the routes that hold them; when
no more may start, the server answers requests to handlers with 503 at
once until a thread is free again."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from . import _native, _streams, handlers
from .handlers import INTERNAL_ERROR, Endpoint
from .requests import Request, decode_records

__all__ = ["HandlerPool"]

logger = logging.getLogger("sufast")

# How long a handler thread waits in the native queue before it looks at
# its stop flag again; a stop wakes it at once anyway.
_TAKE_TIMEOUT_MS = 2000
# How often the watchdog looks at the threads, and how long a thread must
# have been inside one request to count as stuck.
_WATCH_EVERY = 0.1
_STUCK_AFTER = 1.0


def _new_loop() -> asyncio.AbstractEventLoop:
    """The app's event loop: uvloop's when it is installed (its loop is
    written in C and hands work between threads for less), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Generation:
    """One start-to-stop run of the pool; threads of an earlier run exit."""

    def __init__(self) -> None:
        self.stopped = False
        self.ended = threading.Event()


class HandlerPool:
    """``threads`` handler threads and one asyncio loop thread, serving the
    endpoints in ``endpoints`` (by handler id) while the server runs."""

    def __init__(self, endpoints: Mapping[int, Endpoint], threads: int, max_threads: Optional[int] = None) -> None:
        self._endpoints = endpoints
        self._count = threads
        self._max_threads = max(threads, max_threads or threads)
        # Per thread: the endpoint it is running (None between requests)
        # and how many requests it finished, for the watchdog to read.
        self._running: List[Optional[Endpoint]] = []
        self._finished: List[int] = []
        self._generation = _Generation()
        self._threads: List[threading.Thread] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[threading.Thread] = None
        self._tasks: Set["asyncio.Task[None]"] = set()

    def start(self) -> None:
        """Starts the loop and the threads; call it after the server started."""
        self.start_loop()
        self.start_threads()

    def start_loop(self) -> None:
        """Starts the event loop's thread (before the server, so that the
        app's start-up code can run on it)."""
        loop = self._loop = _new_loop()
        eager = getattr(asyncio, "eager_task_factory", None)
        if eager is not None:
            # A handler that finishes without waiting costs no loop turn.
            loop.set_task_factory(eager)
        ready = threading.Event()
        self._loop_thread = threading.Thread(
            target=self._run_loop, args=(loop, ready), name="sufast-asyncio", daemon=True
        )
        self._loop_thread.start()
        ready.wait()

    def run_on_loop(self, make: Callable[[], Any]) -> Any:
        """Runs the coroutine ``make()`` gives on the loop, from another
        thread, and returns its result (or raises its exception)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the event loop is not running")

        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    def start_threads(self) -> None:
        """Starts the handler threads; call it after the server started."""
        generation = self._generation = _Generation()
        self._respond = _native.responder()
        self._threads = []
        self._running = []
        self._finished = []
        for _ in range(self._count):
            self._add_thread(generation)
        threading.Thread(target=self._watch, args=(generation,), name="sufast-watchdog", daemon=True).start()

    def _add_thread(self, generation: _Generation) -> None:
        index = len(self._threads)
        self._running.append(None)
        self._finished.append(0)
        thread = threading.Thread(target=self._work, args=(generation, index), name=f"sufast-handler-{index}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float, before_loop_stops: Optional[Callable[[], Any]] = None) -> None:
        """Stops the threads; call it after the server stopped (the native
        queue is then closed, which wakes every waiting thread). A handler
        still running after ``timeout`` seconds is left to finish alone.
        ``before_loop_stops()``, a coroutine (the app's shut-down code), runs
        on the loop once the threads are done."""
        self._generation.stopped = True
        self._generation.ended.set()
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        if before_loop_stops is not None and self._loop is not None:
            try:
                self.run_on_loop(before_loop_stops)
            except Exception:
                logger.exception("the app's shut-down code raised")
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # closed in between
                pass
        if self._loop_thread is not None and self._loop_thread is not current:
            self._loop_thread.join(max(0.1, deadline - time.monotonic()))
        self._loop_thread = None

    # The asyncio loop -------------------------------------------------------

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            # Handlers still waiting at a stop are cancelled; their clients
            # were already answered by the stop.
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()

    def _start_tasks(self, jobs: List[Tuple[Endpoint, Request]]) -> None:
        loop = asyncio.get_running_loop()
        for endpoint, request in jobs:
            task = loop.create_task(self._answer_async(endpoint, request))
            if not task.done():
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer_async(self, endpoint: Endpoint, request: Request) -> None:
        try:
            data = await endpoint.call_async(request)
        except asyncio.CancelledError:
            return  # the server stopped
        if type(data) is bytes:
            self._send(endpoint, request, data)
        elif data is None:  # a WebSocket: answered through it
            pass
        else:  # a stream or a file
            await _streams.send_async(request.id, data, f"{request.method} {request.path}: route {endpoint.name}")
        if request._scope is not None:
            await endpoint.after_response_async(request)

    # The watchdog ------------------------------------------------------------

    def _watch(self, generation: _Generation) -> None:
        since: Dict[int, Tuple[int, float]] = {}  # thread index -> (requests finished, when first seen busy)
        saturated = False
        while not generation.ended.wait(_WATCH_EVERY):
            now = time.monotonic()
            stuck = []
            idle = 0
            for index, endpoint in enumerate(list(self._running)):
                finished = self._finished[index]
                if endpoint is None:
                    since.pop(index, None)
                    idle += 1
                    continue
                seen = since.get(index)
                if seen is None or seen[0] != finished:
                    since[index] = (finished, now)
                elif now - seen[1] >= _STUCK_AFTER:
                    stuck.append((endpoint.name, now - seen[1]))
            count = len(self._threads)
            # New threads take what queued behind the stuck ones, often
            # more of the same: they count once busy, stuck or not.
            if idle or len(stuck) * 2 < count:
                if saturated:
                    saturated = False
                    self._saturate(False)
                    logger.warning("a handler thread is free again; requests to handlers are taken again")
                continue
            longest = max(stuck, key=lambda item: item[1])
            holders = ", ".join(sorted({name for name, _ in stuck}))
            if count < self._max_threads and not generation.stopped:
                logger.warning(
                    "all %d handler threads are busy, %d for over %.0f s (%s; %s the longest, %.1f s); starting another, up to max_threads=%d",
                    count, len(stuck), _STUCK_AFTER, holders, longest[0], longest[1], self._max_threads,
                )
                self._add_thread(generation)
            elif not saturated:
                saturated = True
                self._saturate(True)
                logger.error(
                    "all %d handler threads (max_threads) are busy, %d for over %.0f s (%s); requests to handlers get 503 until one is free",
                    count, len(stuck), _STUCK_AFTER, holders,
                )

    def _saturate(self, saturated: bool) -> None:
        try:
            _native.set_option("handlers_saturated", 1 if saturated else 0)
        except Exception:  # the server stopped meanwhile
            logger.debug("could not tell the server the handler threads are %s", "stuck" if saturated else "free")

    # Handler threads --------------------------------------------------------

    def _work(self, generation: _Generation, index: int) -> None:
        try:
            inbox = _native.Inbox()
        except Exception:
            logger.exception("a handler thread could not start")
            return
        # Requests for async handlers gathered while more are queued, so
        # that one wake-up of the event loop starts them all.
        jobs: List[Tuple[Endpoint, Request]] = []
        while not generation.stopped:
            try:
                data = inbox.take(0 if jobs else _TAKE_TIMEOUT_MS)
            except Exception:
                logger.exception("a handler thread could not take requests; it stops")
                data = None
            if not data and jobs:
                self._hand_to_loop(jobs)
                jobs = []
            if data is None:
                return
            try:
                requests = decode_records(data, inbox.take_body)
                # The records' bytes go now: a large body stays only in its
                # Request while the handler runs.
                data = b""
                self._serve_batch(requests, jobs, index)
            except Exception:  # a bug here must not end the thread
                logger.exception("a handler thread failed on a batch of requests")

    def _serve_batch(self, requests: List[Request], jobs: List[Tuple[Endpoint, Request]], index: int) -> None:
        """Answers ``requests`` for sync handlers and adds those
        for async ones to ``jobs``; a sync handler runs only after the jobs
        gathered before it were handed to the loop."""
        endpoints = self._endpoints
        for request in requests:
            endpoint = endpoints.get(request.handler)
            if endpoint is None:
                logger.error("%s %s: no handler %d is registered", request.method, request._raw_path, request.handler)
                self._respond(request.id, INTERNAL_ERROR)
            elif endpoint.on_loop:
                jobs.append((endpoint, request))
            else:
                if jobs:
                    self._hand_to_loop(jobs[:])
                    jobs.clear()
                running = self._running
                running[index] = endpoint
                try:
                    self._send(endpoint, request, endpoint.call(request))
                    if request._scope is not None:
                        endpoint.after_response(request)
                finally:
                    running[index] = None
                    self._finished[index] += 1

    def _hand_to_loop(self, jobs: List[Tuple[Endpoint, Request]]) -> None:
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("the event loop is not running")
            loop.call_soon_threadsafe(self._start_tasks, jobs)
        except RuntimeError:  # the loop stopped: the server is stopping
            for endpoint, request in jobs:
                self._send(endpoint, request, INTERNAL_ERROR)

    def _send(self, endpoint: Endpoint, request: Request, data: Any) -> None:
        if type(data) is not bytes:  # a stream or a file
            where = f"{request.method} {request.path}: route {endpoint.name}"
            _streams.send_sync(request.id, data, where, self.run_on_loop if self._loop is not None else None)
            return
        refused = self._respond(request.id, data)
        if refused is not None:
            logger.error("%s %s: route %s: %s", request.method, request.path, endpoint.name, refused)
            handlers._observe(ValueError(f"route {endpoint.name}: {refused}"))

