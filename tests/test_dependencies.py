"""Parameter markers (Header, Cookie, Query, Path) and dependencies
(Depends) over real HTTP: conversions, aliases, 422s naming what is
missing, one call per request, and generator clean-up after the response."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, List, Optional

import pytest

from sufast import Cookie, Depends, Header, HTTPException, Path, Query, Request, RouteError


def test_header_cookie_query_and_path_markers(app, client):
    @app.get("/items/{item_id}")
    def item(
        ident: int = Path(alias="item_id"),
        user_agent: str = Header(),
        x_tags: List[str] = Header([]),
        token: Optional[str] = Header(None, alias="X-Token"),
        session: str = Cookie("anonymous"),
        page_size: int = Query(20, alias="page-size"),
    ):
        return {"id": ident, "agent": user_agent, "tags": x_tags, "token": token, "session": session, "size": page_size}

    @app.get("/annotated")
    def annotated(limit: Annotated[int, Query(alias="max")] = 5, x_id: Annotated[int, Header()] = 0):
        return {"limit": limit, "id": x_id}

    reply = client.get("/items/7?page-size=3", headers={"User-Agent": "probe", "X-Token": "t"}, cookies={"session": "abc"})
    assert (reply.status_code, reply.json()) == (200, {"id": 7, "agent": "probe", "tags": [], "token": "t", "session": "abc", "size": 3})
    reply = client.get("/annotated?max=2", headers={"X-Id": "9"})
    assert (reply.status_code, reply.json()) == (200, {"limit": 2, "id": 9})
    reply = client.get("/annotated")
    assert (reply.status_code, reply.json()) == (200, {"limit": 5, "id": 0})

    # Missing and unconvertible ones are a 422 naming each, all at once.
    reply = client.get("/items/x?page-size=big")
    assert reply.status_code == 422
    assert reply.json()["detail"] == [
        {"type": "int_parsing", "loc": ["path", "item_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x"},
        {"type": "missing", "loc": ["header", "user-agent"], "msg": "Field required", "input": None},
        {"type": "int_parsing", "loc": ["query", "page-size"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "big"},
    ]


def test_a_dependency_runs_once_per_request_unless_use_cache_is_false(app, client):
    calls: List[str] = []

    def counter(request: Request) -> int:
        calls.append(request.path)
        return len(calls)

    def twice(a: int = Depends(counter), b: int = Depends(counter)):
        return (a, b)

    @app.get("/cached")
    def cached(pair=Depends(twice), again: int = Depends(counter)):
        return {"pair": pair, "again": again}

    @app.get("/fresh")
    def fresh(a: int = Depends(counter, use_cache=False), b: int = Depends(counter, use_cache=False)):
        return {"a": a, "b": b}

    for path, expected in [("/cached", {"pair": [1, 1], "again": 1}), ("/cached", {"pair": [2, 2], "again": 2}), ("/fresh", {"a": 3, "b": 4})]:
        reply = client.get(path)
        assert (reply.status_code, reply.json()) == (200, expected), "cached per request, not across"


def test_dependencies_take_the_parameters_handlers_take_and_can_refuse(app, client):
    def current_user(authorization: str = Header(), org: str = Path()) -> dict:
        if authorization != "Token good":
            raise HTTPException(401, "invalid token")
        return {"name": "ann", "org": org}

    @app.get("/orgs/{org}/me")
    def me(user: dict = Depends(current_user)):
        return user

    reply = client.get("/orgs/acme/me", headers={"Authorization": "Token good"})
    assert (reply.status_code, reply.json()) == (200, {"name": "ann", "org": "acme"})
    reply = client.get("/orgs/acme/me", headers={"Authorization": "Token bad"})
    assert (reply.status_code, reply.json()) == (401, {"detail": "invalid token"})
    reply = client.get("/orgs/acme/me")
    assert (reply.status_code, reply.json()) == (422, {"detail": [{"type": "missing", "loc": ["header", "authorization"], "msg": "Field required", "input": None}]})


def test_generator_clean_up_runs_after_the_response_is_sent_and_after_an_exception(app, client):
    events: List[str] = []
    release = threading.Event()
    cleaned = threading.Event()

    def connection():
        events.append("open")
        try:
            yield "conn"
        except ValueError as exc:
            events.append(f"saw {exc}")
            raise
        finally:
            release.wait(10)
            events.append("close")
            cleaned.set()

    @app.get("/ok")
    def ok(conn: str = Depends(connection)):
        return {"conn": conn}

    @app.get("/fails")
    def fails(conn: str = Depends(connection)):
        raise ValueError("boom")

    client.raise_server_exceptions = False  # the 500 is under test
    # The client has its answer while the clean-up still waits.
    reply = client.get("/ok")
    assert (reply.status_code, reply.json()) == (200, {"conn": "conn"})
    assert events == ["open"]
    release.set()
    assert cleaned.wait(5)
    assert events == ["open", "close"]

    cleaned.clear()
    assert client.get("/fails").status_code == 500
    assert cleaned.wait(5)
    assert events[2:] == ["open", "saw boom", "close"]


def test_async_dependencies_and_async_generators_in_an_async_handler(app, client):
    closed = threading.Event()

    async def settings() -> dict:
        await asyncio.sleep(0)
        return {"mode": "test"}

    async def session():
        try:
            yield "session"
        finally:
            closed.set()

    def sync_part(x_id: int = Header()) -> int:
        return x_id * 2

    @app.get("/async")
    async def handler(conf: dict = Depends(settings), s: str = Depends(session), doubled: int = Depends(sync_part)):
        return {"conf": conf, "s": s, "doubled": doubled}

    reply = client.get("/async", headers={"X-Id": "21"})
    assert (reply.status_code, reply.json()) == (200, {"conf": {"mode": "test"}, "s": "session", "doubled": 42})
    assert closed.wait(5)


def test_dependency_mistakes_raise_at_registration(app, client):
    async def async_dep() -> int:
        return 1

    def needs_async(v: int = Depends(async_dep)):
        return v

    def plain(v: int = Depends(needs_async)):
        return v

    with pytest.raises(RouteError, match=r"route GET /p: handler .*plain: a plain def handler cannot use an async dependency"):
        app.get("/p")(plain)

    def odd(value: set = Query()):
        return value

    with pytest.raises(RouteError, match=r"route GET /o: handler .*odd: query parameter 'value' has an unsupported type"):
        app.get("/o")(odd)

    def via(user: int = Depends(lambda user_id: int(user_id))):
        return user

    # A path parameter a dependency takes is a parameter of the handler.
    app.get("/u/{user_id}")(via)
    with pytest.raises(TypeError, match="Depends\\(\\) takes a callable"):
        Depends("not callable")  # type: ignore[arg-type]
    reply = client.get("/u/5")
    assert (reply.status_code, reply.json()) == (200, 5)
