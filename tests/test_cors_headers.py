"""App-wide response headers and CORS over real HTTP: the headers reach
every tier and the server's own errors, a route's header wins, and the
CORS policy follows Starlette's CORSMiddleware (simple requests,
credentials, exposed headers, preflights answered by the server)."""

from __future__ import annotations

import pytest
from conftest import request

from sufast import CORS, HTTPException, Response, RouteWarning, SufastError

ALLOWED = "https://example.com"
OTHER = "https://evil.example"


def cors_headers(reply) -> dict:
    """The reply's access-control-* headers, by lower-case name."""
    return {n.lower(): v for n, v in reply.header_list if n.lower().startswith("access-control-")}


def every_tier(app) -> None:
    """One route per tier, plus handlers that fail in each way."""

    @app.get("/static")
    def static():
        return {"tier": "static"}

    @app.get("/cached", cache_ttl=60)
    def cached():
        return {"tier": "cached"}

    @app.get("/dynamic/{n:int}")
    def dynamic(n: int):
        return {"tier": "dynamic", "n": n}

    @app.post("/echo")
    def echo(payload: bytes):
        return {"size": len(payload)}

    @app.get("/raises/{n}")
    def raises(n: str):
        raise ValueError("boom")

    @app.get("/http-error/{n}")
    def http_error(n: str):
        raise HTTPException(418, "teapot")

    with pytest.warns(RouteWarning):

        @app.get("/broken")
        def broken():
            raise RuntimeError("at registration")


# Global headers ----------------------------------------------------------------


def test_global_headers_reach_every_tier_and_the_servers_own_errors(make_app):
    app = make_app(headers={"X-Powered-By": "sufast", "X-Frame-Options": "DENY"}, max_body_size=8)
    every_tier(app)
    port = app.start()

    cases = [
        ("GET", "/static", 200),
        ("GET", "/cached", 200),
        ("GET", "/cached", 200),  # now from the cache
        ("GET", "/dynamic/7", 200),
        ("GET", "/raises/x", 500),
        ("GET", "/http-error/x", 418),
        ("GET", "/broken", 500),
        ("GET", "/nowhere", 404),
        ("DELETE", "/static", 405),
        ("GET", "/caf%FF", 400),
        ("HEAD", "/static", 200),
        ("HEAD", "/dynamic/1", 200),
    ]
    for method, path, status in cases:
        reply = request(port, method, path)
        assert reply.status == status, (method, path, reply.body)
        assert reply.headers_named("X-Powered-By") == ["sufast"], (method, path)
        assert reply.header("X-Frame-Options") == "DENY", (method, path)
        assert cors_headers(reply) == {}
        assert reply.header("Vary") is None
    too_large = request(port, "POST", "/echo", body=b"123456789")
    assert (too_large.status, too_large.header("X-Powered-By")) == (413, "sufast")


def test_a_routes_own_header_wins_over_a_global_one(make_app):
    app = make_app(headers=[("Cache-Control", "no-store"), ("X-Powered-By", "sufast")])
    app.get("/decorator", headers={"Cache-Control": "max-age=60"})(lambda: "d")
    app.get("/response")(lambda: Response("r", headers={"cache-control": "private"}))

    @app.get("/dynamic/{n}", headers={"Cache-Control": "max-age=5"})
    def dynamic(n: str):
        return n

    @app.get("/dynamic-response/{n}")
    def dynamic_response(n: str):
        return Response(n, headers={"Cache-Control": "no-cache"})

    port = app.start()
    for path, expected in [
        ("/decorator", "max-age=60"),
        ("/response", "private"),
        ("/dynamic/1", "max-age=5"),
        ("/dynamic-response/1", "no-cache"),
        ("/nowhere", "no-store"),
    ]:
        reply = request(port, "GET", path)
        assert reply.headers_named("Cache-Control") == [expected], path
        assert reply.header("X-Powered-By") == "sufast", path


def test_repeated_global_headers_are_all_sent(make_app):
    app = make_app(headers=[("Link", "</a.css>; rel=preload"), ("Link", "</b.js>; rel=preload")])
    app.get("/")(lambda: "x")
    port = app.start()
    assert request(port, "GET", "/").headers_named("Link") == ["</a.css>; rel=preload", "</b.js>; rel=preload"]


