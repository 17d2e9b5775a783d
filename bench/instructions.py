"""Instructions per request of the sufast bench app under valgrind
(callgrind): the whole server process, N1 and then N2 keep-alive requests
in two runs, the difference of the totals divided by N2 - N1, so start-up
and shut-down cancel out. Unlike wall-clock rounds on a shared machine,
the count barely moves between runs.

    python bench/instructions.py /users/123
    python bench/instructions.py /items --body item        # servers.ITEM's body
    python bench/instructions.py /users/123 --package OLD/python  # another tree's package
    python bench/instructions.py / --server axum          # bare axum, for the stored tier

Needs valgrind (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402

# The request bodies the bench sends, by name.
BODIES = {"item": servers.ITEM.body, **{e.path.strip("/"): e.body for e in servers.ENDPOINTS.values() if e.body is not None}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)  # polls for readiness, bounded by the deadline
    raise SystemExit(f"the server did not listen on port {port}")


def total_instructions(
    package: Path, method: str, path: str, body: Optional[bytes], count: int, env: dict, server: str = "sufast"
) -> int:
    """The instructions the server (the sufast bench app, or bare axum)
    ran to start, answer ``count`` requests and stop."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        run_env = dict(os.environ, PYTHONPATH=str(package), BENCH_PORT=str(port), **env)
        run_env.pop("SUFAST_LIB", None)
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *_argv(server)],
            env=run_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(port, time.monotonic() + 120)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            headers = {"content-type": "application/json"} if body is not None else {}
            for _ in range(count):
                conn.request(method, path, body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
                if reply.status >= 400:
                    raise SystemExit(f"{method} {path} answered {reply.status}")
            conn.close()
        finally:
            proc.send_signal(signal.SIGINT)  # App.run stops gracefully on Ctrl-C
            _, err = proc.communicate(timeout=600)
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise SystemExit(f"no callgrind total in the server's output:\n{err[-2000:]}")
    return int(found.group(1))


def _argv(server: str) -> list:
    if server == "axum":
        binary = HERE.parent / servers.AXUM_BIN
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: cargo build --release --manifest-path bench/axum-ref/Cargo.toml")
        return [str(binary)]
    return [sys.executable, str(HERE / "apps" / "sufast_app.py")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="the path to request, e.g. /users/123")
    parser.add_argument("--method", default=None, help="GET, or POST when --body is given")
    parser.add_argument("--body", choices=sorted(BODIES), help="send this bench body")
    parser.add_argument("--package", type=Path, default=HERE.parent / "python", help="the directory holding the sufast package")
    parser.add_argument("--requests", type=int, nargs=2, default=(1000, 6000), metavar=("N1", "N2"))
    parser.add_argument("--middleware", action="store_true", help="BENCH_MIDDLEWARE=1")
    parser.add_argument("--server", choices=("sufast", "axum"), default="sufast", help="axum: the bare axum reference instead")
    args = parser.parse_args()
    body = BODIES[args.body] if args.body else None
    method = args.method or ("POST" if body is not None else "GET")
    env = {"BENCH_MIDDLEWARE": "1"} if args.middleware else {}
    n1, n2 = args.requests
    first = total_instructions(args.package, method, args.path, body, n1, env, args.server)
    second = total_instructions(args.package, method, args.path, body, n2, env, args.server)
    what = "bare axum" if args.server == "axum" else args.package
    print(f"{method} {args.path} ({what}): {(second - first) / (n2 - n1):,.0f} instructions/request")


if __name__ == "__main__":
    main()
