"""The servers the benchmark compares, and how to start each one.

This module is the contract between the servers (bench/axum-ref,
bench/apps/*) and whatever drives them. It needs only the standard library:

    import sys; sys.path.insert(0, "bench"); import servers
    for name in servers.available():           # servers.unavailable(): {name: why}
        server = servers.SERVERS[name]
        argv, env = server.command(port, {"routes": "100"})
        proc = subprocess.Popen(argv, env=env, cwd=server.cwd, start_new_session=True)
        servers.wait_ready(port, proc)
        ...
        servers.stop(proc)

- ``argv`` paths are relative to the repository root: run with
  ``cwd=server.cwd`` (the repository root).
- ``env`` is the whole environment for the process: this one's, with every
  ``BENCH_*`` variable the servers read set explicitly (so it can also be
  merged over ``os.environ``).
- Options (``OPTIONS`` holds the defaults), given as values or strings:
  ``routes`` total routes in the table, ``cors`` (true or "1") CORS and
  ``x-powered-by: bench`` on every response, ``workers`` processes.
  ``command`` raises ``ValueError`` for an option a server does not support
  (see ``Server.options``) unless it has its default value.
- ``Server.endpoints``: the ``ENDPOINTS`` worth measuring on that server
  (robyn-const differs from robyn only on ``/`` and ``/cached``).
- ``Server.items``: the server's routes for ``ITEM`` (a create with a
  10-field JSON body), ``{kind: path}``; ``kind`` says how the handler
  takes the body: validated by a model (``dataclass``, ``pydantic``), or
  a plain ``dict`` (``ITEM_VALIDATED`` says which kinds refuse
  ``ITEM_INVALID``). Not every server has one (bare axum has none).
- ``Server.static``: the server sends ``STATIC``, a committed 1 KiB file
  of bench/apps/static. nginx serves that file only (``endpoints`` is
  empty; ``GET /`` answers 200 for the readiness check); it runs in the
  foreground as one process, with a config written to a directory of its
  own under the temporary directory.
- ``Server.websocket``: the server echoes WebSocket messages on
  ``WEBSOCKET`` (``/ws``): each text or binary message sent back as it
  came, until the client closes (bench/ws_echo.py is the client).
- A server that exits with ``EXIT_UNSUPPORTED`` at startup was asked for a
  feature this build of it lacks (its stderr says which).
"""

from __future__ import annotations

import functools
import http.client
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ".venv-bench/bin/python"  # made by: python3 -m venv .venv-bench; pip install -r bench/requirements.txt
AXUM_BIN = "bench/axum-ref/target/release/axum-ref"
APPS = "bench/apps"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # Debian's nginx package
SUFAST_LIBS = ("libsufast.so", "libsufast.dylib", "sufast.dll")  # what `make build` copies into python/sufast

# compression (sufast only): None leaves BENCH_COMPRESSION unset (no
# /report routes); "0" or "1" serves them with compression off or on.
OPTIONS = {"routes": 10, "cors": False, "workers": 1, "middleware": False, "compression": None}
# A checkout of an earlier sufast, built (make bench BASELINE=rev makes one),
# measured as "sufast-baseline" beside this one in the same rounds.
BASELINE = os.environ.get("BENCH_BASELINE") or None
EXIT_UNSUPPORTED = 3  # keep in step with bench/apps/bench_common.py


class Endpoint(NamedTuple):
    method: str
    path: str
    body: Optional[bytes]  # request body (sent as application/json)
    expected: bytes  # the exact response body every server must send


# What every server answers, byte for byte (status 200, application/json).
ENDPOINTS: Dict[str, Endpoint] = {
    "root": Endpoint("GET", "/", None, b'{"message":"hello"}'),
    "user": Endpoint("GET", "/users/123", None, b'{"id":123}'),
    "async_user": Endpoint("GET", "/async/users/123", None, b'{"id":123}'),
    "cached": Endpoint("GET", "/cached", None, b'{"message":"hello"}'),
    "echo": Endpoint(
        "POST",
        "/echo",
        b'{"name":"sufast","tags":["fast","rust"],"n":42,"x":1.5,"ok":true,"none":null,"nested":{"z":1,"a":"caf\xc3\xa9"}}',
        b'{"name":"sufast","tags":["fast","rust"],"n":42,"x":1.5,"ok":true,"none":null,"nested":{"z":1,"a":"caf\xc3\xa9"}}',
    ),
}


