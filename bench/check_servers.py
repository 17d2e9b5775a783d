"""Checks that every benchmark server answers the same requests with the
same bytes: starts each one (bench/servers.py) on a free port, sends each
endpoint once, compares status, content type and body with what
servers.ENDPOINTS expects, then stops it with SIGTERM and checks that it
exits by itself. Each of a server's routes for servers.ITEM gets the same
body and must answer 200 or 201 with the item's id, and a route that
validates must refuse servers.ITEM_INVALID. A server that serves
servers.STATIC must send that file's bytes as text/plain; nginx, which
serves only that, is checked on nothing else. A server with a WebSocket
echo (servers.WEBSOCKET) must send back a text and a binary message with
their type and answer a close (bench/ws_echo.py). Servers that support CORS
are checked once more with it.

    .venv-bench/bin/python bench/check_servers.py [--only NAME[,NAME]] [--workers N]

Exits 1 if any check fails; a server that cannot run here, or that lacks a
feature (exit status EXIT_UNSUPPORTED), is reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
import ws_echo  # noqa: E402

ORIGIN = "https://example.com"
# Padding routes present with the default 10 routes (5 endpoints + 5 padding).
PADDING = [("/pad/2", b'{"pad":2}'), ("/pad/1/items/7", b'{"pad":1,"id":7}')]


def request(port: int, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=sent)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def check_plain(server: servers.Server, port: int) -> List[str]:
    """The endpoints and padding routes: 200, application/json, exact bytes;
    a non-integer id is not a 200."""
    failures = []
    wanted = [(e.method, e.path, e.body, e.expected) for e in servers.ENDPOINTS.values()]
    wanted += [("GET", path, None, expected) for path, expected in PADDING]
    for method, path, body, expected in wanted:
        status, headers, got = request(port, method, path, body)
        ctype = headers.get("content-type", "")
        ok = status == 200 and ctype == "application/json" and got == expected
        print(f"  {'ok  ' if ok else 'FAIL'} {method:4} {path:16} {status} {ctype:17} {got!r}")
        if not ok:
            failures.append(f"{server.name} {method} {path}: {status} {ctype!r} {got!r}, expected 200 {expected!r}")
    status, _, got = request(port, "GET", "/users/abc")
    ok = status in (404, 422)
    print(f"  {'ok  ' if ok else 'FAIL'} GET  /users/abc       {status} {got[:60]!r}")
    if not ok:
        failures.append(f"{server.name} GET /users/abc: {status}, expected 404 or 422")
    return failures


def check_items(server: servers.Server, port: int) -> List[str]:
    """Each route for servers.ITEM: the same body answered with the id;
    one that validates refuses a body with wrong and missing fields."""
    failures = []
    item = servers.ITEM
    for kind, path in server.items.items():
        status, headers, got = request(port, item.method, path, item.body)
        ctype = headers.get("content-type", "")
        ok = status in servers.ITEM_STATUSES and ctype == "application/json" and got == item.expected
        print(f"  {'ok  ' if ok else 'FAIL'} {item.method:4} {path:16} {status} {ctype:17} {got!r} ({kind})")
        if not ok:
            failures.append(f"{server.name} {item.method} {path} ({kind}): {status} {ctype!r} {got!r}, expected 200 or 201 {item.expected!r}")
        if kind not in servers.ITEM_VALIDATED:
            continue
        status, _, got = request(port, item.method, path, servers.ITEM_INVALID)
        ok = status in servers.ITEM_INVALID_STATUSES
        print(f"  {'ok  ' if ok else 'FAIL'} {item.method:4} {path:16} {status} {got[:60]!r} (invalid body)")
        if not ok:
            failures.append(f"{server.name} {item.method} {path} ({kind}) with an invalid body: {status} {got[:200]!r}, expected 400 or 422")
    return failures


def check_static(server: servers.Server, port: int) -> List[str]:
    """servers.STATIC: 200, text/plain, the file's exact bytes."""
    static = servers.STATIC
    status, headers, got = request(port, static.method, static.path)
    ctype = headers.get("content-type", "")
    ok = status == 200 and ctype == servers.STATIC_TYPE and got == static.expected
    print(f"  {'ok  ' if ok else 'FAIL'} {static.method:4} {static.path:16} {status} {ctype} {len(got)} bytes")
    if not ok:
        found = f"{server.name} {static.method} {static.path}: {status} {ctype!r} {got[:60]!r} ({len(got)} bytes)"
        return [found + f", expected 200 {servers.STATIC_TYPE!r} and the {len(static.expected)} bytes of the file"]
    return []


