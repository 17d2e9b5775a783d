"""``App(compression=...)`` over real HTTP: the server gzips what qualifies
in every tier (static, cached, per-request sync and async) for a client
whose ``Accept-Encoding`` takes it, says ``Vary: Accept-Encoding`` on what
could be compressed, joined to CORS's, and leaves alone what is too small,
already compressed, of a type that does not compress, a files route, or an
app without compression."""

from __future__ import annotations

import gzip
import json
import threading

import pytest
from conftest import request

from sufast import CORS, App, Compression, Response, StaticFiles
from sufast.testclient import TestClient

GZIP = {"Accept-Encoding": "gzip"}
ROWS = [{"id": n, "name": f"row {n}", "tags": ["a", "b"]} for n in range(40)]
BIG_JSON = json.dumps(ROWS, separators=(",", ":")).encode()
PAGE = "<html><body>" + "<p>compress me</p>" * 60 + "</body></html>"
ORIGIN = "https://example.com"


class Calls:
    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def bump(self) -> int:
        with self._lock:
            self.n += 1
            return self.n


def every_tier(app: App, calls: Calls) -> None:
    # ROWS is never changed: served as stored, once.
    @app.get("/static", dynamic=False)
    def static():
        return ROWS

    @app.get("/page")
    def page():
        return Response(PAGE, media_type="text/html", headers={"ETag": '"v1"'})

    @app.get("/sync/{n:int}")
    def sync(n: int):
        return ROWS

    @app.get("/async/{n:int}")
    async def async_rows(n: int):
        return ROWS

    @app.get("/cached", cache_ttl=60)
    def cached():
        calls.bump()
        return ROWS

    @app.get("/small/{n}")
    def small(n: str):
        return {"n": n}

    @app.get("/image/{n}")
    def image(n: str):
        return Response(b"\x89PNG" + bytes(2000), media_type="image/png")

    @app.get("/own/{n}")
    def own(n: str):
        return Response(gzip.compress(BIG_JSON), media_type="application/json", headers={"Content-Encoding": "gzip"})

    @app.get("/part/{n}")
    def part(n: str):
        return Response(BIG_JSON, status_code=206, media_type="application/json", headers={"Content-Range": f"bytes 0-{len(BIG_JSON) - 1}/9999"})

    @app.get("/varies/{n}")
    def varies(n: str):
        return Response(BIG_JSON, media_type="application/json", headers={"Vary": "Cookie"})


@pytest.fixture
def served(make_app):
    """An app compressing bodies of 100 bytes and more, with one route per
    tier, and the calls of its cached handler."""
    calls = Calls()
    app = make_app(compression=Compression(minimum_size=100))
    every_tier(app, calls)
    return app.start(), calls


COMPRESSED = ["/static", "/sync/1", "/async/2", "/cached"]


@pytest.mark.parametrize("path", COMPRESSED)
def test_every_tier_sends_gzip_to_a_client_that_takes_it(served, path):
    port, _ = served
    reply = request(port, "GET", path, headers=GZIP)
    assert reply.status == 200
    assert reply.header("content-encoding") == "gzip"
    assert reply.headers_named("vary") == ["Accept-Encoding"]
    assert reply.header("content-type") == "application/json"
    assert int(reply.header("content-length")) == len(reply.body) < len(BIG_JSON)
    assert gzip.decompress(reply.body) == BIG_JSON


@pytest.mark.parametrize("path", COMPRESSED)
@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "br, deflate", "*;q=0", "gzip;q=0.5, identity"])
def test_a_client_that_does_not_take_gzip_gets_the_body_with_vary(served, path, accept):
    port, _ = served
    # Without headers, http.client sends "Accept-Encoding: identity" itself.
    reply = request(port, "GET", path, headers=None if accept is None else {"Accept-Encoding": accept})
    assert reply.status == 200
    assert reply.header("content-encoding") is None
    assert reply.headers_named("vary") == ["Accept-Encoding"]
    assert reply.body == BIG_JSON


