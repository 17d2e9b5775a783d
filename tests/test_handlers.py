"""Per-request handlers: parameters, the Request object, return values and
errors, all over real HTTP against a running server.

No ``from __future__ import annotations`` here on purpose: the handlers'
annotations must be real types, which is what the spec describes."""

import http.client
import json
import uuid
from typing import List, Optional

import pytest
from conftest import Reply, raw, request

from sufast import (
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    Response,
)
from sufast.testclient import TestClient


def send(port, method, path, headers=(), body=None):
    """Sends ``headers`` pairs exactly as given (repeats included); returns
    the Reply and the client's local port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        local_port = conn.sock.getsockname()[1]
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read()), local_port
    finally:
        conn.close()


def loads(reply):
    assert reply.headers.get("Content-Type") == "application/json", reply
    return reply.json()


def error_items(reply, status=422):
    assert reply.status_code == status, reply
    return loads(reply)["detail"]


# Path parameters -------------------------------------------------------------


def test_path_convertors_convert_and_a_mismatch_is_404(app, client):
    app.get("/int/{id:int}")(lambda id: [id, type(id).__name__])
    app.get("/float/{v:float}")(lambda v: [v, type(v).__name__])
    app.get("/uuid/{u:uuid}")(lambda u: [str(u), type(u).__name__])
    app.get("/files/{rest:path}")(lambda rest: [rest])
    app.get("/plain/{x}")(lambda x: [x, type(x).__name__])
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")

    assert loads(client.get("/int/42")) == [42, "int"]
    assert loads(client.get("/float/1.5")) == [1.5, "float"]
    assert loads(client.get(f"/uuid/{value}")) == [str(value), "UUID"]
    assert loads(client.get("/files/a/b/c.txt")) == ["a/b/c.txt"]
    assert loads(client.get("/plain/abc")) == ["abc", "str"]
    for path in ("/int/abc", "/int/4.2", "/float/abc", "/uuid/not-a-uuid"):
        assert client.get(path).status_code == 404, path


def test_annotation_converts_an_untyped_path_param_or_422_names_it(app, client):
    def annotated(x: int):
        return [x, type(x).__name__]

    app.get("/ann/{x}")(annotated)
    assert loads(client.get("/ann/7")) == [7, "int"]
    [item] = error_items(client.get("/ann/abc"))
    assert item["loc"] == ["path", "x"]
    assert item["input"] == "abc"
    assert isinstance(item["msg"], str) and item["msg"]


# Query parameters --------------------------------------------------------------


def test_query_params_defaults_conversion_and_last_value_wins(app, client):
    def search(q: str = "all", limit: int = 10, ratio: float = 0.5, tag: Optional[str] = None):
        return {"q": q, "limit": limit, "ratio": ratio, "tag": tag}

    app.get("/search")(search)
    assert loads(client.get("/search")) == {"q": "all", "limit": 10, "ratio": 0.5, "tag": None}
    got = loads(client.get("/search?q=a%20b&limit=3&ratio=0.25&tag=t"))
    assert got == {"q": "a b", "limit": 3, "ratio": 0.25, "tag": "t"}
    assert loads(client.get("/search?limit=1&limit=2"))["limit"] == 2
    [item] = error_items(client.get("/search?limit=ten"))
    assert (item["loc"], item["input"]) == (["query", "limit"], "ten")


def test_required_query_param_missing_is_422_in_fastapis_shape(app, client):
    app.get("/need")(lambda verbose: [verbose])
    [item] = error_items(client.get("/need"))
    assert item == {"type": "missing", "loc": ["query", "verbose"], "msg": "Field required", "input": None}
    assert loads(client.get("/need?verbose=x")) == ["x"]


@pytest.mark.parametrize(
    "raw_value, expected",
    [("true", True), ("True", True), ("1", True), ("yes", True), ("ON", True),
     ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False)],
)
def test_bool_query_param_parsing(app, client, raw_value, expected):
    def flag(verbose: bool):
        return [verbose, type(verbose).__name__]

    app.get("/flag")(flag)
    assert loads(client.get(f"/flag?verbose={raw_value}")) == [expected, "bool"]
    [item] = error_items(client.get("/flag?verbose=maybe"))
    assert (item["loc"], item["input"]) == (["query", "verbose"], "maybe")


def test_optional_and_list_query_params(app, client):
    def opt(n: Optional[int] = None):
        return {"n": n}

    def many(ids: List[int], tags: List[str] = []):  # noqa: B006 - read only
        return {"ids": ids, "tags": tags}

    app.get("/opt")(opt)
    app.get("/many")(many)
    assert loads(client.get("/opt")) == {"n": None}
    assert loads(client.get("/opt?n=3")) == {"n": 3}
    assert loads(client.get("/many?ids=1&ids=2&ids=3")) == {"ids": [1, 2, 3], "tags": []}
    assert loads(client.get("/many?tags=a&ids=5&tags=b")) == {"ids": [5], "tags": ["a", "b"]}
    [item] = error_items(client.get("/many?ids=1&ids=x"))
    assert item["loc"][:2] == ["query", "ids"]
    [item] = error_items(client.get("/many"))
    assert item["loc"] == ["query", "ids"]


# The Request object ------------------------------------------------------------


def test_request_method_url_path_and_query_params(app, client):
    @app.put("/req/{id:int}/{name}")
    def inspect_request(request: Request):
        qp = request.query_params
        return {
            "method": request.method, "url": request.url, "path": request.path,
            "path_params": request.path_params, "id_type": type(request.path_params["id"]).__name__,
            "x": qp["x"], "x_all": qp.getlist("x"), "z": qp.get("z", "default"),
            "in": ["y" in qp, "z" in qp], "keys": sorted(set(qp)), "multi": qp.multi_items(),
        }

    target = "/req/7/caf%C3%A9%20x?x=1&x=2&y=a%20b"
    got = loads(client.put(target))
    assert got == {
        "method": "PUT", "url": f"http://testserver{target}", "path": "/req/7/café x",
        "path_params": {"id": 7, "name": "café x"}, "id_type": "int",
        "x": "2", "x_all": ["1", "2"], "z": "default",
        "in": [True, False], "keys": ["x", "y"], "multi": [["x", "1"], ["x", "2"], ["y", "a b"]],
    }


def test_request_headers_cookies_and_client(app):
    @app.get("/headers")
    def headers(request):  # by name, no annotation
        h = request.headers
        return {
            "first": h["x-tag"], "upper": h.get("X-TAG"), "all": h.getlist("X-Tag"),
            "missing": h.get("x-none", "dflt"), "other": h["X-OTHER"],
            "tags": [list(p) for p in h.items() if p[0] == "x-tag"],
            "lower": all(k == k.lower() for k in h.keys()) and all(n == n.lower() for n, _ in h.items()),
            "cookies": request.cookies, "client": [request.client.host, request.client.port],
        }

    port = app.start()
    sent = [("X-Tag", "one"), ("X-Other", "o"), ("X-Tag", "two"), ("Cookie", "session=abc; theme=dark")]
    reply, local_port = send(port, "GET", "/headers", sent)
    assert reply.header("Content-Type") == "application/json", reply
    assert json.loads(reply.body) == {
        "first": "one", "upper": "one", "all": ["one", "two"], "missing": "dflt", "other": "o",
        "tags": [["x-tag", "one"], ["x-tag", "two"]], "lower": True,
        "cookies": {"session": "abc", "theme": "dark"}, "client": ["127.0.0.1", local_port],
    }


def test_request_body_text_and_json(app, client):
    @app.post("/body")
    def body(request: Request):
        return {"len": len(request.body()), "type": type(request.body()).__name__,
                "text": request.text(), "json": request.json()}

    payload = '{"name": "café"}'.encode("utf-8")
    got = loads(client.post("/body", content=payload, headers={"Content-Type": "application/json"}))
    assert got == {"len": len(payload), "type": "bytes", "text": '{"name": "café"}', "json": {"name": "café"}}


# Bodies: JSON and bytes round trips --------------------------------------------

ROUND_TRIP = {
    "int": 1, "neg": -7, "big": 123456789012345678901234567890, "float": 0.1, "whole": 1.0,
    "true": True, "false": False, "null": None, "nested": {"a": [1, {"b": []}, "c"]},
    "unicode": "héllo ✓ 😀", "escapes": 'a"b\\c\n',
}
ROUND_TRIP_WIRE = json.dumps(ROUND_TRIP, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_json_types_survive_a_round_trip_byte_exact(app, client):
    app.post("/echo")(lambda request: request.json())

    async def echo_async(request: Request):
        return await request.json()

    app.post("/echo-async")(echo_async)
    app.post("/types")(lambda request: {k: type(v).__name__ for k, v in request.json().items()})
    for path in ("/echo", "/echo-async"):
        reply = client.post(path, content=ROUND_TRIP_WIRE)
        assert (reply.status_code, reply.content) == (200, ROUND_TRIP_WIRE), path
    assert loads(client.post("/types", content=ROUND_TRIP_WIRE)) == {
        "int": "int", "neg": "int", "big": "int", "float": "float", "whole": "float",
        "true": "bool", "false": "bool", "null": "NoneType", "nested": "dict",
        "unicode": "str", "escapes": "str",
    }


def test_binary_and_one_megabyte_bodies_round_trip(app, client):
    def echo_param(body: bytes):
        return body

    app.post("/param")(echo_param)
    app.post("/request")(lambda request: Response(request.body(), media_type="application/octet-stream"))
    every_byte = bytes(range(256))
    megabyte = bytes(range(256)) * 4096
    for path in ("/param", "/request"):
        for payload in (every_byte, megabyte):
            reply = client.post(path, content=payload)
            assert reply.status_code == 200
            assert reply.headers.get("Content-Type") == "application/octet-stream"
            assert len(reply.content) == len(payload) and reply.content == payload, path


def test_invalid_json_is_400_and_dict_param_gets_the_json_body(app, client):
    app.post("/echo")(lambda request: request.json())

    def create(item: dict):
        return {"received": item}

    app.post("/items")(create)
    for path in ("/echo", "/items"):
        reply = client.post(path, content=b'{"unterminated": ')
        assert reply.status_code == 400, path
        assert isinstance(loads(reply)["detail"], str)
    assert loads(client.post("/items", content=b'{"a": [1, 2]}')) == {"received": {"a": [1, 2]}}
    [item] = error_items(client.post("/items", content=b"[1, 2]"))
    assert item["loc"][0] == "body"


# Return values -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, status, content_type, wire",
    [
        ({"a": 1, "b": [True, None]}, 200, "application/json", b'{"a":1,"b":[true,null]}'),
        ([1, "two", 3.5], 200, "application/json", b'[1,"two",3.5]'),
        (42, 200, "application/json", b"42"),
        (2.5, 200, "application/json", b"2.5"),
        (True, 200, "application/json", b"true"),
        (None, 200, "application/json", b"null"),
        ("héllo ✓", 200, "text/plain; charset=utf-8", "héllo ✓".encode("utf-8")),
        (b"\x00\x01\xff", 200, "application/octet-stream", b"\x00\x01\xff"),
        (Response(b"PNG", media_type="image/png"), 200, "image/png", b"PNG"),
        (JSONResponse({"k": "v"}, status_code=201), 201, "application/json", b'{"k":"v"}'),
        (HTMLResponse("<p>é</p>"), 200, "text/html; charset=utf-8", "<p>é</p>".encode("utf-8")),
        (PlainTextResponse("plain", status_code=202), 202, "text/plain; charset=utf-8", b"plain"),
    ],
)
def test_return_values_of_a_dynamic_handler(app, client, value, status, content_type, wire):
    app.get("/v")(lambda request: value)
    reply = client.get("/v")
    assert (reply.status_code, reply.headers.get("Content-Type"), reply.content) == (status, content_type, wire)


@pytest.mark.parametrize("given, expected", [(None, 307), (301, 301), (302, 302)])
def test_redirect_response(app, client, given, expected):
    kwargs = {} if given is None else {"status_code": given}
    app.get("/old/{id:int}")(lambda id: RedirectResponse(f"/new/{id}", **kwargs))
    reply = client.get("/old/5")
    assert (reply.status_code, reply.headers.get("Location"), reply.content) == (expected, "/new/5", b"")


def test_decorator_status_code_and_headers_apply_to_plain_values(app, client):
    app.post("/made/{id:int}", status_code=201, headers={"X-Route": "made"})(lambda id: {"id": id})
    app.get("/resp/{id:int}", status_code=201)(lambda id: PlainTextResponse("own"))
    reply = client.post("/made/3")
    assert (reply.status_code, reply.headers.get("X-Route"), reply.content) == (201, "made", b'{"id":3}')
    assert client.get("/resp/1").status_code == 200


def test_status_names_its_codes_and_serves_as_a_status_code(app, client):
    from sufast import status

    names = [name for name in dir(status) if name.startswith("HTTP_")]
    assert len(names) > 60 and sorted(names) == sorted(status.__all__)
    for name in names:
        assert getattr(status, name) == int(name.split("_")[1]), name
    assert (status.HTTP_201_CREATED, status.HTTP_422_UNPROCESSABLE_ENTITY) == (201, 422)

    @app.post("/made", status_code=status.HTTP_201_CREATED)
    def made(body: dict):
        return body

    assert client.post("/made", content=b"{}").status_code == 201


@pytest.mark.parametrize("status", [204, 304])
def test_a_status_with_no_body_sends_none_whatever_is_returned(app, client, status):
    @app.delete("/items/{item_id:int}", status_code=status, headers={"X-Route": "gone"})
    def delete(item_id: int):
        return None

    @app.get("/ping", status_code=status)  # precomputed
    def ping():
        return {"ignored": True}

    for method, path in (("DELETE", "/items/1"), ("GET", "/ping")):
        reply = client.request(method, path)
        assert (reply.status_code, reply.content, reply.headers.get("Content-Type")) == (status, b"", None), (method, path)
    assert client.delete("/items/2").headers.get("X-Route") == "gone"


def test_response_headers_change_in_place(app, client):
    def edited(request):
        response = JSONResponse({"ok": True}, headers={"X-Gone": "1", "X-Twice": "a"})
        response.headers["X-Set"] = "set"
        response.headers.append("X-Twice", "b")
        del response.headers["x-gone"]
        response.headers.setdefault("X-Set", "ignored")
        assert response.headers["content-type"] == "application/json"
        assert "X-SET" in response.headers and "x-gone" not in response.headers
        return response

    app.get("/edited/{n:int}")(lambda n: edited(None))
    reply = client.get("/edited/1")
    assert reply.status_code == 200 and reply.json() == {"ok": True}
    assert reply.headers.get("X-Set") == "set" and reply.headers.get("X-Gone") is None
    assert reply.headers.getlist("X-Twice") == ["a", "b"]
    assert reply.headers.get("Content-Type") == "application/json"


def test_response_headers_refuse_what_is_not_str():
    response = Response("x")
    with pytest.raises(TypeError, match="header names and values must be str"):
        response.headers["X-N"] = 3
    with pytest.raises(KeyError):
        del response.headers["x-missing"]
    assert response.headers.pop("x-missing", None) is None


def test_several_set_cookie_headers(app, client):
    pairs = [("Set-Cookie", "x=1; Path=/"), ("Set-Cookie", "y=2; HttpOnly")]
    app.get("/listed/{n:int}")(lambda n: Response("ok", headers=pairs, media_type="text/plain"))

    def set_cookies(request):
        response = PlainTextResponse("ok")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2", max_age=60, httponly=True, secure=True)
        return response

    app.get("/set")(set_cookies)
    assert client.get("/listed/1").headers.getlist("Set-Cookie") == ["x=1; Path=/", "y=2; HttpOnly"]
    first, second = client.get("/set").headers.getlist("Set-Cookie")
    assert first.startswith("a=1;") and "path=/" in first.lower() and "samesite=lax" in first.lower()
    assert "httponly" not in first.lower()
    assert second.startswith("b=2;")
    for part in ("max-age=60", "httponly", "secure", "path=/"):
        assert part in second.lower(), (part, second)


# Errors ------------------------------------------------------------------------


def test_http_exception_detail_headers_and_default_detail(app, client):
    def item(id: int):
        if id == 0:
            raise HTTPException(404, detail="no item 0", headers={"X-Error": "missing"})
        raise HTTPException(403)

    app.get("/item/{id:int}")(item)
    reply = client.get("/item/0")
    assert (reply.status_code, loads(reply), reply.headers.get("X-Error")) == (404, {"detail": "no item 0"}, "missing")
    reply = client.get("/item/1")
    assert (reply.status_code, loads(reply)) == (403, {"detail": "Forbidden"})


def test_unhandled_exception_is_a_bare_500_logged_not_sent(app, client, capfd, caplog):
    def boom(id: int):
        raise ValueError(f"secret-token-{id}")

    app.get("/boom/{id:int}")(boom)
    app.get("/ok/{id:int}")(lambda id: {"ok": id})
    client.raise_server_exceptions = False  # the 500 is under test
    reply = client.get("/boom/42")
    assert reply.status_code == 500
    assert loads(reply) == {"detail": "Internal Server Error"}
    wire = reply.content + repr(reply.headers.items()).encode()
    for leak in (b"secret-token", b"ValueError", b"Traceback"):
        assert leak not in wire
    assert loads(client.get("/ok/1")) == {"ok": 1}
    logged = capfd.readouterr().err + caplog.text
    assert "Traceback" in logged and "ValueError: secret-token-42" in logged


def _crlf_value(request):
    return Response("x", headers={"X-A": "a\r\nX-Injected: 1"})


def _bad_name(request):
    return Response("x", headers={"Bad Name": "1"})


@pytest.mark.parametrize(
    "handler",
    [_crlf_value, _bad_name, lambda request: object(), lambda request: {1, 2}, lambda request: float("nan")],
    ids=["crlf-value", "bad-name", "object", "set", "nan"],
)
def test_bad_results_are_500_and_the_server_keeps_serving(app, client, handler):
    app.get("/bad")(handler)
    app.get("/ok/{id:int}")(lambda id: {"ok": id})
    client.raise_server_exceptions = False  # the 500 is under test
    for attempt in range(2):
        reply = client.get("/bad")
        assert reply.status_code == 500
        assert loads(reply) == {"detail": "Internal Server Error"}
        assert reply.headers.get("X-Injected") is None and reply.headers.get("X-A") is None
        assert loads(client.get(f"/ok/{attempt}")) == {"ok": attempt}


# HEAD, tiers -------------------------------------------------------------------


def test_head_on_a_dynamic_get_route_has_the_headers_and_no_body(app):
    app.get("/h/{name}")(lambda name: JSONResponse({"name": name}, headers={"X-Name": name}))
    port = app.start()
    get = request(port, "GET", "/h/abc")
    assert get.body == b'{"name":"abc"}'
    data = raw(port, b"HEAD /h/abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep and rest == b""
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200")
    headers = {n.strip().lower(): v.strip() for n, v in (line.split(":", 1) for line in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert headers["x-name"] == "abc"
    assert headers["content-length"] == str(len(get.body))


def test_dynamic_true_runs_per_request_a_plain_zero_arg_handler_once(app, client):
    dynamic_calls, static_calls = [], []

    @app.get("/dynamic", dynamic=True)
    def per_request():
        dynamic_calls.append(1)
        return len(dynamic_calls)

    @app.get("/static")
    def once():
        static_calls.append(1)
        return len(static_calls)

    counts = [int(client.get("/dynamic").content) for _ in range(3)]
    assert counts[1:] == [counts[0] + 1, counts[0] + 2]
    assert [client.get("/static").content for _ in range(3)] == [b"1"] * 3
    assert static_calls == [1]


def test_precompute_false_runs_every_handler_per_request(make_app):
    from sufast import Request

    app = make_app(precompute=False)
    items: list = []

    @app.get("/items")
    def list_items():  # reads changing state: must not be frozen
        return items

    @app.post("/items")
    def add(request: Request):
        items.append(request.json())
        return {"count": len(items)}

    assert {r.tier for r in app.routes} == {"dynamic"}
    with TestClient(app) as client:
        assert client.get("/items").content == b"[]"
        client.post("/items", content=b'{"name": "pen"}')
        assert client.get("/items").content == b'[{"name":"pen"}]'
    with pytest.raises(TypeError, match="precompute must be True or False"):
        make_app(precompute="no")


def test_route_tiers(app):
    app.get("/s")(lambda: 1)
    app.get("/d", dynamic=True)(lambda: 1)
    app.get("/p/{id}")(lambda id: id)
    app.get("/r")(lambda request: 1)
    app.get("/c", cache_ttl=60)(lambda: 1)
    assert [(r.path, r.tier) for r in app.routes] == [
        ("/s", "static"), ("/d", "dynamic"), ("/p/{id}", "dynamic"), ("/r", "dynamic"), ("/c", "cached"),
    ]


def test_async_handlers_run_on_uvloop_exactly_when_it_is_installed(app, client):
    import asyncio
    import importlib.util

    async def loop_kind():
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    app.get("/loop", dynamic=True)(loop_kind)
    expected = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    assert client.get("/loop").text == expected
