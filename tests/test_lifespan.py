"""Start-up and shut-down code: lifespan context managers and on_startup /
on_shutdown hooks run on the app's loop before the server accepts and
after it stops; a failing start-up serves nothing."""

from __future__ import annotations

import contextlib
from typing import List

import pytest

from sufast import App, Request, _native
from sufast.testclient import TestClient


def test_lifespan_and_hooks_run_around_serving_in_order():
    events: List[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: App):
        events.append(f"enter, serving on port {_native.bound_port()}")
        app.state.db = {"users": ["ann"]}
        yield {"greeting": "hello"}
        events.append(f"exit, serving on port {_native.bound_port()}")

    async def warm_up():
        events.append("async startup")

    app = App(lifespan=lifespan, on_startup=[lambda: events.append("startup"), warm_up], on_shutdown=[lambda: events.append("shutdown")])

    @app.get("/users")
    def users(request: Request):
        return {"users": request.app.state.db["users"], "greeting": request.app.state.greeting}

    with TestClient(app) as client:
        assert events == ["startup", "async startup", "enter, serving on port 0"]
        assert client.get("/users").json() == {"users": ["ann"], "greeting": "hello"}
    assert events[3:] == ["exit, serving on port 0", "shutdown"]


def test_a_sync_lifespan_works_too():
    events: List[str] = []

    @contextlib.contextmanager
    def lifespan(app: App):
        events.append("enter")
        yield
        events.append("exit")

    app = App(lifespan=lifespan)
    app.get("/")(lambda: "up")
    with TestClient(app) as client:
        assert client.get("/").content == b"up"
    assert events == ["enter", "exit"]


def test_a_start_up_that_raises_makes_start_raise_and_nothing_is_served(caplog):
    attempts: List[int] = []

    def connect_database():
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database is down")

    app = App(on_startup=[connect_database])
    app.get("/")(lambda: "up")
    with pytest.raises(ConnectionError, match="database is down"):
        app.start()
    assert not app.running
    assert _native.bound_port() == 0, "nothing was bound"
    with TestClient(app) as client:  # the cause went away: it starts
        assert client.get("/").content == b"up"


def test_a_shut_down_that_raises_is_logged_and_the_stop_completes(caplog):
    def close_pool():
        raise RuntimeError("pool already closed")

    app = App(on_shutdown=[close_pool])
    app.get("/")(lambda: "up")
    app.start()
    app.stop(timeout=0)
    assert not app.running
    assert "an on_shutdown function raised" in caplog.text


def test_lifespan_and_hook_mistakes_raise_where_the_app_is_made():
    with pytest.raises(TypeError, match="on_startup must be a list of callables"):
        App(on_startup=["not callable"])
    with pytest.raises(TypeError, match="lifespan must be a callable"):
        App(lifespan=object())