@pytest.mark.parametrize("accept", ["GZIP", "br;q=1, gzip;q=0.8", "*", "deflate, *;q=0.3", "gzip, identity;q=0.5"])
def test_accept_encoding_is_read_with_its_q_values_and_wildcard(served, accept):
    port, _ = served
    for path in ("/static", "/sync/3"):
        reply = request(port, "GET", path, headers={"Accept-Encoding": accept})
        assert reply.header("content-encoding") == "gzip", (path, accept)
        assert gzip.decompress(reply.body) == BIG_JSON


def test_a_cached_route_renders_once_for_clients_with_and_without_gzip(served):
    port, calls = served
    for headers in (GZIP, None, GZIP, {"Accept-Encoding": "identity"}):
        reply = request(port, "GET", "/cached", headers=headers)
        body = gzip.decompress(reply.body) if reply.header("content-encoding") else reply.body
        assert body == BIG_JSON
    assert calls.n == 1


def test_a_strong_etag_is_weak_on_the_gzip_variant(served):
    port, _ = served
    zipped = request(port, "GET", "/page", headers=GZIP)
    assert zipped.header("content-encoding") == "gzip"
    assert zipped.header("content-type") == "text/html; charset=utf-8"
    assert zipped.header("etag") == 'W/"v1"'
    assert gzip.decompress(zipped.body).decode() == PAGE
    plain = request(port, "GET", "/page")
    assert plain.header("etag") == '"v1"'
    assert plain.body.decode() == PAGE


@pytest.mark.parametrize("path", ["/small/x", "/image/x", "/own/x", "/part/x"])
def test_what_does_not_qualify_is_sent_as_it_is_without_vary(served, path):
    port, _ = served
    plain = request(port, "GET", path)
    reply = request(port, "GET", path, headers=GZIP)
    assert reply.status == plain.status
    assert reply.body == plain.body
    assert _without_date(reply) == _without_date(plain)
    assert reply.headers_named("vary") == []
    if path == "/own/x":
        # The handler's own encoding, byte for byte.
        assert reply.header("content-encoding") == "gzip"
        assert gzip.decompress(reply.body) == BIG_JSON
    else:
        assert reply.header("content-encoding") is None


def _without_date(reply) -> list:
    return [(n.lower(), v) for n, v in reply.header_list if n.lower() != "date"]


@pytest.mark.parametrize("path", COMPRESSED + ["/page", "/small/x", "/image/x"])
@pytest.mark.parametrize("headers", [GZIP, None])
def test_head_carries_the_headers_a_get_would(served, path, headers):
    port, _ = served
    get = request(port, "GET", path, headers=headers)
    head = request(port, "HEAD", path, headers=headers)
    assert head.status == get.status == 200
    assert head.body == b""
    assert _without_date(head) == _without_date(get)
    assert int(head.header("content-length")) == len(get.body)


def test_a_handlers_vary_and_corss_are_joined_in_one_line(make_app):
    app = make_app(cors=CORS(allow_origins=[ORIGIN]), compression=True)
    every_tier(app, Calls())
    port = app.start()
    for path in ("/static", "/sync/1", "/async/1", "/cached"):
        for headers in ({"Origin": ORIGIN, **GZIP}, {"Origin": ORIGIN}, GZIP):
            reply = request(port, "GET", path, headers=headers)
            assert reply.headers_named("vary") == ["Origin, Accept-Encoding"], (path, headers)
            if "Origin" in headers:
                assert reply.header("access-control-allow-origin") == ORIGIN
            body = gzip.decompress(reply.body) if reply.header("content-encoding") else reply.body
            assert body == BIG_JSON
    reply = request(port, "GET", "/varies/x", headers={"Origin": ORIGIN, **GZIP})
    assert reply.headers_named("vary") == ["Cookie, Origin, Accept-Encoding"]
    assert gzip.decompress(reply.body) == BIG_JSON
    # Below the default minimum of 500 bytes: CORS's Vary alone.
    assert request(port, "GET", "/small/x", headers=GZIP).headers_named("vary") == ["Origin"]


