"""The TestClient against the real server: requests, bodies, cookies kept
across requests, lifespan on enter and exit, server exceptions raised in
the test, and one app served at a time."""

from __future__ import annotations

import contextlib

import pytest

from sufast import App, HTTPException, Request, Response, SufastError
from sufast.testclient import TestClient


def make_app() -> App:
    app = App()

    @app.get("/items/{n:int}")
    def item(n: int, request: Request, q: str = ""):
        return {"n": n, "q": q, "tags": request.query_params.getlist("tag"), "agent": request.headers.get("x-agent")}

    @app.post("/echo")
    def echo(request: Request):
        return {"type": request.headers.get("content-type"), "body": request.body().decode()}

    @app.post("/login")
    def login():
        response = Response("in")
        response.set_cookie("session", "abc")
        return response

    @app.post("/logout")
    def logout():
        response = Response("out")
        response.delete_cookie("session")
        return response

    @app.get("/whoami")
    def whoami(request: Request):
        return {"cookies": request.cookies}

    @app.get("/boom/{n:int}")
    def boom(n: int):
        raise ZeroDivisionError(f"boom {n}")

    @app.get("/missing/{n:int}")
    def missing(n: int):
        raise HTTPException(404, "no such item")

    return app


def test_requests_reach_the_real_server_and_responses_read_as_expected():
    with TestClient(make_app(), headers={"X-Agent": "tests"}) as client:
        response = client.get("/items/3?tag=a", params={"q": "x", "tag": ["b", "c"]})
        assert response.status_code == 200 and response.is_success
        assert response.json() == {"n": 3, "q": "x", "tags": ["a", "b", "c"], "agent": "tests"}
        assert response.headers["Content-Type"] == response.headers["content-type"] == "application/json"
        assert response.url == "http://testserver/items/3?tag=a&q=x&tag=b&tag=c"
        # An absolute URL on the client's base works too.
        assert client.get("http://testserver/items/4").json()["n"] == 4
        reply = client.post("/echo", json={"a": [1, 2]})
        assert reply.json() == {"type": "application/json", "body": '{"a":[1,2]}'}
        reply = client.post("/echo", data={"name": "ann", "tag": ["x", "y"]})
        assert reply.json() == {"type": "application/x-www-form-urlencoded", "body": "name=ann&tag=x&tag=y"}
        reply = client.post("/echo", data={"title": "t"}, files={"upload": ("a.txt", b"hello", "text/plain")})
        sent = reply.json()
        assert sent["type"].startswith("multipart/form-data; boundary=")
        assert 'name="upload"; filename="a.txt"' in sent["body"] and "hello" in sent["body"] and 'name="title"' in sent["body"]
        assert client.post("/echo", content=b"raw").json()["body"] == "raw"
        missing = client.get("/missing/1")
        assert (missing.status_code, missing.json()) == (404, {"detail": "no such item"})
        assert client.head("/items/1").content == b""
        with pytest.raises(TypeError, match="give one body"):
            client.post("/echo", json={}, content=b"x")
        with pytest.raises(ValueError, match="sends requests to its app only"):
            client.get("http://elsewhere.example/items/1")


def test_cookies_are_kept_sent_back_and_forgotten():
    with TestClient(make_app()) as client:
        assert client.get("/whoami").json() == {"cookies": {}}
        login = client.post("/login")
        assert login.cookies == {"session": "abc"}
        assert client.cookies == {"session": "abc"}
        assert client.get("/whoami").json() == {"cookies": {"session": "abc"}}
        assert client.get("/whoami", cookies={"extra": "1"}).json() == {"cookies": {"session": "abc", "extra": "1"}}
        client.post("/logout")
        assert client.cookies == {}
        assert client.get("/whoami").json() == {"cookies": {}}


def test_lifespan_runs_on_enter_and_exit():
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("start")
        yield {"db": "ready"}
        events.append("stop")

    app = App(lifespan=lifespan)
    app.get("/db/{n:int}")(lambda n, request: request.app.state.db)
    client = TestClient(app)
    assert events == []
    with client:
        assert events == ["start"]
        assert client.get("/db/1").text == "ready"
    assert events == ["start", "stop"]
    assert not app.running


def test_a_server_exception_is_raised_in_the_test_unless_asked_not_to():
    app = make_app()
    with TestClient(app) as client:
        with pytest.raises(ZeroDivisionError, match="boom 1"):
            client.get("/boom/1")
        # The server keeps serving, and the next request is unaffected.
        assert client.get("/items/1").status_code == 200
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom/2")
        assert (response.status_code, response.json()) == (500, {"detail": "Internal Server Error"})


def test_a_response_that_cannot_be_sent_is_raised_in_the_test_too():
    app = App()
    app.get("/object")(lambda request: object())
    app.get("/crlf")(lambda request: Response("x", headers={"X-A": "a\r\nX-B: 1"}))

    @app.middleware("http")
    def forgetful(request, call_next):
        response = call_next(request)
        return None if request.path == "/none" else response

    app.get("/none")(lambda request: 1)
    with TestClient(app) as client:
        with pytest.raises(TypeError, match="cannot be serialized to JSON"):
            client.get("/object")
        with pytest.raises(ValueError, match="CR, LF"):
            client.get("/crlf")
        with pytest.raises(TypeError, match="middleware forgetful returned NoneType"):
            client.get("/none")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [client.get(p).status_code for p in ("/object", "/crlf", "/none")] == [500, 500, 500]


def test_clients_one_after_another_and_one_app_at_a_time():
    for n in range(3):
        with TestClient(make_app()) as client:
            assert client.get(f"/items/{n}").json()["n"] == n
    first = TestClient(make_app())
    with first:
        with pytest.raises(SufastError, match="TestClient: an App is already being served on port .*close the other TestClient"):
            TestClient(make_app()).start()
    # Without `with`, the first request starts the app and close() stops it.
    client = TestClient(make_app())
    assert client.get("/items/9").json()["n"] == 9
    assert client.app.running
    client.close()
    assert not client.app.running
    with pytest.raises(TypeError, match="TestClient takes a sufast App"):
        TestClient(object())
