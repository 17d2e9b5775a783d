"""Precomputed routes: a zero-argument handler runs once at registration
and the server sends exactly what it returned, over real HTTP."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from conftest import request

from sufast import HTMLResponse, JSONResponse, PlainTextResponse, Request, Response, RouteError, RouteWarning, Sufast, SufastError


@pytest.mark.parametrize(
    "value, wire",
    [
        ({"hello": "world"}, b'{"hello":"world"}'),
        ([1, "two", 3.5, None, True], b'[1,"two",3.5,null,true]'),
        (42, b"42"),
        (0.1, b"0.1"),
        (False, b"false"),
        (None, b"null"),
        ({"n": 123456789012345678901234567890}, b'{"n":123456789012345678901234567890}'),
        ({"s": "héllo ✓ 😀"}, '{"s":"héllo ✓ 😀"}'.encode("utf-8")),
        ({"nested": {"a": [{"b": {}}]}}, b'{"nested":{"a":[{"b":{}}]}}'),
    ],
)
def test_values_are_served_as_compact_utf8_json_byte_exact(app, client, value, wire):
    app.get("/")(lambda: value)
    reply = client.get("/")
    assert reply.status_code == 200
    assert reply.headers.get("Content-Type") == "application/json"
    assert reply.content == wire
    assert reply.json() == value


def test_str_is_utf8_plain_text(app, client):
    app.get("/")(lambda: "héllo ✓")
    reply = client.get("/")
    assert reply.headers.get("Content-Type") == "text/plain; charset=utf-8"
    assert reply.content == "héllo ✓".encode("utf-8")


def test_bytes_are_octet_stream_byte_exact(app, client):
    payload = bytes(range(256))
    app.get("/blob")(lambda: payload)
    reply = client.get("/blob")
    assert reply.headers.get("Content-Type") == "application/octet-stream"
    assert reply.content == payload


def test_response_classes_set_status_type_and_headers(app, client):
    app.get("/html")(lambda: HTMLResponse("<b>é</b>", status_code=201))
    app.get("/text")(lambda: PlainTextResponse("plain"))
    app.get("/json")(lambda: JSONResponse({"a": 1}, status_code=202, headers={"X-Kind": "json"}))
    app.get("/raw")(lambda: Response(b"\x00\xff", media_type="image/png"))
    app.get("/bare")(lambda: Response("no type"))
    app.get("/empty")(lambda: Response(status_code=204))
    cookies = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; HttpOnly")]
    app.get("/cookies")(lambda: Response("ok", headers=cookies, media_type="text/plain"))

    reply = client.get("/html")
    assert (reply.status_code, reply.headers.get("Content-Type")) == (201, "text/html; charset=utf-8")
    assert reply.content == "<b>é</b>".encode("utf-8")
    assert client.get("/text").headers.get("Content-Type") == "text/plain; charset=utf-8"
    reply = client.get("/json")
    assert (reply.status_code, reply.content, reply.headers.get("X-Kind")) == (202, b'{"a":1}', "json")
    reply = client.get("/raw")
    assert (reply.headers.get("Content-Type"), reply.content) == ("image/png", b"\x00\xff")
    reply = client.get("/bare")
    assert reply.headers.get("Content-Type") is None
    assert reply.content == b"no type"
    reply = client.get("/empty")
    assert (reply.status_code, reply.content) == (204, b"")
    assert client.get("/cookies").headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_decorator_status_and_headers_apply(app, client):
    @app.post("/items", status_code=201, headers={"Location": "/items/1"})
    def create():
        return {"id": 1}

    @app.get("/override", headers={"X-A": "route", "X-B": "route"})
    def override():
        return Response("r", headers={"X-A": "response"})

    reply = client.post("/items")
    assert (reply.status_code, reply.headers.get("Location"), reply.content) == (201, "/items/1", b'{"id":1}')
    reply = client.get("/override")
    assert reply.headers.getlist("X-A") == ["response"]
    assert reply.headers.get("X-B") == "route"


def test_a_shared_response_does_not_carry_one_routes_headers_to_another(app, client):
    shared = PlainTextResponse("same")
    app.get("/a", headers={"X-Route": "a"})(lambda: shared)
    app.get("/b")(lambda: shared)
    assert client.get("/a").headers.get("X-Route") == "a"
    assert client.get("/b").headers.get("X-Route") is None
    assert shared.headers.items() == [("content-type", "text/plain; charset=utf-8")]


def test_every_method_decorator_registers_its_method(app, client):
    def returning(value):
        return lambda: value

    for method in ("get", "post", "put", "patch", "delete"):
        getattr(app, method)("/m")(returning(method))
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, "/m").content == method.lower().encode()


def test_handler_runs_once_at_registration(app, client):
    calls = []

    @app.get("/once")
    def once():
        calls.append(1)
        return {"calls": len(calls)}

    assert calls == [1]
    for _ in range(3):
        assert client.get("/once").content == b'{"calls":1}'
    assert calls == [1]


def test_async_handler_is_awaited_once(app, client):
    @app.get("/async")
    async def hello():
        return {"async": True}

    assert client.get("/async").content == b'{"async":true}'


def test_unserializable_result_is_a_type_error_naming_the_route(app):
    with pytest.raises(TypeError, match=r"route GET /bad: handler .*returned set value cannot be serialized"):
        app.get("/bad")(lambda: {1, 2})
    with pytest.raises(TypeError, match=r"route GET /nan:.*Out of range float"):
        app.get("/nan")(lambda: float("nan"))
    assert app.routes == []


def test_handler_that_raises_serves_500_and_warns(app, client):
    with pytest.warns(RouteWarning, match=r"route GET /boom: handler raised ValueError: no config"):

        @app.get("/boom")
        def boom():
            raise ValueError("no config")

    reply = client.get("/boom")
    assert reply.status_code == 500
    assert reply.headers.get("Content-Type") == "application/json"
    # The reason went to the RouteWarning; the body is a per-request 500's.
    assert reply.content == b'{"detail":"Internal Server Error"}'



def test_production_500_is_the_same(app):
    with pytest.warns(RouteWarning):
        app.get("/boom")(lambda: 1 / 0)
    port = app.start(production=True, host="127.0.0.1")
    reply = request(port, "GET", "/boom")
    assert (reply.status, reply.body) == (500, b'{"detail":"Internal Server Error"}')


def test_parameters_sufast_cannot_fill_are_refused_at_registration(app):
    with pytest.raises(TypeError, match=r"route GET /a: handler .*: query parameter 'q' has an unsupported type"):

        @app.get("/a")
        def unsupported(q: object):
            return q

    with pytest.raises(TypeError, match=r"route GET /b: handler .*: parameter 'rest' cannot be filled"):

        @app.get("/b")
        def variadic(*rest):
            return rest

    assert app.routes == []


@pytest.mark.parametrize(
    "path, headers, message",
    [
        ("users", None, r"route GET users: handler .*<lambda>: path must start with '/'"),
        ("/a/{id", None, r"route GET /a/\{id: handler .*: path segment"),
        ("/a/{id:bogus}", None, r"unknown convertor"),
        ("/x", {"X-A": "1\r\nX-Injected: 2"}, r"route GET /x: handler .*: header \"X-A\" has a value with CR, LF"),
        ("/x", {"Bad Name": "1"}, r"not a valid HTTP header name"),
        ("/x", {"Content-Length": "3"}, r"set by the server"),
    ],
)
def test_bad_routes_fail_at_registration_with_the_library_message(app, path, headers, message):
    ran = []
    with pytest.raises(RouteError, match=message):
        app.get(path, headers=headers)(lambda: ran.append(1))
    assert ran == [], "the handler must not run for a route that cannot be served"


def test_headers_may_be_any_mapping_or_pairs_of_str(app, client):
    from types import MappingProxyType

    app.get("/m", headers=MappingProxyType({"X-A": "1"}))(lambda: 1)
    app.get("/p", headers=[("X-B", "1"), ("X-B", "2")])(lambda: 1)
    with pytest.raises(TypeError, match="header names and values must be str"):
        app.get("/n", headers={"X-C": 3})(lambda: 1)
    assert client.get("/m").headers.get("X-A") == "1"
    assert client.get("/p").headers.getlist("X-B") == ["1", "2"]


def test_bad_header_in_returned_response_fails_at_registration(app):
    with pytest.raises(RouteError, match=r"route GET /r: handler .*<lambda>: header \"x-a\" has a value with CR, LF"):
        app.get("/r")(lambda: Response("x", headers={"X-A": "a\nb"}))


@pytest.mark.parametrize("status_code", [99, 600, "200", True])
def test_bad_status_codes_are_refused(app, status_code):
    with pytest.raises(RouteError, match="status"):
        app.get("/s", status_code=status_code)(lambda: 1)


@pytest.mark.parametrize(
    "path, fix",
    [
        ("/users/:id", r":id is Express's and Robyn's way to write a path parameter; write \{id\} \(or \{id:int\}\)"),
        ("/users/<int:id>", r"<int:id> is Flask's way to write a path parameter; write \{id:int\}"),
        ("/users/<id>", r"<id> is Flask's way to write a path parameter; write \{id\}"),
    ],
)
def test_path_parameters_written_as_other_frameworks_do_are_refused(app, path, fix):
    def show(id: int):
        return {"id": id}

    with pytest.raises(RouteError, match=r"route GET /users/.*: handler .*show: " + fix):
        app.get(path)(show)
    assert app.routes == []


def test_a_path_parameter_the_handler_does_not_take_is_refused(app, client):
    def show(user_id: int):
        return {"id": user_id}

    with pytest.raises(RouteError, match=r"route GET /m/\{id\}: handler .*show: path parameter 'id' is not a parameter of the handler; add id: str"):
        app.get("/m/{id}")(show)

    @app.get("/r/{id:int}")  # a handler that takes the request reads it there
    def raw(request: Request):
        return request.path_params

    assert client.get("/r/7").content == b'{"id":7}'


def test_duplicate_registration_is_refused_naming_both_handlers(app):
    def first():
        return 1

    def second():
        return 2

    app.get("/dup")(first)
    with pytest.raises(RouteError, match="route GET /dup: handler .*second: the route is already registered, by handler .*first"):
        app.get("/dup")(second)
    with pytest.raises(ValueError):  # a RouteError is a ValueError and a TypeError
        app.get("/dup")(second)


def test_conflicting_routes_fail_at_registration_naming_both_handlers(app):
    def by_id(id: int):
        return 1

    def by_name(name: str):
        return 2

    app.get("/u")(lambda: "a path inside the other's")
    app.get("/u/{id}")(by_id)
    with pytest.raises(RouteError, match=r"route GET /u/\{name\}: handler .*by_name: duplicates GET /u/\{id\} \(handler .*by_id\)"):
        app.get("/u/{name}")(by_name)
    assert [r.path for r in app.routes] == ["/u", "/u/{id}"]


def test_routes_added_while_running_are_served_at_once(app):
    app.get("/a")(lambda: "a")
    port = app.start()
    assert request(port, "GET", "/b").status == 404
    app.get("/b")(lambda: "b")
    assert request(port, "GET", "/b").body == b"b"
    assert app.port == port


def test_conflicting_route_added_while_running_is_refused_and_old_table_kept(app, client):
    app.get("/files/{name}", dynamic=True)(lambda name: "file")
    client.start()
    with pytest.raises(RouteError, match=r"conflicts with"):
        app.get("/files/{rest:path}")(lambda rest: "rest")
    assert [r.path for r in app.routes] == ["/files/{name}"]
    assert client.get("/files/x").content == b"file"


def test_not_found_method_not_allowed_and_head(app, client):
    app.get("/only-get")(lambda: {"k": "v"})
    reply = client.get("/missing")
    assert (reply.status_code, reply.content) == (404, b'{"detail": "Not Found"}')
    assert reply.headers.get("Content-Type") == "application/json"
    reply = client.delete("/only-get")
    assert (reply.status_code, reply.headers.get("Allow")) == (405, "GET, HEAD")
    reply = client.head("/only-get")
    assert (reply.status_code, reply.content, reply.headers.get("Content-Length")) == (200, b"", "9")


def test_sufast_is_the_seed_name_for_app():
    from sufast import App

    assert Sufast is App


ITEMS: list = []
SETTINGS = {"title": "shop"}
TITLE = "shop"
SIZES = ("s", "m", "l")


def listed_items():
    return ITEMS


def test_a_handler_that_reads_changing_state_is_named_at_registration(app, client):
    import random
    import time

    with pytest.warns(RouteWarning, match=r"route GET /items: handler .*items reads ITEMS, a list that can change after registration, but it runs once.*dynamic=True.*cache_ttl=seconds.*dynamic=False"):

        @app.get("/items")
        def items():
            return ITEMS

    with pytest.warns(RouteWarning, match=r"route GET /settings: .* reads SETTINGS, a dict"):
        app.get("/settings")(lambda: SETTINGS["title"])
    with pytest.warns(RouteWarning, match=r"route GET /now: .* calls time.time \(from time\), which is not known to give the same result"):
        app.get("/now")(lambda: {"at": time.time()})
    with pytest.warns(RouteWarning, match=r"route GET /pick: .* calls random.choice"):
        app.get("/pick")(lambda: random.choice(SIZES))
    with pytest.warns(RouteWarning, match=r"route GET /file: .* calls open\(\)"):
        app.get("/file")(lambda: open(__file__).read(10))
    with pytest.warns(RouteWarning, match=r"route GET /through: .* calls listed_items, which reads ITEMS, a list"):
        app.get("/through")(lambda: listed_items())

    # Constants, pure functions and responses made once stay quiet.
    page = HTMLResponse("<h1>shop</h1>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.get("/title")(lambda: {"title": TITLE, "sizes": sorted(SIZES), "n": len(SIZES)})
        app.get("/page")(lambda: page)
        app.get("/json")(lambda: json.dumps({"a": 1}))
        # dynamic=False: precomputed on purpose, no warning.
        app.get("/frozen", dynamic=False)(lambda: ITEMS)
        # The fixes the warning names.
        app.get("/live", dynamic=True)(lambda: ITEMS)
        app.get("/recent", cache_ttl=60)(lambda: ITEMS)
    client.start()
    ITEMS.append("new")
    try:
        assert client.get("/items").content == b"[]"
        assert client.get("/frozen").content == b"[]"
        assert client.get("/live").content == b'["new"]'
    finally:
        ITEMS.clear()


def test_start_logs_the_route_and_tier_table(app, caplog):
    app.get("/")(lambda: "stored")
    app.get("/users/{id:int}")(lambda id: id)
    with caplog.at_level("INFO", logger="sufast"):
        app.start()
    assert re.search(r"GET\s+/\s+static\n\s+GET\s+/users/\{id:int\}\s+dynamic", caplog.text), caplog.text