def test_global_headers_apply_to_routes_added_while_serving(make_app):
    app = make_app(headers={"X-Powered-By": "sufast"})
    port = app.start()
    app.get("/late")(lambda: "late")
    assert request(port, "GET", "/late").header("X-Powered-By") == "sufast"


# CORS: simple requests ------------------------------------------------------------


def listed(**options) -> CORS:
    return CORS(allow_origins=[ALLOWED], allow_methods=["GET", "POST"], allow_headers=["content-type"], **options)


def test_an_allowed_origin_is_echoed_on_every_tier(make_app):
    app = make_app(headers={"X-Powered-By": "sufast"}, cors=listed())
    every_tier(app)
    port = app.start()
    for method, path in [
        ("GET", "/static"),
        ("GET", "/cached"),
        ("GET", "/dynamic/3"),
        ("GET", "/raises/x"),
        ("GET", "/nowhere"),
        ("HEAD", "/static"),
        ("HEAD", "/dynamic/3"),
    ]:
        reply = request(port, method, path, headers={"Origin": ALLOWED})
        assert cors_headers(reply) == {"access-control-allow-origin": ALLOWED}, (method, path)
        assert reply.headers_named("Vary") == ["Origin"], (method, path)
        assert reply.header("X-Powered-By") == "sufast"


def test_a_disallowed_origin_or_none_gets_no_cors_headers(make_app):
    app = make_app(cors=listed(allow_credentials=True, expose_headers=["X-Total"]))
    every_tier(app)
    port = app.start()
    for headers in ({"Origin": OTHER}, {"Origin": ALLOWED + ":8443"}, {}):
        for path in ("/static", "/cached", "/dynamic/1", "/nowhere"):
            reply = request(port, "GET", path, headers=headers)
            assert cors_headers(reply) == {}, (headers, path)
            # The answer depends on the origin, so caches must key on it.
            assert reply.headers_named("Vary") == ["Origin"], (headers, path)


def test_credentials_and_exposed_headers_go_with_an_allowed_origin(make_app):
    app = make_app(cors=listed(allow_credentials=True, expose_headers=["X-Total", "X-Page"]))
    app.get("/")(lambda: "x")

    @app.get("/items/{n}")
    def items(n: str):
        return Response(n, headers={"X-Total": "1", "Vary": "Accept-Encoding"})

    port = app.start()
    expected = {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "X-Total, X-Page",
    }
    for path in ("/", "/items/1"):
        reply = request(port, "GET", path, headers={"Origin": ALLOWED, "Cookie": "session=1"})
        assert cors_headers(reply) == expected, path
    reply = request(port, "GET", "/items/1", headers={"Origin": ALLOWED})
    assert reply.headers_named("Vary") == ["Accept-Encoding", "Origin"]


def test_every_origin_without_credentials_is_a_star(make_app):
    app = make_app(cors=CORS(allow_origins=["*"], expose_headers=["X-Total"]))
    every_tier(app)
    port = app.start()
    star = {"access-control-allow-origin": "*", "access-control-expose-headers": "X-Total"}
    for headers in ({"Origin": OTHER}, {"Origin": ALLOWED, "Cookie": "a=1"}, {}):
        for path in ("/static", "/cached", "/dynamic/2", "/nowhere"):
            reply = request(port, "GET", path, headers=headers)
            assert cors_headers(reply) == star, (headers, path)
            assert reply.header("Vary") is None


def test_every_origin_with_credentials_echoes_the_origin(make_app):
    # `*` is not allowed with credentials, so the origin is named instead.
    app = make_app(cors=CORS(allow_origins=["*"], allow_credentials=True))
    app.get("/")(lambda: "x")
    port = app.start()
    reply = request(port, "GET", "/", headers={"Origin": OTHER})
    assert cors_headers(reply) == {"access-control-allow-origin": OTHER, "access-control-allow-credentials": "true"}
    assert reply.headers_named("Vary") == ["Origin"]
    assert cors_headers(request(port, "GET", "/")) == {}


# CORS: preflight -------------------------------------------------------------------


def preflight(port: int, origin: str, method: str, headers=None):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return request(port, "OPTIONS", "/items", headers=asked)