def check_websocket(server: servers.Server, port: int) -> List[str]:
    """servers.WEBSOCKET: a text and a binary message echoed, a close answered."""
    notes: List[str] = []
    found = asyncio.run(ws_echo.check(port, servers.WEBSOCKET, notes))
    shown = "; ".join(found) or "text and binary echoed" + ("" if notes else ", close answered")
    print(f"  {'ok  ' if not found else 'FAIL'} WS   {servers.WEBSOCKET:16} {shown}")
    for note in notes:
        print(f"  note {note}")
    return [f"{server.name} WebSocket {servers.WEBSOCKET}: {failure}" for failure in found]


def check_all(server: servers.Server, port: int) -> List[str]:
    failures = check_plain(server, port) if server.endpoints else []
    failures += check_items(server, port)
    failures += check_websocket(server, port) if server.websocket else []
    return failures + (check_static(server, port) if server.static else [])


def check_cors(server: servers.Server, port: int) -> List[str]:
    """A simple request and a preflight from the allowed origin."""
    failures = []
    status, headers, got = request(port, "GET", "/", headers={"Origin": ORIGIN})
    simple = (
        status == 200
        and got == servers.ENDPOINTS["root"].expected
        and headers.get("access-control-allow-origin") == ORIGIN
        and headers.get("x-powered-by") == "bench"
    )
    status2, headers2, _ = request(
        port,
        "OPTIONS",
        "/echo",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    preflight = (
        200 <= status2 < 300
        and headers2.get("access-control-allow-origin") == ORIGIN
        and headers2.get("access-control-max-age") == "600"
        and "post" in headers2.get("access-control-allow-methods", "").lower()
        and "content-type" in headers2.get("access-control-allow-headers", "").lower()
    )
    for ok, what, st, hs in ((simple, "GET  / + Origin", status, headers), (preflight, "OPTIONS /echo", status2, headers2)):
        shown = {k: v for k, v in hs.items() if k.startswith("access-control-") or k == "x-powered-by"}
        print(f"  {'ok  ' if ok else 'FAIL'} {what:21} {st} {shown}")
        if not ok:
            failures.append(f"{server.name} CORS {what}: {st} {shown}")
    return failures


def run(server: servers.Server, options: dict, check) -> Tuple[str, List[str]]:
    """Starts ``server``, runs ``check``, stops it. Returns (outcome, failures)."""
    port = servers.free_port()
    argv, env = server.command(port, options)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, env=env, cwd=server.cwd, stdout=log, stderr=log, start_new_session=True)

    def output() -> str:
        log.seek(0)
        return log.read().decode("utf-8", "replace").strip()

    try:
        try:
            servers.wait_ready(port, proc)
        except RuntimeError as e:
            if proc.returncode == servers.EXIT_UNSUPPORTED:
                return "skipped: " + (output().splitlines() or ["unsupported"])[-1], []
            return "failed", [f"{server.name} {options}: {e}\n{output()[-2000:]}"]
        failures = check(server, port)
    finally:
        status, by_itself = servers.stop(proc)
    if not by_itself:
        failures.append(f"{server.name}: did not exit within 10 s of SIGTERM (killed)")
    elif not servers.clean_exit(status):
        failures.append(f"{server.name}: exit status {status} after SIGTERM\n{output()[-2000:]}")
    print(f"  stop: SIGTERM -> exit status {status}" + ("" if by_itself else " (had to be killed)"))
    return ("ok" if not failures else "failed"), failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated server names")
    parser.add_argument("--workers", type=int, default=1, help="also pass workers=N to servers that support it")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else servers.ORDER
    summary: List[Tuple[str, str]] = []
    failures: List[str] = []
    missing = servers.unavailable()
    for name in names:
        server = servers.SERVERS[name]
        if name in missing:
            summary.append((name, "skipped: " + missing[name]))
            continue
        runs = [("plain", {}, check_all)]
        if "cors" in server.options:
            runs.append(("cors", {"cors": True}, check_cors))
        for label, options, check in runs:
            if args.workers != 1 and "workers" in server.options:
                options = {**options, "workers": args.workers}
            print(f"== {name} ({label}{', options ' + str(options) if options else ''})", flush=True)
            outcome, found = run(server, options, check)
            if outcome.startswith("skipped"):
                print(f"  {outcome}")
            summary.append((f"{name} {label}", outcome))
            failures += found
    print()
    for what, outcome in summary:
        print(f"{what:28} {outcome}")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
