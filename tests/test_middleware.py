"""HTTP middleware over real HTTP: order, sync and async on both kinds of
handler, short-circuits, replaced and edited responses, exceptions in
and around it, request state, the stored tiers left alone, and the
mistakes refused at registration."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sufast import App, BackgroundTasks, Depends, HTTPException, JSONResponse, PlainTextResponse, Request, Response, SufastError
from sufast.testclient import TestClient


def trail(name):
    """A middleware (async or not as the name ends) that adds ``name`` to
    ``X-Trail`` on the way in (request.state) and on the way out."""
    if name.endswith("async"):

        async def layer(request, call_next):
            request.state.trail = getattr_trail(request) + [name]
            response = await call_next(request)
            response.headers.append("X-Out", name)
            return response

    else:

        def layer(request, call_next):
            request.state.trail = getattr_trail(request) + [name]
            response = call_next(request)
            response.headers.append("X-Out", name)
            return response

    layer.__name__ = name
    return layer


def wait_for(condition, timeout=5.0):
    """Polls ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def getattr_trail(request):
    try:
        return request.state.trail
    except AttributeError:
        return []


@pytest.mark.parametrize("kinds", [("a-async", "b-async"), ("a-sync", "b-sync"), ("a-async", "b-sync"), ("a-sync", "b-async")])
def test_the_first_declared_runs_first_around_sync_and_async_handlers(kinds):
    app = App(middleware=[trail(kinds[0])])
    app.middleware("http")(trail(kinds[1]))

    @app.get("/sync/{n:int}")
    def sync_handler(n: int, request: Request):
        return {"n": n, "trail": request.state.trail, "thread": threading.current_thread().name}

    @app.get("/async/{n:int}")
    async def async_handler(n: int, request: Request):
        await asyncio.sleep(0)
        return {"n": n, "trail": request.state.trail, "thread": threading.current_thread().name}

    with TestClient(app) as client:
        for kind in ("sync", "async"):
            reply = client.get(f"/{kind}/7")
            body = reply.json()
            assert reply.status_code == 200, reply
            assert body["n"] == 7 and body["trail"] == list(kinds), body
            # Inner first on the way out.
            assert reply.headers.getlist("X-Out") == [kinds[1], kinds[0]]
            # An async handler always runs on the app's loop.
            assert (body["thread"] == "sufast-asyncio") == (kind == "async"), body


def test_a_middleware_may_answer_itself_replace_or_edit_the_response(app, client):
    called = []

    @app.middleware("http")
    async def gate(request, call_next):
        if request.headers.get("x-block"):
            return JSONResponse({"detail": "blocked"}, 403)
        response = await call_next(request)
        if request.query_params.get("replace"):
            return PlainTextResponse(f"replaced {response.status_code}", 202)
        response.headers["X-Seen"] = "yes"
        response.status_code = 201
        return response

    @app.get("/items/{n:int}")
    def item(n: int):
        called.append(n)
        return {"n": n}

    reply = client.get("/items/1", headers={"X-Block": "1"})
    assert (reply.status_code, reply.json()) == (403, {"detail": "blocked"})
    assert called == []
    reply = client.get("/items/2")
    assert (reply.status_code, reply.json(), reply.headers.get("X-Seen")) == (201, {"n": 2}, "yes")
    assert reply.headers.get("Content-Type") == "application/json"
    reply = client.get("/items/3?replace=1")
    assert (reply.status_code, reply.content, reply.headers.get("X-Seen")) == (202, b"replaced 200", None)
    assert called == [2, 3]


def test_a_response_the_handler_returns_again_is_not_changed_for_the_next_request(app, client):
    shared = PlainTextResponse("same")

    @app.middleware("http")
    def stamp(request, call_next):
        response = call_next(request)
        response.headers.append("X-Stamp", "1")
        return response

    app.get("/shared/{n:int}")(lambda n: shared)
    for n in range(3):
        assert client.get(f"/shared/{n}").headers.getlist("X-Stamp") == ["1"]
    assert "x-stamp" not in shared.headers