def test_an_allowed_preflight_is_answered_by_the_server(make_app):
    app = make_app(headers={"X-Powered-By": "sufast"}, cors=listed(max_age=600))
    app.post("/items")(lambda: "created")
    port = app.start()

    reply = preflight(port, ALLOWED, "POST", "Content-Type")
    assert (reply.status, reply.text) == (200, "OK")
    assert cors_headers(reply) == {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "accept, accept-language, content-language, content-type",
        "access-control-max-age": "600",
    }
    assert reply.header("Vary") == "Origin"
    assert reply.header("X-Powered-By") == "sufast"
    # A preflight for a path no route serves is still the server's to answer.
    assert request(port, "OPTIONS", "/nowhere", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"}).status == 200


@pytest.mark.parametrize(
    "origin, method, headers, failures",
    [
        (OTHER, "POST", None, "origin"),
        (ALLOWED, "DELETE", None, "method"),
        (ALLOWED, "POST", "content-type, x-secret", "headers"),
        (OTHER, "PUT", "x-secret", "origin, method, headers"),
    ],
)
def test_a_disallowed_preflight_is_a_400_naming_why(make_app, origin, method, headers, failures):
    app = make_app(cors=listed())
    app.post("/items")(lambda: "created")
    port = app.start()
    reply = preflight(port, origin, method, headers)
    assert reply.status == 400
    assert reply.text == f"Disallowed CORS {failures}"
    if origin == OTHER:
        assert "access-control-allow-origin" not in cors_headers(reply)


def test_a_preflight_with_everything_allowed(make_app):
    app = make_app(cors=CORS(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"], max_age=0))
    port = app.start()
    reply = preflight(port, OTHER, "PATCH", "x-a, x-b")
    assert reply.status == 200
    assert cors_headers(reply) == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        "access-control-allow-headers": "x-a, x-b",
        "access-control-max-age": "0",
    }


def test_options_that_is_not_a_preflight_goes_to_the_routes(make_app):
    app = make_app(cors=listed())
    app.get("/items")(lambda: "items")
    port = app.start()
    reply = request(port, "OPTIONS", "/items", headers={"Origin": ALLOWED})
    assert reply.status == 405
    assert reply.header("Allow") == "GET, HEAD"
    assert reply.header("Access-Control-Allow-Origin") == ALLOWED


def test_without_cors_a_preflight_is_an_ordinary_request(app):
    app.get("/items")(lambda: "items")
    port = app.start()
    reply = preflight(port, ALLOWED, "GET")
    assert reply.status == 405
    assert cors_headers(reply) == {}
    assert reply.header("Vary") is None


# Validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"headers": {"X A": "1"}}, SufastError, "not a valid HTTP header name"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, SufastError, "CR, LF"),
        ({"headers": {"Content-Length": "1"}}, SufastError, "set by the server"),
        ({"headers": "X-A: 1"}, TypeError, "pair"),
        ({"cors": {"allow_origins": ["*"]}}, TypeError, "sufast.CORS"),
        ({"cors": CORS(allow_origins=["https://example.com/"])}, SufastError, "not an origin"),
        ({"cors": CORS(allow_origins=["*", ALLOWED])}, SufastError, "alone"),
        ({"cors": CORS(allow_methods=["get"])}, SufastError, "upper case"),
        ({"cors": CORS(allow_headers=["bad header"])}, SufastError, "not a valid HTTP header name"),
        (
            {"headers": {"Access-Control-Allow-Origin": "*"}, "cors": CORS(allow_origins=["*"])},
            SufastError,
            "set by cors",
        ),
    ],
)
def test_bad_headers_and_policies_fail_where_the_app_is_made(options, error, match):
    from sufast import App

    with pytest.raises(error, match=match):
        App(**options)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"allow_origins": ALLOWED}, TypeError, "not a single string"),
        ({"allow_methods": [1]}, TypeError, "list of strings"),
        ({"allow_credentials": "yes"}, TypeError, "True or False"),
        ({"max_age": -1}, ValueError, "max_age"),
        ({"max_age": True}, ValueError, "max_age"),
    ],
)
def test_cors_checks_its_types(options, error, match):
    with pytest.raises(error, match=match):
        CORS(**options)
