"""The server's limits over real sockets: slow and idle clients are closed,
oversized heads refused, connections capped, slow bodies and slow handlers
answered, and the server keeps serving everyone else throughout."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any, List, Tuple

import pytest
from conftest import connect, raw, read_all, request

from sufast import Request


def served(make_app, **limits):
    app = make_app(**limits)

    @app.get("/")
    def index():
        return "up"

    @app.post("/echo")
    def echo(body: bytes):
        return {"size": len(body)}

    return app


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (whatever it
    sent first is read and ignored)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def read_reply(sock: socket.socket) -> bytes:
    """One response on a keep-alive connection: its head and a body of
    Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_slow_heads_are_closed_while_others_are_served(make_app):
    port = served(make_app, header_timeout=1).start()
    slow: List[socket.socket] = []
    try:
        for _ in range(200):
            sock = connect(port)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            slow.append(sock)
        started = time.monotonic()
        # A probe every 100 ms is served while they hang.
        while time.monotonic() - started < 1.2:
            assert request(port, "GET", "/").body == b"up"
            time.sleep(0.1)  # the probe's pace, not synchronisation
        assert all(closed_within(sock, max(0.1, started + 2 - time.monotonic())) for sock in slow)
        assert time.monotonic() - started < 3
    finally:
        for sock in slow:
            sock.close()


def test_a_slow_first_head_gets_408_and_is_closed(make_app):
    port = served(make_app, header_timeout=1).start()
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(5)
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b'"detail"' in reply, reply
        assert 0.8 < time.monotonic() - started < 2.5
        assert closed_within(sock, 2)


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(make_app):
    port = served(make_app, keepalive_timeout=1, header_timeout=5).start()
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_reply(sock).endswith(b"up")
        started = time.monotonic()
        assert closed_within(sock, 4)
        assert 0.8 < time.monotonic() - started < 2.5


def test_a_kept_alive_connection_in_use_stays_open(make_app):
    port = served(make_app, keepalive_timeout=0.5, header_timeout=5).start()
    with connect(port) as sock:
        # Requests closer together than the idle limit, for longer than it.
        for _ in range(8):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(sock).endswith(b"up")
            time.sleep(0.2)  # the client's pace, not synchronisation


def refusal(port: int, data: bytes) -> Tuple[bytes, Any]:
    """Sends ``data`` on a new connection and reads until the server closes
    it: the reply's head and its body parsed as JSON."""
    head, _, body = raw(port, data).partition(b"\r\n\r\n")
    return head, json.loads(body)


def test_a_100_kb_head_gets_431_with_a_detail(make_app):
    # max_header_size is 64 KiB unless told otherwise.
    port = served(make_app).start()
    head, body = refusal(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), head
    assert b"content-type: application/json" in head.lower()
    assert body == {"detail": "Request Header Fields Too Large: the request head is larger than max_header_size"}
    assert request(port, "GET", "/", headers={"X-Fits": "a" * 60_000}).status == 200


def test_max_header_size_is_the_limit_a_head_is_held_to(make_app):
    port = served(make_app, max_header_size=8 * 1024).start()
    head, _ = refusal(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), head
    assert request(port, "GET", "/", headers={"X-Fits": "a" * 4000}).status == 200