def test_static_and_cached_routes_are_served_without_middleware_unless_dynamic(app, client):
    seen = []

    @app.middleware("http")
    def count(request, call_next):
        seen.append(request.path)
        response = call_next(request)
        response.headers["X-Middleware"] = "1"
        return response

    app.get("/static")(lambda: "stored")
    app.get("/cached", cache_ttl=60)(lambda request: "kept")
    app.get("/forced", dynamic=True)(lambda: "each time")
    for path in ("/static", "/cached", "/static", "/cached"):
        reply = client.get(path)
        assert reply.status_code == 200 and reply.headers.get("X-Middleware") is None, path
    assert client.get("/forced").headers.get("X-Middleware") == "1"
    assert seen == ["/forced"]
    summary = app._route_summary()
    assert "/forced  dynamic + middleware" in summary
    assert "/static  static\n" in summary
    assert "middleware: count, around the dynamic routes; 2 static or cached routes are served without it" in summary


def test_exceptions_pass_through_middleware_as_starlette_does(app, client, caplog):
    class Unhandled(Exception):
        pass

    class Handled(Exception):
        pass

    @app.exception_handler(Handled)
    def handled(request, exc):
        return JSONResponse({"handled": str(exc)}, 409)

    @app.middleware("http")
    async def guard(request, call_next):
        if request.path == "/mw-http":
            raise HTTPException(401, "login first")
        if request.path == "/mw-handled":
            raise Handled("by middleware")
        if request.path == "/mw-bug":
            raise RuntimeError("middleware bug")
        try:
            response = await call_next(request)
        except Unhandled:
            if request.query_params.get("catch"):
                return PlainTextResponse("caught", 503)
            raise
        response.headers["X-Status-Seen"] = str(response.status_code)
        return response

    @app.get("/{what}")
    def fail(what: str):
        if what == "http":
            raise HTTPException(404, "no such thing")
        if what == "handled":
            raise Handled("by handler")
        if what == "unhandled":
            raise Unhandled("boom")
        return "ok"

    client.raise_server_exceptions = False  # the 500s are under test
    reply = client.get("/http")
    # The HTTPException's response passes through the middleware.
    assert (reply.status_code, reply.json(), reply.headers.get("X-Status-Seen")) == (404, {"detail": "no such thing"}, "404")
    reply = client.get("/handled")
    assert (reply.status_code, reply.json(), reply.headers.get("X-Status-Seen")) == (409, {"handled": "by handler"}, "409")
    reply = client.get("/unhandled?catch=1")
    assert (reply.status_code, reply.content) == (503, b"caught")
    reply = client.get("/unhandled")
    assert (reply.status_code, reply.json()) == (500, {"detail": "Internal Server Error"})
    assert "route GET /{what}: handler raised Unhandled; the client got a 500" in caplog.text
    reply = client.get("/mw-http")
    assert (reply.status_code, reply.json()) == (401, {"detail": "login first"})
    reply = client.get("/mw-handled")
    assert (reply.status_code, reply.json()) == (409, {"handled": "by middleware"})
    reply = client.get("/mw-bug")
    assert (reply.status_code, reply.json()) == (500, {"detail": "Internal Server Error"})
    assert "route GET /{what}: middleware raised RuntimeError; the client got a 500" in caplog.text
    assert client.get("/fine").status_code == 200


def test_a_middleware_that_returns_no_response_gets_its_client_a_500(app, client, caplog):
    @app.middleware("http")
    def forgetful(request, call_next):
        call_next(request)

    app.get("/x/{n:int}")(lambda n: n)
    client.raise_server_exceptions = False  # the 500 is under test
    reply = client.get("/x/1")
    assert (reply.status_code, reply.json()) == (500, {"detail": "Internal Server Error"})
    assert "route GET /x/{n:int}: middleware forgetful returned NoneType, not a Response; the client got a 500" in caplog.text


def test_async_middleware_that_waits_around_a_sync_handler(app, client):
    @app.middleware("http")
    async def slow(request, call_next):
        await asyncio.sleep(0.01)
        body = await request.body()
        response = await call_next(request)
        await asyncio.sleep(0)
        response.headers["X-Body-Length"] = str(len(body))
        return response

    @app.post("/echo/{n:int}")
    def echo(n: int, request: Request):
        # The handler reads the body its own way, and may run a loop.
        return {"n": n, "body": request.body().decode(), "ran": asyncio.run(asyncio.sleep(0, "loop"))}

    reply = client.post("/echo/5", content=b"hello")
    assert (reply.status_code, reply.json()) == (200, {"n": 5, "body": "hello", "ran": "loop"})
    assert reply.headers.get("X-Body-Length") == "5"


