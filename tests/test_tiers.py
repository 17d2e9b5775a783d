"""The per-request tiers over real HTTP: async handlers share one event loop,
a blocked sync handler delays nobody else, the cached tier (TTL, no
stampede, keys, bound, 5xx not stored), 503 on a full queue, stop and
restart with handlers in flight, 413, and many requests over keep-alive."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import pytest
from conftest import request

from sufast import HTTPException, JSONResponse, Request

# Helpers ---------------------------------------------------------------------


class Calls:
    """Counts calls, thread-safe, and records when each one began."""

    def __init__(self) -> None:
        self.lock, self.times = threading.Lock(), []

    def bump(self) -> int:
        with self.lock:
            self.times.append(time.monotonic())
            return len(self.times)

    count = property(lambda self: len(self.times))


def background(fn, *args) -> Future:
    """Runs fn(*args) on a daemon thread (a hung client never blocks teardown)."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def wait_until(predicate, timeout: float, what: str) -> None:
    """Polls predicate with a tiny pause until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def get_json(port: int, path: str):
    reply = request(port, "GET", path)
    return reply.status, json.loads(reply.body)


@pytest.fixture
def release(app, make_app):
    """The Event blocked handlers wait on; set at teardown, before any App stops."""
    event = threading.Event()
    yield event
    event.set()


# Async handlers ----------------------------------------------------------------


def test_100_concurrent_async_handlers_overlap_on_one_event_loop(make_app):
    # With 4 threads, running the handlers one per thread would take 100 / 4 x 0.2 s = 5 s.
    app = make_app(threads=4)
    seen = []  # (loop, thread id) per call; the loops are kept alive so ids stay unique

    @app.get("/sleep")
    async def sleep(i: int):
        seen.append((asyncio.get_running_loop(), threading.get_ident()))
        await asyncio.sleep(0.2)
        return {"i": i}

    port = app.start()
    started = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        replies = list(pool.map(lambda i: request(port, "GET", f"/sleep?i={i}"), range(100)))
    total = time.monotonic() - started

    assert [r.status for r in replies] == [200] * 100
    assert [json.loads(r.body) for r in replies] == [{"i": i} for i in range(100)]
    assert total < 3, f"100 x 0.2 s of awaiting took {total:.2f} s: handlers did not overlap"
    assert len(seen) == 100
    assert len({id(loop) for loop, _ in seen}) == 1, "handlers ran on more than one event loop"
    assert len({thread for _, thread in seen}) == 1


def test_blocking_sync_handlers_arriving_together_run_on_separate_threads(make_app):
    # Run one after another on one thread, 8 x 0.3 s would take 2.4 s.
    app = make_app(threads=8)
    threads = set()

    @app.get("/io")
    def io(i: int):
        threads.add(threading.get_ident())
        time.sleep(0.3)  # stands for blocking I/O, which releases the GIL
        return {"i": i}

    port = app.start()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: request(port, "GET", f"/io?i={i}"), range(8)))
    total = time.monotonic() - started

    assert [json.loads(r.body) for r in replies] == [{"i": i} for i in range(8)]
    assert total < 1.2, f"8 x 0.3 s of blocking took {total:.2f} s: handlers did not overlap"
    assert len(threads) == 8


# A blocked sync handler delays nobody else --------------------------------------


def test_a_blocked_sync_handler_does_not_delay_other_routes(app, release):
    entered = threading.Event()
    cached_calls = Calls()

    @app.get("/block", dynamic=True)
    def block():
        entered.set()
        release.wait(10)
        return {"blocked": False}

    app.get("/static")(lambda: {"tier": "static"})
    app.get("/cached", cache_ttl=60)(lambda: {"n": cached_calls.bump()})

    @app.get("/other")
    def other(x: int):
        return {"x": x}

    @app.get("/async-other")
    async def async_other(x: int):
        return {"ax": x}

    tiers = {route.path: route.tier for route in app.routes}
    assert tiers == {"/block": "dynamic", "/static": "static", "/cached": "cached",
                     "/other": "dynamic", "/async-other": "dynamic"}
    port = app.start()
    assert get_json(port, "/cached") == (200, {"n": 1})

    blocked = background(request, port, "GET", "/block")
    assert entered.wait(5), "the blocking handler never ran"
    for path, expected in [("/static", {"tier": "static"}), ("/cached", {"n": 1}),
                           ("/other?x=5", {"x": 5}), ("/async-other?x=6", {"ax": 6})]:
        started = time.monotonic()
        reply = request(port, "GET", path)
        elapsed = time.monotonic() - started
        assert (reply.status, json.loads(reply.body)) == (200, expected), path
        assert elapsed < 1, f"{path} took {elapsed:.2f} s while a sync handler was blocked"
    assert not blocked.done()
    assert cached_calls.count == 1

    release.set()
    reply = blocked.result(timeout=5)
    assert (reply.status, json.loads(reply.body)) == (200, {"blocked": False})


# Cached tier -------------------------------------------------------------------


def test_cached_route_renders_on_first_request_then_serves_without_python(app):
    calls = Calls()
    app.get("/c", cache_ttl=60)(lambda: {"n": calls.bump()})
    assert app.routes[0].tier == "cached"
    port = app.start()
    assert calls.count == 0, "a cached route renders on its first request, not at registration"
    for _ in range(20):
        assert get_json(port, "/c") == (200, {"n": 1})
    assert calls.count == 1


def test_cached_route_refreshes_once_per_ttl(app):
    calls = Calls()
    app.get("/fresh", cache_ttl=0.3)(lambda: {"n": calls.bump()})
    port = app.start()
    assert get_json(port, "/fresh") == (200, {"n": 1})
    current = 1
    for expected in (2, 3):
        deadline = time.monotonic() + 3
        while True:
            status, body = get_json(port, "/fresh")
            assert status == 200 and body["n"] in (current, expected), body
            if body["n"] == expected:
                break
            assert time.monotonic() < deadline, f"no refresh to n={expected} within 3 s"
            time.sleep(0.01)
        assert calls.count == expected, "one refresh must be exactly one handler call"
        current = expected
    gaps = [later - earlier for earlier, later in zip(calls.times, calls.times[1:])]
    assert all(gap >= 0.25 for gap in gaps), f"re-rendered before the 0.3 s TTL: {gaps}"


def blocking_refresh(app, release, path: str, **options):
    """A cached route at ``path`` whose first render answers n=1 at once and
    whose re-renders set ``refreshing`` and wait for ``release``; served,
    and rendered once. Returns (calls, refreshing, port)."""
    calls = Calls()
    refreshing = threading.Event()

    def render():
        n = calls.bump()
        if n > 1:
            refreshing.set()
            release.wait(10)
        return {"n": n}

    app.get(path, **options)(render)
    port = app.start()
    assert get_json(port, path) == (200, {"n": 1})
    return calls, refreshing, port


def test_expired_entry_is_refreshed_by_one_call_while_others_get_the_stale_copy(app, release):
    calls, refreshing, port = blocking_refresh(app, release, "/slow", cache_ttl=0.3)
    stored_by = time.monotonic()
    # The TTL is a clock condition: wait (by polling the clock) until it has passed.
    wait_until(lambda: time.monotonic() > stored_by + 0.4, 2, "the TTL to pass")

    barrier = threading.Barrier(20)

    def fire():
        barrier.wait(5)
        return get_json(port, "/slow")

    futures = [background(fire) for _ in range(20)]
    assert refreshing.wait(5), "no request re-rendered the expired entry"
    wait_until(lambda: sum(f.done() for f in futures) >= 19, 2,
               "19 of 20 requests to be answered with the stale copy during the refresh")
    assert calls.count == 2, f"{calls.count - 1} handler calls for one expiry (stampede)"
    for future in futures:
        if future.done():
            assert future.result() == (200, {"n": 1})

    release.set()
    results = [f.result(timeout=5) for f in futures]
    assert all(result in ((200, {"n": 1}), (200, {"n": 2})) for result in results), results
    # The refresh may land after its requests got the stale copy: poll for it.
    wait_until(lambda: get_json(port, "/slow") == (200, {"n": 2}), 2, "the refresh to be stored")
    assert calls.count == 2


def test_concurrent_requests_for_a_cold_key_wait_for_one_render(app, release):
    calls, sent = Calls(), Calls()
    rendering = threading.Event()

    @app.get("/cold", cache_ttl=60)
    def cold():
        n = calls.bump()
        rendering.set()
        release.wait(10)
        return {"n": n}

    def send_then_read():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/cold")
            sent.bump()
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    port = app.start()
    futures = [background(send_then_read) for _ in range(20)]
    assert rendering.wait(5)
    wait_until(lambda: sent.count == 20, 5, "all 20 requests to be sent")
    assert not any(f.done() for f in futures), "a request did not wait for the first render"
    release.set()
    assert [f.result(timeout=5) for f in futures] == [(200, {"n": 1})] * 20
    assert calls.count == 1, f"{calls.count} renders of one cold key"


def test_different_query_strings_are_different_cache_keys(app):
    calls = Calls()
    app.get("/q", cache_ttl=60)(lambda: {"n": calls.bump()})
    port = app.start()
    sequence = ["/q?a=1", "/q?a=2", "/q?a=1", "/q", "/q?a=2", "/q"]
    assert [get_json(port, path)[1]["n"] for path in sequence] == [1, 2, 1, 3, 2, 3]
    assert calls.count == 3


@pytest.mark.parametrize("bound_on", ["app", "route"])
def test_cache_bound_evicts_the_oldest_key(make_app, bound_on):
    application = make_app(cache_max_entries=2) if bound_on == "app" else make_app()
    options = {"cache_max_entries": 2} if bound_on == "route" else {}
    calls = Calls()
    application.get("/k", cache_ttl=60, **options)(lambda: {"n": calls.bump()})
    port = application.start()

    assert [get_json(port, f"/k?k={k}")[1]["n"] for k in (1, 2, 3)] == [1, 2, 3]
    assert get_json(port, "/k?k=1")[1] == {"n": 4}, "?k=1 should have been evicted by ?k=3"
    assert get_json(port, "/k?k=3")[1] == {"n": 3}, "?k=3 should still be stored"
    assert get_json(port, "/k?k=2")[1] == {"n": 5}, "?k=2 should have been evicted by ?k=1"
    assert calls.count == 5


@pytest.mark.parametrize("failure, status, stored", [("raise", 500, False), ("http_exception", 502, False),
                                                     ("response", 503, False), ("http_exception", 404, True)])
def test_server_errors_are_not_cached(app, failure, status, stored):
    calls = Calls()

    @app.get("/flaky", cache_ttl=60)
    def flaky():
        n = calls.bump()
        if n == 1:
            if failure == "raise":
                raise RuntimeError("boom")
            if failure == "http_exception":
                raise HTTPException(status)
            return JSONResponse({"n": n}, status_code=status)
        return {"n": n}

    port = app.start()
    first = request(port, "GET", "/flaky")
    assert first.status == status
    if failure == "raise":
        assert json.loads(first.body)["detail"] == "Internal Server Error"
    second = request(port, "GET", "/flaky")
    if stored:
        assert (second.status, second.body) == (first.status, first.body)
        assert calls.count == 1
    else:
        assert (second.status, json.loads(second.body)) == (200, {"n": 2})
        assert get_json(port, "/flaky") == (200, {"n": 2})
        assert calls.count == 2


# Full queue: 503 -----------------------------------------------------------------


def test_full_queue_answers_503_quickly_and_recovers(make_app, release):
    application = make_app(threads=1, max_pending=2)
    entered = threading.Event()

    @application.get("/block", dynamic=True)
    def block():
        entered.set()
        release.wait(10)
        return {"ok": True}

    application.get("/static")(lambda: {"static": True})
    port = application.start()

    first_two = [background(request, port, "GET", f"/block?n={n}") for n in (1, 2)]
    assert entered.wait(5), "the handler never ran"
    started = time.monotonic()
    third = background(request, port, "GET", "/block?n=3")
    # One handler is inside Python and one request waits: whichever of the other
    # two arrives last finds the queue full.
    done, _ = wait(first_two + [third], timeout=1, return_when=FIRST_COMPLETED)
    assert len(done) == 1, "no request was refused within 1 s although the queue was full"
    refused = done.pop()
    elapsed = time.monotonic() - started
    reply = refused.result()
    assert reply.status == 503 and elapsed < 1
    assert reply.header("Retry-After") == "1"
    assert json.loads(reply.body) == {"detail": "Service Unavailable"}
    # Routes that need no Python are unaffected by the full queue.
    assert get_json(port, "/static") == (200, {"static": True})

    release.set()
    for future in first_two + [third]:
        if future is not refused:
            answered = future.result(timeout=5)
            assert (answered.status, json.loads(answered.body)) == (200, {"ok": True})
    for _ in range(5):
        assert get_json(port, "/block") == (200, {"ok": True})


# Stop and restart with handlers in flight ----------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stop_with_a_handler_in_flight_is_bounded_and_restart_serves(app, release, kind):
    entered = threading.Event()
    if kind == "sync":
        def slow():
            entered.set()
            release.wait(10)
            return {"late": True}
    else:
        async def slow():
            entered.set()
            for _ in range(1000):  # awaits until released, at most ~10 s
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
            return {"late": True}
    app.get("/slow", dynamic=True)(slow)

    @app.get("/ping")
    def ping(x: int):
        return {"sync": x}

    @app.get("/aping")
    async def aping(x: int):
        await asyncio.sleep(0)
        return {"async": x}

    def assert_pings(port):
        for x in range(3):
            assert get_json(port, f"/ping?x={x}") == (200, {"sync": x})
            assert get_json(port, f"/aping?x={x}") == (200, {"async": x})

    port = app.start()
    assert_pings(port)
    in_flight = background(request, port, "GET", "/slow")
    assert entered.wait(5)

    started = time.monotonic()
    app.stop(timeout=0.5)
    assert time.monotonic() - started < 5, "stop(timeout=0.5) did not return in time"
    assert not app.running
    wait([in_flight], timeout=5)  # the client ends with an error or a 5xx, no hang
    assert in_flight.done(), "the client of an in-flight request hung after stop"
    if in_flight.exception() is None:
        assert in_flight.result().status >= 500, in_flight.result()
    else:
        assert isinstance(in_flight.exception(), (OSError, http.client.HTTPException))

    port = app.start()
    assert_pings(port)
    release.set()  # the handler of the old server now finishes; serving goes on
    assert_pings(port)


# Bodies and volume ---------------------------------------------------------------


def test_body_over_max_body_size_is_413(make_app):
    application = make_app(max_body_size=1024)

    @application.post("/size")
    def size(body: bytes):
        return {"len": len(body)}

    port = application.start()
    reply = request(port, "POST", "/size", body=b"x" * 1024)
    assert (reply.status, json.loads(reply.body)) == (200, {"len": 1024})
    assert request(port, "POST", "/size", body=b"x" * 1025).status == 413
    assert request(port, "POST", "/size", body=b"x" * 4096).status == 413

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:  # no Content-Length: the limit still holds for a chunked body
        conn.request("POST", "/size", body=iter([b"y" * 1000, b"y" * 1000]), encode_chunked=True)
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    reply = request(port, "POST", "/size", body=b"ok")
    assert (reply.status, json.loads(reply.body)) == (200, {"len": 2})


@pytest.mark.parametrize("filler", ["bytes", "bytearray"])
def test_bodies_past_the_inline_size_reach_handlers_whole(make_app, monkeypatch, filler):
    # Over 64 KiB a body is held back by the library and copied once,
    # straight into the handler's bytes (or, where the interpreter has no
    # call for that, through a bytearray).
    from sufast import _native

    if filler == "bytearray":
        monkeypatch.setattr(_native, "_new_bytes", None)
    application = make_app()

    @application.post("/sync")
    def sync_digest(request: Request):
        body = request.body()
        return {"type": type(body).__name__, "len": len(body), "sha": hashlib.sha256(body).hexdigest()}

    @application.post("/async")
    async def async_digest(request: Request):
        body = await request.body()
        return {"type": type(body).__name__, "len": len(body), "sha": hashlib.sha256(body).hexdigest()}

    port = application.start()
    for size in (64 * 1024, 64 * 1024 + 1, 3 * 1024 * 1024 + 7):
        body = bytes(i % 253 for i in range(size))
        expected = {"type": "bytes", "len": size, "sha": hashlib.sha256(body).hexdigest()}
        for path in ("/sync", "/async"):
            reply = request(port, "POST", path, body=body)
            assert (reply.status, json.loads(reply.body)) == (200, expected), (path, size)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:  # a chunked body is held back the same way
        conn.request("POST", "/sync", body=iter([b"z" * 100_000] * 5), encode_chunked=True)
        reply = conn.getresponse()
        assert json.loads(reply.read())["len"] == 500_000
    finally:
        conn.close()


def test_2000_sequential_dynamic_requests_over_one_keep_alive_connection(app):
    @app.get("/echo/{i:int}")
    def echo(i: int, tag: str):
        return {"i": i, "tag": tag}

    port = app.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sock = None
        for i in range(2000):
            conn.request("GET", f"/echo/{i}?tag=t{i}")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, (i, body)
            assert json.loads(body) == {"i": i, "tag": f"t{i}"}
            sock = sock or conn.sock
            assert conn.sock is sock, f"the connection was not kept alive (request {i})"
    finally:
        conn.close()


def test_a_copy_older_than_stale_ttl_is_not_sent_while_it_re_renders(app, release):
    calls, refreshing, port = blocking_refresh(app, release, "/bounded", cache_ttl=0.2, stale_ttl=0.4)
    stored_by = time.monotonic()
    # Past stale_ttl: the old copy may no longer stand in for the render.
    wait_until(lambda: time.monotonic() > stored_by + 0.5, 2, "stale_ttl to pass")
    futures = [background(lambda: get_json(port, "/bounded")) for _ in range(5)]
    assert refreshing.wait(5)
    # A clock window in which a stale copy would have been sent at once.
    time.sleep(0.3)
    assert not any(f.done() for f in futures), "a copy past stale_ttl was sent"
    release.set()
    assert [f.result(timeout=5) for f in futures] == [(200, {"n": 2})] * 5
    assert calls.count == 2


def test_adding_a_route_while_serving_keeps_the_cached_responses(app):
    calls = Calls()
    app.get("/kept", cache_ttl=60)(lambda: {"n": calls.bump()})
    port = app.start()
    assert get_json(port, "/kept") == (200, {"n": 1})
    app.get("/new")(lambda: {"new": True})  # a new table swapped in
    assert get_json(port, "/new") == (200, {"new": True})
    assert get_json(port, "/kept") == (200, {"n": 1})
    assert calls.count == 1


def test_stale_ttl_is_checked_at_registration(app):
    with pytest.raises(ValueError, match="stale_ttl must be a number of seconds from cache_ttl"):
        app.get("/a", cache_ttl=5, stale_ttl=1)(lambda: 1)
    with pytest.raises(ValueError, match="need cache_ttl"):
        app.get("/b", stale_ttl=10)(lambda: 1)


def stuck_routes(make_app, **options):
    """An app whose /stuck/{n} handlers wait for ``release`` (``entered``
    counts them) beside a quick /users/{id}; returns (port, release, entered)."""
    application = make_app(**options)
    release = threading.Event()
    entered = Calls()

    @application.get("/stuck/{n:int}")
    def stuck(n: int):
        entered.bump()
        release.wait(20)
        return {"n": n}

    @application.get("/users/{user_id:int}")
    def user(user_id: int):
        return {"id": user_id}

    return application.start(), release, entered


def test_stuck_sync_handlers_do_not_stop_the_other_routes(make_app, caplog):
    port, release, entered = stuck_routes(make_app, threads=8, max_threads=64)
    try:
        held = [background(get_json, port, f"/stuck/{n}") for n in range(16)]
        wait_until(lambda: entered.count >= 8, 5, "8 handler threads to be stuck")
        # The pool grows past its 8 threads: other routes are served.
        started = time.monotonic()
        assert get_json(port, "/users/7") == (200, {"id": 7})
        assert time.monotonic() - started < 5
        wait_until(lambda: entered.count == 16, 10, "all 16 stuck requests to reach a handler")
        assert get_json(port, "/users/8") == (200, {"id": 8})
    finally:
        release.set()
    assert [f.result(timeout=10)[0] for f in held] == [200] * 16
    assert "all 8 handler threads are busy, 8 for over 1 s (GET /stuck/{n:int}" in caplog.text
    assert "starting another, up to max_threads=64" in caplog.text


def test_when_no_thread_may_start_requests_get_503_at_once(make_app, caplog):
    port, release, entered = stuck_routes(make_app, threads=2, max_threads=2)
    try:
        held = [background(get_json, port, f"/stuck/{n}") for n in range(2)]
        wait_until(lambda: entered.count == 2, 5, "both threads to be stuck")
        # Once the watchdog sees them stuck, new requests are refused at once.
        wait_until(lambda: "(max_threads) are busy" in caplog.text, 5, "the watchdog to see every thread stuck")
        started = time.monotonic()
        status, body = get_json(port, "/users/2")
        assert (status, body) == (503, {"detail": "Service Unavailable"})
        assert time.monotonic() - started < 1
    finally:
        release.set()
    assert [f.result(timeout=10)[0] for f in held] == [200, 200]
    wait_until(lambda: "a handler thread is free again" in caplog.text, 5, "the watchdog to see a free thread")
    assert get_json(port, "/users/3") == (200, {"id": 3})
    assert "all 2 handler threads (max_threads) are busy, 2 for over 1 s (GET /stuck/{n:int})" in caplog.text
