"""What every benchmark app shares: its configuration from the environment
and the padding routes, so that all servers expose the same route table.

Environment (read by each app at import):

- ``BENCH_PORT``   port to bind on 127.0.0.1 (apps that bind themselves)
- ``BENCH_ROUTES`` total number of routes (default 10). The five endpoints
  from ``/`` to ``/echo`` below count (``/items`` does not: bare axum has
  no such route); the rest are padding, alternately ``/pad/{i}`` (no input)
  and ``/pad/{i}/items/{id}`` (an int path parameter), exactly as in
  bench/axum-ref/src/main.rs.
- ``BENCH_CORS=1`` CORS for https://example.com and ``x-powered-by: bench``
  on every response (servers that support it).
- ``BENCH_MIDDLEWARE=1`` (sufast only) one async HTTP middleware that sets
  a header; sufast also serves ``/deps/users/{id}`` through one
  ``Depends``.
- ``BENCH_COMPRESSION=1`` or ``0`` (sufast only) ``App(compression=True)``
  or not, and, either way, two routes with a 1 KB JSON body to compress:
  ``/report`` (precomputed) and ``/report/{id}`` (per request).

Endpoints, with byte-identical bodies on every server:

    GET  /                    {"message":"hello"}
    GET  /users/{id}          {"id":<id>}        (sync handler)
    GET  /async/users/{id}    {"id":<id>}        (async handler)
    GET  /cached              {"message":"hello"}
    POST /echo                the JSON body, re-serialized compactly
    POST /items               {"id":<id>}        (a 10-field body, servers.ITEM; not on bare axum)
    GET  /pad/{i}             {"pad":<i>}
    GET  /pad/{i}/items/{id}  {"pad":<i>,"id":<id>}
    GET  /static/file.txt     bench/apps/static/file.txt (sufast and Starlette; also nginx)
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Iterator, NoReturn, Tuple

BASE_ROUTES = 5

CORS_ORIGIN = "https://example.com"
CORS_METHODS = ["GET", "POST"]
CORS_HEADERS = ["content-type"]
CORS_MAX_AGE = 600
EXTRA_HEADER = ("x-powered-by", "bench")

# Exit status of an app asked for a feature its framework lacks (for
# instance BENCH_CORS=1 with a sufast without CORS); bench/servers.py knows it.
EXIT_UNSUPPORTED = 3


def unsupported(message: str) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_UNSUPPORTED)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {value!r}") from None
    if number < 0:
        raise SystemExit(f"{name} must not be negative, got {number}")
    return number


PORT = env_int("BENCH_PORT", 8000)
ROUTES = env_int("BENCH_ROUTES", 10)
CORS = os.environ.get("BENCH_CORS") == "1"
WORKERS = env_int("BENCH_WORKERS", 1)
MIDDLEWARE = os.environ.get("BENCH_MIDDLEWARE") == "1"
# None: unset, neither compression nor its routes.
COMPRESSION = {"1": True, "0": False}.get(os.environ.get("BENCH_COMPRESSION", "").strip())


def padding() -> Iterator[Tuple[int, bool]]:
    """Yields ``(i, with_param)`` for each padding route: ``(0, False)`` is
    ``/pad/0``, ``(0, True)`` is ``/pad/0/items/{id}``, then ``i = 1``..."""
    for k in range(max(ROUTES - BASE_ROUTES, 0)):
        yield k // 2, k % 2 == 1


class ExtraHeader:
    """Pure ASGI middleware adding ``x-powered-by: bench`` to every response
    (the counterpart of tower-http's SetResponseHeaderLayer)."""

    def __init__(self, app) -> None:
        self.app = app
        self.header = (EXTRA_HEADER[0].encode(), EXTRA_HEADER[1].encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def stop_on_signals() -> None:
    """Make SIGTERM and SIGINT end a Robyn app's process. With one process Robyn
    serves from the main process, and there (Robyn 0.88) either signal stops
    its HTTP server but leaves the Python event loop running: the process
    never exits. Robyn leaves that loop on KeyboardInterrupt, which these
    handlers raise."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