# POST /items: a create whose 10-field body (str, int, float, bool,
# Optional[str], List[str], a nested model, a datetime, an Enum and a
# Literal) is validated by a model, or taken as a plain dict. Every server
# answers 200 or 201 (Litestar's default for POST) with the item's id.
ITEM = Endpoint(
    "POST",
    "/items",
    b'{"id":4711,"name":"Garden hose 25 m","price":34.9,"in_stock":true,'
    b'"description":"Kink-free, with brass fittings","tags":["garden","outdoor","sale"],'
    b'"dimensions":{"length":2500,"width":3.2,"unit":"cm"},'
    b'"created_at":"2026-11-25T10:15:00Z","status":"active","priority":"high"}',
    b'{"id":4711}',
)
ITEM_STATUSES = (200, 201)
# The same body with a wrong type, an unknown Enum value and a missing
# field: what a validating route refuses (422, or 400 for Litestar).
ITEM_INVALID = (
    b'{"id":"forty-two","name":"Garden hose 25 m","in_stock":true,'
    b'"description":null,"tags":["garden"],"dimensions":{"length":2500,"width":3.2,"unit":"cm"},'
    b'"created_at":"2026-11-25T10:15:00Z","status":"lost"}'
)
ITEM_INVALID_STATUSES = (400, 422)
ITEM_VALIDATED = frozenset({"dataclass", "pydantic"})

# GET /static/file.txt: the same 1 KiB file from every server that has
# Server.static (status 200, text/plain; charset=utf-8).
STATIC_DIR = f"{APPS}/static"
STATIC = Endpoint("GET", "/static/file.txt", None, (ROOT / STATIC_DIR / "file.txt").read_bytes())
STATIC_TYPE = "text/plain; charset=utf-8"

# The WebSocket echo of the servers that have Server.websocket.
WEBSOCKET = "/ws"


class Server(NamedTuple):
    name: str
    build: Callable[[int, dict], List[str]]  # (port, options) -> argv
    options: frozenset  # which of OPTIONS it supports
    extra_env: Dict[str, str] = {}
    needs: Tuple[str, ...] = ()  # Python modules it imports
    endpoints: frozenset = frozenset(ENDPOINTS)
    items: Dict[str, str] = {}  # {kind: path} for ITEM (see above)
    static: bool = False  # serves STATIC
    websocket: bool = False  # echoes WebSocket messages on WEBSOCKET
    cwd: Path = ROOT

    def command(self, port: int, options: Optional[dict] = None) -> Tuple[List[str], Dict[str, str]]:
        """The argv and full environment to serve on 127.0.0.1:``port``."""
        opts = dict(OPTIONS)
        for key, value in (options or {}).items():
            if key not in OPTIONS:
                raise ValueError(f"unknown option {key!r} (known: {', '.join(OPTIONS)})")
            value = _option(key, value)
            if key not in self.options and value != OPTIONS[key]:
                raise ValueError(f"{self.name} does not support {key}={value!r}")
            opts[key] = value
        env = dict(os.environ)
        env.update(self.extra_env)
        env["BENCH_PORT"] = str(port)
        env["BENCH_ROUTES"] = str(opts["routes"])
        env["BENCH_CORS"] = "1" if opts["cors"] else "0"
        env["BENCH_WORKERS"] = str(opts["workers"])
        env["BENCH_MIDDLEWARE"] = "1" if opts["middleware"] else "0"
        env.pop("BENCH_COMPRESSION", None)
        if opts["compression"] is not None:
            env["BENCH_COMPRESSION"] = opts["compression"]
        return self.build(port, opts), env

    def unavailable(self) -> Optional[str]:
        """None if the server can start here, else what is missing."""
        if self.name == "axum":
            if not (ROOT / AXUM_BIN).exists():
                return f"{AXUM_BIN} is missing: cargo build --release --manifest-path bench/axum-ref/Cargo.toml"
            return None
        if self.name == "nginx":
            if not os.access(NGINX, os.X_OK):
                return f"{NGINX} is missing: apt-get install nginx"
            return None
        if not (ROOT / PYTHON).exists():
            return f"{PYTHON} is missing: python3 -m venv .venv-bench && .venv-bench/bin/pip install -r bench/requirements.txt"
        if self.name == "sufast" and not any((ROOT / "python" / "sufast" / lib).exists() for lib in SUFAST_LIBS):
            return "the sufast library is missing from python/sufast: make build"
        if self.name == "sufast-baseline":
            if BASELINE is None:
                return "no baseline to compare with: make bench BASELINE=<git revision>"
            if not any((Path(BASELINE) / "python" / "sufast" / lib).exists() for lib in SUFAST_LIBS):
                return f"the baseline's library is missing from {BASELINE}/python/sufast: make -C {BASELINE} build"
        return _import_error(self.needs) if self.needs else None