def test_dependencies_and_background_tasks_still_run_after_the_response(app, client):
    events = []
    done = threading.Event()

    def db():
        events.append("open")
        yield "conn"
        events.append("close")

    async def adb():
        events.append("aopen")
        yield "aconn"
        events.append("aclose")
        done.set()

    @app.middleware("http")
    def plain(request, call_next):
        return call_next(request)

    @app.get("/sync/{n:int}")
    def sync_route(n: int, tasks: BackgroundTasks, conn=Depends(db)):
        tasks.add_task(events.append, "task")
        return conn

    @app.get("/async/{n:int}")
    async def async_route(n: int, tasks: BackgroundTasks, conn=Depends(adb)):
        tasks.add_task(events.append, "atask")
        return conn

    assert client.get("/async/1").content == b"aconn"
    assert done.wait(5)
    assert events == ["aopen", "atask", "aclose"]
    events.clear()
    done.clear()

    assert client.get("/sync/1").content == b"conn"
    assert wait_for(lambda: events == ["open", "task", "close"]), events


def test_middleware_registered_after_the_routes_covers_them(app, client):
    app.get("/early/{n:int}")(lambda n: n)

    @app.middleware("http")
    async def late(request, call_next):
        response = await call_next(request)
        response.headers["X-Late"] = "1"
        return response

    assert client.get("/early/1").headers.get("X-Late") == "1"


def test_middleware_mistakes_are_refused_when_registered(app):
    with pytest.raises(ValueError, match="middleware kind must be 'http', got 'websocket'"):
        app.middleware("websocket")
    with pytest.raises(TypeError, match=r"middleware one must take \(request, call_next\), but its signature is \(request\)"):

        @app.middleware("http")
        def one(request):
            return None

    with pytest.raises(TypeError, match="middleware must be a function taking"):
        App(middleware=["not callable"])
    app.get("/")(lambda: "x")
    app.start()
    with pytest.raises(SufastError, match="middleware cannot be added while the app is serving"):
        app.middleware("http")(lambda request, call_next: call_next(request))


def test_a_middleware_sees_what_a_response_object_holds(app, client):
    @app.middleware("http")
    async def inspect_response(request, call_next):
        response = await call_next(request)
        assert isinstance(response, Response)
        response.headers["X-Type"] = type(response).__name__
        response.headers["X-Body"] = response.body.decode()
        return response

    app.get("/json/{n:int}")(lambda n: {"n": n})
    app.get("/text/{n:int}")(lambda n: f"n={n}")
    reply = client.get("/json/1")
    assert (reply.headers.get("X-Type"), reply.headers.get("X-Body"), reply.headers.get("Content-Type")) == ("JSONResponse", '{"n":1}', "application/json")
    reply = client.get("/text/2")
    assert (reply.headers.get("X-Type"), reply.headers.get("X-Body")) == ("PlainTextResponse", "n=2")
    assert reply.headers.get("Content-Type") == "text/plain; charset=utf-8"


def test_plain_def_code_after_an_async_middleware_may_run_a_loop_of_its_own(make_app):
    # One handler thread: every request below runs on the thread the
    # async middleware ran on.
    app = make_app(threads=1)
    ran = []

    @app.middleware("http")
    async def passthrough(request, call_next):
        await asyncio.sleep(0)
        return await call_next(request)

    async def later(n):
        await asyncio.sleep(0)
        ran.append(n)

    def task():
        ran.append(asyncio.run(asyncio.sleep(0, "sync task")))

    @app.get("/through/{n:int}")
    def through(n: int, tasks: BackgroundTasks):
        tasks.add_task(later, n)
        tasks.add_task(task)
        return asyncio.run(asyncio.sleep(0, n))

    # A cached route's handler runs without middleware, on the same thread.
    app.get("/cached", cache_ttl=60)(lambda request: asyncio.run(asyncio.sleep(0, "cached")))
    with TestClient(app) as client:
        assert client.get("/through/1").content == b"1"
        assert client.get("/cached").content == b"cached"
        assert client.get("/through/2").content == b"2"
        assert wait_for(lambda: ran == [1, "sync task", 2, "sync task"]), ran