def test_app_wide_headers_are_compressed_with_the_rest(make_app):
    app = make_app(headers={"Vary": "Cookie", "X-Powered-By": "sufast"}, compression=True)
    every_tier(app, Calls())
    port = app.start()
    for path in ("/static", "/sync/1", "/cached"):
        reply = request(port, "GET", path, headers=GZIP)
        assert reply.header("x-powered-by") == "sufast"
        assert reply.headers_named("vary") == ["Cookie, Accept-Encoding"], path
        assert gzip.decompress(reply.body) == BIG_JSON


def test_a_body_over_64_kib_is_compressed_too(make_app):
    app = make_app(compression=True)
    rows = [{"id": n, "text": "lorem ipsum dolor sit amet " * 3} for n in range(2000)]
    big = json.dumps(rows, separators=(",", ":")).encode()
    assert len(big) > 64 * 1024

    @app.get("/big/{n:int}")
    def many(n: int):
        return rows

    port = app.start()
    reply = request(port, "GET", "/big/1", headers=GZIP)
    assert reply.header("content-encoding") == "gzip"
    assert gzip.decompress(reply.body) == big
    assert len(reply.body) < len(big) // 4


def test_compression_is_off_by_default(make_app):
    for options in ({}, {"compression": None}, {"compression": False}):
        app = make_app(**options)
        every_tier(app, Calls())
        port = app.start()
        for path in COMPRESSED:
            reply = request(port, "GET", path, headers=GZIP)
            assert reply.header("content-encoding") is None, (options, path)
            assert reply.headers_named("vary") == []
            assert reply.body == BIG_JSON
        app.stop(timeout=0)


def test_files_routes_are_left_to_their_precompressed_siblings(make_app, tmp_path):
    (tmp_path / "big.txt").write_text("a line of text\n" * 200)
    app = make_app(compression=True)
    app.mount("/files", StaticFiles(directory=tmp_path))
    port = app.start()
    reply = request(port, "GET", "/files/big.txt", headers=GZIP)
    assert reply.status == 200
    assert reply.header("content-encoding") is None
    assert reply.body == (tmp_path / "big.txt").read_bytes()


def test_the_settings_are_checked_where_they_are_made():
    assert Compression().table_entry() == {"minimum_size": 500, "level": 6}
    assert Compression(minimum_size=0, level=9).table_entry() == {"minimum_size": 0, "level": 9}
    for options in ({"level": 0}, {"level": 10}, {"level": 6.0}, {"level": True}, {"minimum_size": -1}, {"minimum_size": 2**32}, {"minimum_size": "1"}):
        with pytest.raises(ValueError, match=f"Compression {next(iter(options))} must be"):
            Compression(**options)
    for value in ("gzip", 1, {"level": 6}):
        with pytest.raises(TypeError, match="compression must be True, False, None or a sufast.Compression"):
            App(compression=value)


def test_a_trusted_proxy_override_keeps_compression(make_app):
    app = make_app(compression=True)
    every_tier(app, Calls())
    port = app.start(forwarded_allow_ips=["127.0.0.1"])
    assert request(port, "GET", "/static", headers=GZIP).header("content-encoding") == "gzip"


def test_the_readme_compression_example_serves_as_it_says():
    from test_examples import readme_block

    namespace: dict = {}
    exec(compile(readme_block("### Compression"), "README.md", "exec", dont_inherit=True), namespace)
    with TestClient(namespace["app"]) as c:
        for path, rows in (("/report", 100), ("/items/3", 60)):
            zipped = c.get(path, headers={"Accept-Encoding": "gzip"})
            assert zipped.headers["content-encoding"] == "gzip"
            assert zipped.headers["vary"] == "Accept-Encoding"
            plain = c.get(path)
            assert "content-encoding" not in plain.headers
            assert json.loads(gzip.decompress(zipped.content)) == plain.json()
            assert len(plain.json()["rows"]) == rows
        small = c.get("/health", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers
        assert small.json() == {"ok": True}