def _option(key: str, value) -> object:
    """An option's value from a value or a string ("1", "10000")."""
    if key == "compression":
        if value is None or str(value) in ("0", "1"):
            return None if value is None else str(value)
        raise ValueError(f"compression must be 0 or 1, got {value!r}")
    if key in ("cors", "middleware"):
        if isinstance(value, str):
            if value.lower() not in ("0", "1", "true", "false", ""):
                raise ValueError(f"{key} must be 0/1 or true/false, got {value!r}")
            return value.lower() in ("1", "true")
        return bool(value)
    number = int(value)
    if number < (1 if key == "workers" else 0):
        raise ValueError(f"{key} out of range: {value!r}")
    return number


@functools.lru_cache(maxsize=None)
def _import_error(modules: Tuple[str, ...]) -> Optional[str]:
    """None if the bench venv imports ``modules``, else the error."""
    probe = subprocess.run(
        [PYTHON, "-c", f"import {', '.join(modules)}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines() or ["exit status %d" % probe.returncode]
    return f"cannot import {', '.join(modules)} in {PYTHON}: {lines[-1]}"


def _axum(port: int, opts: dict) -> List[str]:
    return [AXUM_BIN]


# One process in the foreground (no master, one worker), nothing logged
# but errors; sendfile and tcp_nopush as in Debian's /etc/nginx/nginx.conf.
# keepalive_requests: the default, 1000, would close every connection of
# wrk's after 1000 requests, which no other server does.
NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid "{dir}/{port}.pid";
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path "{dir}/body";
    proxy_temp_path "{dir}/proxy";
    fastcgi_temp_path "{dir}/fastcgi";
    uwsgi_temp_path "{dir}/uwsgi";
    scgi_temp_path "{dir}/scgi";
    types {{ text/plain txt; }}
    default_type application/octet-stream;
    charset utf-8;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = / {{ default_type application/json; return 200 '{{"message":"hello"}}'; }}
        location /static/ {{ root "{apps}"; }}
        location / {{ return 404; }}
    }}
}}
"""


def _nginx(port: int, opts: dict) -> List[str]:
    # A directory of the bench's for the config, pid file and temporary
    # files, so that it needs no root and nothing of /etc/nginx or /var.
    path = Path(tempfile.gettempdir()) / "sufast-bench-nginx"
    path.mkdir(exist_ok=True)
    conf = path / f"{port}.conf"
    conf.write_text(NGINX_CONF.format(dir=path, port=port, apps=ROOT / APPS))
    # -e: the error log from the start, before the config names one.
    return [NGINX, "-e", "stderr", "-p", str(path), "-c", str(conf)]


def _script(name: str) -> Callable[[int, dict], List[str]]:
    return lambda port, opts: [PYTHON, f"{APPS}/{name}"]


def _uvicorn(module: str) -> Callable[[int, dict], List[str]]:
    def argv(port: int, opts: dict) -> List[str]:
        args = [PYTHON, "-m", "uvicorn", "--app-dir", APPS, f"{module}:app"]
        args += ["--host", "127.0.0.1", "--port", str(port)]
        args += ["--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
        if opts["workers"] != 1:  # without --workers uvicorn runs no supervisor process
            args += ["--workers", str(opts["workers"])]
        return args

    return argv


def _granian(module: str) -> Callable[[int, dict], List[str]]:
    def argv(port: int, opts: dict) -> List[str]:
        args = [PYTHON, "-m", "granian", "--interface", "asgi", "--working-dir", APPS]
        args += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(opts["workers"])]
        # HTTP/1 only, like the other servers; uvloop, like uvicorn.
        args += ["--http", "1", "--loop", "uvloop", "--log-level", "warning", "--no-access-log"]
        return args + [f"{module}:app"]

    return argv


ALL = frozenset(OPTIONS)
# Options only sufast's app reads.
PORTABLE = ALL - {"middleware", "compression"}

# The routes of ITEM, by how the handler takes the body.
SUFAST_ITEMS = {"dataclass": "/items", "dict": "/items/dict"}
PYDANTIC_ITEMS = {"pydantic": "/items"}
DICT_ITEMS = {"dict": "/items"}

_DEFINITIONS: List[Server] = [
    Server("axum", _axum, frozenset({"routes", "cors"})),
    Server("sufast", _script("sufast_app.py"), ALL, items=SUFAST_ITEMS, static=True, websocket=True),
    Server(
        "sufast-baseline",
        lambda port, opts: [PYTHON, f"{BASELINE}/{APPS}/sufast_app.py"],
        ALL,
        extra_env={"SUFAST_LIB": ""},
    ),
    Server("fastapi-uvicorn", _uvicorn("fastapi_app"), PORTABLE, needs=("fastapi", "uvicorn", "uvloop", "httptools"), items=PYDANTIC_ITEMS),
    Server("fastapi-granian", _granian("fastapi_app"), PORTABLE, needs=("fastapi", "granian", "uvloop"), items=PYDANTIC_ITEMS),
    Server(
        "starlette-uvicorn",
        _uvicorn("starlette_app"),
        PORTABLE,
        needs=("starlette", "uvicorn", "uvloop", "httptools"),
        items=DICT_ITEMS,
        static=True,
        websocket=True,  # uvicorn[standard] brings the websockets package
    ),
    Server("starlette-granian", _granian("starlette_app"), PORTABLE, needs=("starlette", "granian", "uvloop"), items=DICT_ITEMS, static=True),
    # One process, one worker (set in robyn_app.py).
    Server("robyn", _script("robyn_app.py"), frozenset({"routes"}), needs=("robyn",), items=DICT_ITEMS, websocket=True),
    Server(
        "robyn-const",
        _script("robyn_app.py"),
        frozenset({"routes"}),
        extra_env={"ROBYN_CONST": "1"},
        needs=("robyn",),
        endpoints=frozenset({"root", "cached"}),
    ),
    Server(
        "litestar-uvicorn",
        _uvicorn("litestar_app"),
        frozenset({"routes", "workers"}),
        needs=("litestar", "uvicorn", "uvloop", "httptools"),
        items={"dataclass": "/items"},
    ),
    Server("nginx", _nginx, frozenset(), endpoints=frozenset(), static=True),
]

# By name, and the order to list them in (reference first).
SERVERS: Dict[str, Server] = {s.name: s for s in _DEFINITIONS}
ORDER: List[str] = [s.name for s in _DEFINITIONS]


def unavailable() -> Dict[str, str]:
    """{name: why it cannot run here} for the servers that cannot."""
    found = {}
    for name in ORDER:
        reason = SERVERS[name].unavailable()
        if reason:
            found[name] = reason
    return found


def available() -> List[str]:
    """The names of the servers that can run here, in ORDER."""
    missing = unavailable()
    return [name for name in ORDER if name not in missing]


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Returns once ``GET /`` answers 200; raises RuntimeError if the
    process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
            try:
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"not answering on port {port} after {timeout:.0f} s")
        time.sleep(0.05)  # poll interval, not a synchronisation


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> Tuple[int, bool]:
    """SIGTERM to the server, then SIGKILL to its whole process group
    (started with ``start_new_session=True``) for anything left.
    Returns (exit status, whether it exited by itself within ``timeout``)."""
    clean = True
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            clean = False
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # worker processes, or a server that hung
    except (ProcessLookupError, PermissionError):
        pass
    return proc.wait(), clean


def clean_exit(status: int) -> bool:
    """Exit statuses that mean a graceful stop: 0, or dying of the signal
    it was sent (uvicorn re-raises SIGTERM once it has shut down)."""
    return status in (0, -signal.SIGTERM, 128 + signal.SIGTERM)


if __name__ == "__main__":
    # A listing of the servers and their command lines.
    for server in SERVERS.values():
        argv, _ = server.command(8000)
        extra = " ".join(f"{k}={v}" for k, v in server.extra_env.items())
        print(f"{server.name:18} {extra + ' ' if extra else ''}{' '.join(argv)}")
        reason = server.unavailable()
        if reason:
            print(f"{'':18} unavailable: {reason}", file=sys.stderr)