@pytest.mark.parametrize("malformed", [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"])
def test_a_head_that_does_not_parse_gets_400_with_a_detail(make_app, malformed):
    port = served(make_app).start()
    head, body = refusal(port, malformed)
    assert head.startswith(b"HTTP/1.1 400"), head
    assert body == {"detail": "Bad Request: the request line or headers are malformed"}
    assert request(port, "GET", "/").status == 200


def test_at_max_connections_the_longest_waiting_idle_connection_makes_room(make_app, capfd):
    port = served(make_app, max_connections=5).start()
    kept = [connect(port) for _ in range(5)]
    try:
        for sock in kept:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(sock).endswith(b"up")
        # A sixth client is served at once: the connection idle longest,
        # the first, is closed for it; the others stay open.
        started = time.monotonic()
        assert request(port, "GET", "/").body == b"up"
        assert time.monotonic() - started < 1
        assert closed_within(kept[0], 2)
        for sock in kept[1:]:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(sock).endswith(b"up")
    finally:
        for sock in kept:
            sock.close()
    assert "sufast: warning: max_connections (5) reached: 1 connection(s) that waited longest" in capfd.readouterr().err


def test_slow_heads_at_max_connections_give_way_to_new_clients(make_app):
    port = served(make_app, max_connections=20, header_timeout=30).start()
    slow = []
    try:
        for _ in range(40):  # twice the limit, as a slow-header attack
            sock = connect(port)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        # Long before header_timeout, a real client is served.
        for _ in range(5):
            started = time.monotonic()
            assert request(port, "GET", "/").body == b"up"
            assert time.monotonic() - started < 1
    finally:
        for sock in slow:
            sock.close()


def test_at_max_connections_50_of_100_clients_are_served_and_the_rest_wait(make_app):
    app = make_app(max_connections=50)
    entered = threading.Semaphore(0)
    gate = {}

    @app.get("/hold/{n:int}")
    async def hold(n: int):
        if "open" not in gate:
            gate.setdefault("loop", asyncio.get_running_loop())
            gate.setdefault("open", asyncio.Event())
        entered.release()
        await gate["open"].wait()
        return {"n": n}

    port = app.start()
    clients = [connect(port) for _ in range(100)]
    try:
        for n, sock in enumerate(clients):
            sock.sendall(f"GET /hold/{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        for _ in range(50):
            assert entered.acquire(timeout=10), "50 requests reach their handler"
        # The first 50 hold every connection with a request in flight:
        # no more is taken, and no connection is closed to make room.
        assert not entered.acquire(timeout=0.5)
        gate["loop"].call_soon_threadsafe(gate["open"].set)
        statuses = []
        for sock in clients:
            sock.settimeout(10)
            statuses.append(read_all(sock)[9:12])
        # The other 50 waited and were served as connections closed.
        assert statuses == [b"200"] * 100, statuses
    finally:
        if "loop" in gate:
            gate["loop"].call_soon_threadsafe(gate["open"].set)
        for sock in clients:
            sock.close()
    assert request(port, "GET", "/hold/0").status == 200


def test_200_slow_bodies_are_closed_while_others_are_served(make_app):
    port = served(make_app, body_timeout=1).start()
    slow: List[socket.socket] = []
    try:
        for _ in range(200):
            sock = connect(port)
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
            slow.append(sock)
        started = time.monotonic()
        while time.monotonic() - started < 1.2:
            assert request(port, "POST", "/echo", body=b"x" * 10).body == b'{"size":10}'
            time.sleep(0.1)  # the probe's pace, not synchronisation
        for sock in slow:
            sock.settimeout(max(0.1, started + 2.5 - time.monotonic()))
            assert sock.recv(65536).startswith(b"HTTP/1.1 408")
            assert closed_within(sock, max(0.1, started + 2.5 - time.monotonic()))
        assert time.monotonic() - started < 3.5
    finally:
        for sock in slow:
            sock.close()


def test_connections_with_requests_in_flight_are_not_evicted(make_app):
    app = make_app(max_connections=2)
    release = threading.Event()
    entered = threading.Semaphore(0)

    @app.get("/hold/{n:int}")
    def hold(n: int):
        entered.release()
        release.wait(10)
        return {"n": n}

    port = app.start()
    held = [connect(port) for _ in range(2)]
    try:
        for n, sock in enumerate(held):
            sock.sendall(f"GET /hold/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
        # Both connections have a request in flight: a third client waits.
        waiting = connect(port)
        waiting.sendall(b"GET /hold/9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(1)
        release.set()
        for sock in held:
            assert b"HTTP/1.1 200" in read_reply(sock)
        waiting.settimeout(10)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200")
        waiting.close()
    finally:
        release.set()
        for sock in held:
            sock.close()


def test_a_handler_past_request_timeout_answers_504_and_the_route_recovers(make_app, capfd):
    app = make_app(request_timeout=1)
    release = threading.Event()

    @app.get("/slow")
    def slow(request: Request):
        release.wait(10)
        return {"late": True}

    @app.get("/fast")
    def fast(n: int = 0):
        return {"n": n}

    port = app.start()
    started = time.monotonic()
    reply = request(port, "GET", "/slow")
    took = time.monotonic() - started
    assert reply.status == 504 and b'"detail"' in reply.body, reply
    assert 0.9 < took < 3, took
    assert request(port, "GET", "/fast?n=2").body == b'{"n":2}'
    release.set()
    # Its thread is free again: the route answers in time now.
    assert request(port, "GET", "/slow").status == 200
    app.stop()
    err = capfd.readouterr().err
    assert "GET /slow: no answer from handler" in err and "the client got a 504" in err
    assert "came after its request_timeout" in err


def test_a_body_that_pauses_past_body_timeout_gets_408(make_app):
    port = served(make_app, body_timeout=1).start()
    with connect(port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        sock.settimeout(5)
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b'"detail"' in reply
        assert 0.9 < time.monotonic() - started < 3
        assert closed_within(sock, 2)
    assert request(port, "POST", "/echo", body=b"x" * 10).body == b'{"size":10}'


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("header_timeout", 0),
        ("keepalive_timeout", 7200),
        ("body_timeout", -1),
        ("request_timeout", "60"),
        ("max_header_size", 100),
        ("max_connections", 0),
        ("max_connections", True),
    ],
)
def test_a_limit_out_of_range_raises_where_the_app_is_made(make_app, keyword, value):
    with pytest.raises(ValueError, match=keyword):
        make_app(**{keyword: value})
