"""``app.mount(path, StaticFiles(...))``: a directory served by the Rust
server over real HTTP, with no Python per request: types and lengths,
conditional and range requests, HEAD, html directories, precompressed
siblings, every way out of the directory refused, and the app's headers."""

from __future__ import annotations

import email.utils
import gzip
import json
import os
import time

import pytest
from conftest import raw, request

from sufast import CORS, App, RouteError, Router, StaticFiles, SufastError
from sufast.testclient import TestClient

NOT_FOUND = b'{"detail": "Not Found"}'


@pytest.fixture
def site(tmp_path):
    """A directory to serve, beside a secret that must stay out of reach."""
    root = tmp_path / "static"
    root.mkdir()
    (root / "hello.txt").write_text("hello, files\n")
    (root / "style.css").write_text("body { color: red }\n")
    (root / "data.json").write_text('{"a": 1}')
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "a").mkdir()
    (root / "a" / "b").write_text("a/b, reached only as a path")
    (tmp_path / "secret.txt").write_text("the secret")
    return root


def served(app: App, root, **options) -> TestClient:
    app.mount("/static", StaticFiles(directory=root, **options))
    return TestClient(app)


def get_raw(port: int, target: str, headers: str = "") -> bytes:
    """The response bytes to a request line written exactly as given."""
    return raw(port, f"GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n".encode())


def split(reply: bytes):
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def test_files_come_with_their_type_length_and_last_modified(app, site):
    with served(app, site) as client:
        for name, content_type in [
            ("hello.txt", "text/plain; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("data.json", "application/json"),
            ("logo.png", "image/png"),
            ("index.html", "text/html; charset=utf-8"),
        ]:
            response = client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == content_type
            assert response.content == (site / name).read_bytes()
            assert response.headers["content-length"] == str(len(response.content))
            assert response.headers["accept-ranges"] == "bytes"
            mtime = os.stat(site / name).st_mtime
            assert response.headers["last-modified"] == email.utils.formatdate(int(mtime), usegmt=True)


def test_small_files_read_in_one_trip_get_the_headers_servedir_sends(app, site):
    """A small file asked for plainly is read where it is found; one asked
    for with a date condition goes through ServeDir. Both send the same."""
    (site / "large.txt").write_text("x" * (64 * 1024 + 1))
    far_future = "If-Unmodified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
    with served(app, site, html=True):
        port = app.port
        for name in ("hello.txt", "logo.png", "data.json", "docs/", "large.txt"):
            fast = split(get_raw(port, f"/static/{name}"))
            slow = split(get_raw(port, f"/static/{name}", far_future))
            for reply in (fast, slow):
                reply[1].pop("date", None)
            assert fast == slow, name
            assert fast[0] == 200 and fast[1]["etag"].startswith('W/"'), name


def test_files_kept_in_memory_are_sent_as_read_and_never_after_they_change(app, site, tmp_path):
    """A small file left unchanged for two seconds is kept in memory once
    sent: sent again with the headers of one read from disk, and dropped
    as soon as it changes, goes or leads out of the directory."""
    time.sleep(2.1)
    far_future = "If-Unmodified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"
    with served(app, site, html=True):
        port = app.port
        for name in ("hello.txt", "logo.png", "docs/"):
            first, kept, slow = (split(get_raw(port, f"/static/{name}", extra)) for extra in ("", "", far_future))
            for reply in (first, kept, slow):
                reply[1].pop("date", None)
            assert first == kept == slow, name
        etag = split(get_raw(port, "/static/hello.txt"))[1]["etag"]
        status, headers, body = split(get_raw(port, "/static/hello.txt", f"If-None-Match: {etag}\r\n"))
        assert (status, headers["etag"], body) == (304, etag, b"")
        # As browsers revalidate: If-Modified-Since beside it is not evaluated.
        modified = split(get_raw(port, "/static/hello.txt"))[1]["last-modified"]
        browser = f"Accept-Encoding: gzip, deflate, br\r\nIf-Modified-Since: {modified}\r\n"
        assert split(get_raw(port, "/static/hello.txt", f"{browser}If-None-Match: {etag}\r\n"))[0] == 304
        status, _, body = split(get_raw(port, "/static/hello.txt", f'{browser}If-None-Match: "other"\r\n'))
        assert (status, body) == (200, b"hello, files\n")

        (site / "hello.txt").write_text("hello, changed\n")
        status, headers, body = split(get_raw(port, "/static/hello.txt"))
        assert (status, body) == (200, b"hello, changed\n") and headers["etag"] != etag
        (site / "docs" / "index.html").unlink()
        assert split(get_raw(port, "/static/docs/"))[0] == 404
        if hasattr(os, "symlink"):
            (site / "logo.png").unlink()
            os.symlink(tmp_path / "secret.txt", site / "logo.png")
            status, _, body = split(get_raw(port, "/static/logo.png"))
            assert (status, body) == (404, NOT_FOUND)


def test_last_modified_and_etag_answer_conditional_requests_with_304(app, site):
    with served(app, site) as client:
        first = client.get("/static/hello.txt")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert etag.startswith('W/"')

        since = client.get("/static/hello.txt", headers={"If-Modified-Since": modified})
        assert (since.status_code, since.content) == (304, b"")
        older = client.get("/static/hello.txt", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        assert older.status_code == 200

        match = client.get("/static/hello.txt", headers={"If-None-Match": etag})
        assert (match.status_code, match.content, match.headers["etag"]) == (304, b"", etag)
        assert client.get("/static/hello.txt", headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
        assert client.get("/static/hello.txt", headers={"If-None-Match": "*"}).status_code == 304
        # An ETag that does not match wins over a date that would.
        other = client.get("/static/hello.txt", headers={"If-None-Match": '"other"', "If-Modified-Since": modified})
        assert (other.status_code, other.content) == (200, b"hello, files\n")

        # A new version of the file gets a new ETag.
        (site / "hello.txt").write_text("hello again, files\n")
        os.utime(site / "hello.txt", (1_000_000_000, 1_000_000_000))
        changed = client.get("/static/hello.txt", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.content == b"hello again, files\n"


def test_a_single_range_gets_206_with_content_range(app, site):
    size = (site / "logo.png").stat().st_size
    with served(app, site) as client:
        part = client.get("/static/logo.png", headers={"Range": "bytes=8-11"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 8-11/{size}"
        assert part.headers["content-length"] == "4"
        assert part.content == bytes([0, 1, 2, 3])
        assert part.headers["etag"] == client.get("/static/logo.png").headers["etag"]
        tail = client.get("/static/logo.png", headers={"Range": "bytes=-2"})
        assert (tail.status_code, tail.content) == (206, bytes([254, 255]))

        # If-Range: the range only while the file is the version named.
        modified = part.headers["last-modified"]
        assert client.get("/static/logo.png", headers={"Range": "bytes=8-11", "If-Range": modified}).status_code == 206
        stale = client.get("/static/logo.png", headers={"Range": "bytes=8-11", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"})
        assert (stale.status_code, len(stale.content)) == (200, size)

        beyond = client.get("/static/logo.png", headers={"Range": f"bytes={size + 10}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{size}"


def test_head_gets_the_headers_of_a_get_and_no_body(app, site):
    with served(app, site) as client:
        get = client.get("/static/style.css")
        head = client.head("/static/style.css")
        assert head.status_code == 200 and head.content == b""
        for name in ("content-type", "content-length", "last-modified", "etag", "vary"):
            assert head.headers[name] == get.headers[name], name
        status, headers, body = split(raw(app.port, b"HEAD /static/style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
        assert (status, headers["content-length"], body) == (200, str((site / "style.css").stat().st_size), b"")


def test_html_serves_index_files_redirects_directories_and_the_404_page(app, site):
    with served(app, site, html=True) as client:
        assert client.get("/static/").content == b"<h1>home</h1>"
        assert client.get("/static/docs/").content == b"<h1>docs</h1>"
        assert client.get("/static/docs/").headers["content-type"] == "text/html; charset=utf-8"
        for path, location in [("/static/docs", "/static/docs/"), ("/static/docs?v=1", "/static/docs/?v=1"), ("/static", "/static/")]:
            response = client.get(path)
            assert (response.status_code, response.headers["location"]) == (307, location), path
        # No 404.html yet: the server's own 404, also for a directory
        # without an index.html.
        assert client.get("/static/missing.html").content == NOT_FOUND
        assert client.get("/static/a/").status_code == 404
        (site / "404.html").write_text("<h1>lost</h1>")
        lost = client.get("/static/missing.html")
        assert (lost.status_code, lost.content) == (404, b"<h1>lost</h1>")
        assert lost.headers["content-type"] == "text/html; charset=utf-8"
        # A file asked for as a directory is missing too.
        assert client.get("/static/hello.txt/").status_code == 404


def test_without_html_directories_are_not_found(app, site):
    (site / "404.html").write_text("<h1>lost</h1>")
    with served(app, site) as client:
        for path in ["/static/", "/static", "/static/docs", "/static/docs/", "/static/missing"]:
            response = client.get(path)
            assert (response.status_code, response.content) == (404, NOT_FOUND), path
            assert response.headers["content-type"] == "application/json"


def test_a_precompressed_sibling_is_sent_to_clients_that_accept_it(app, site):
    packed = gzip.compress(b"hello, files\n")
    (site / "hello.txt.gz").write_bytes(packed)
    (site / "hello.txt.br").write_bytes(b"brotli bytes")
    with served(app, site) as client:
        zipped = client.get("/static/hello.txt", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["content-type"] == "text/plain; charset=utf-8"
        assert zipped.content == packed and gzip.decompress(zipped.content) == b"hello, files\n"
        assert "Accept-Encoding" in zipped.headers["vary"]
        brotli = client.get("/static/hello.txt", headers={"Accept-Encoding": "gzip, br"})
        assert (brotli.headers["content-encoding"], brotli.content) == ("br", b"brotli bytes")
        plain = client.get("/static/hello.txt", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == b"hello, files\n"
        assert "Accept-Encoding" in plain.headers["vary"]


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/a/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/a%2fb",
        "/static/a%2Fb",
        "/static/%5c..%5csecret.txt",
        "/static/a%5cb",
        "/static/hello.txt%00.png",
        "/static/a/%2e%2e/%2e%2e/secret.txt",
    ],
)
def test_every_way_out_of_the_directory_is_the_servers_404(app, site, target):
    with served(app, site) as client:
        client.get("/static/hello.txt")
        status, headers, body = split(get_raw(app.port, target))
        assert (status, body) == (404, NOT_FOUND)
        assert headers["content-type"] == "application/json"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks here")
def test_symlinks_that_leave_the_directory_are_refused(app, site, tmp_path):
    os.symlink(tmp_path / "secret.txt", site / "leak.txt")
    os.symlink(tmp_path, site / "up")
    os.symlink(site / "hello.txt", site / "alias.txt")
    os.symlink(tmp_path / "secret.txt", site / "style.css.gz")
    with served(app, site) as client:
        for path in ["/static/leak.txt", "/static/up/secret.txt", "/static/up/static/up/secret.txt"]:
            response = client.get(path)
            assert (response.status_code, response.content) == (404, NOT_FOUND), path
        # What resolves inside is followed: where a path leads counts.
        assert client.get("/static/alias.txt").content == b"hello, files\n"
        assert client.get("/static/up/static/hello.txt").content == b"hello, files\n"
        # So is a precompressed sibling, which could be sent in its place.
        assert client.get("/static/style.css", headers={"Accept-Encoding": "gzip"}).status_code == 404
        assert client.get("/static/style.css").status_code == 200


def test_a_missing_file_is_the_servers_404_and_other_methods_get_405(app, site):
    with served(app, site) as client:
        missing = client.get("/static/nope.txt")
        assert (missing.status_code, missing.content) == (404, NOT_FOUND)
        assert missing.headers["content-type"] == "application/json"
        posted = client.post("/static/hello.txt", content=b"x")
        assert (posted.status_code, posted.headers["allow"]) == (405, "GET, HEAD")
        # A file removed while serving: 404, and the server goes on.
        (site / "hello.txt").unlink()
        assert client.get("/static/hello.txt").content == NOT_FOUND
        assert client.get("/static/style.css").status_code == 200


def test_no_python_runs_for_a_file(make_app, site):
    app = make_app()
    seen = []

    @app.middleware("http")
    def count(request, call_next):
        seen.append(request.path)
        return call_next(request)

    @app.get("/count")
    def counted(request):
        return {"seen": len(seen)}

    app.mount("/static", StaticFiles(directory=site, html=True))
    assert "GET     /static/{path:path}  files" in app._route_summary()
    with TestClient(app) as client:
        for path in ["/static/hello.txt", "/static/", "/static/missing", "/static/docs"]:
            client.get(path)
        client.head("/static/hello.txt")
        assert seen == []
        assert client.get("/count").json() == {"seen": 1}


def test_app_wide_headers_and_cors_apply_to_files(make_app, site):
    app = make_app(headers={"X-Powered-By": "sufast"}, cors=CORS(allow_origins=["https://a.example"]))
    with served(app, site, html=True) as client:
        origin = {"Origin": "https://a.example"}
        for path, status in [("/static/hello.txt", 200), ("/static/missing", 404), ("/static", 307)]:
            response = client.get(path, headers=origin)
            assert response.status_code == status, path
            assert response.headers["x-powered-by"] == "sufast", path
            assert response.headers["access-control-allow-origin"] == "https://a.example", path
            assert "Origin" in response.headers.getlist("vary"), path
        file = client.get("/static/hello.txt", headers=origin)
        assert sorted(file.headers.getlist("vary")) == ["Accept-Encoding", "Origin"]
        assert client.get("/static/hello.txt", headers={"If-None-Match": file.headers["etag"]}).headers["x-powered-by"] == "sufast"


def test_the_access_log_logs_files_with_their_bytes(make_app, site, capfd):
    app = make_app()
    app.mount("/static", StaticFiles(directory=site))
    port = app.start(access_log=True, access_log_format="json")
    assert request(port, "GET", "/static/hello.txt").status == 200
    assert request(port, "GET", "/static/hello.txt", headers={"Range": "bytes=0-4"}).status == 206
    assert request(port, "GET", "/static/nope").status == 404
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    assert [(r["path"], r["status"], r["bytes"]) for r in records] == [
        ("/static/hello.txt", 200, len("hello, files\n")),
        ("/static/hello.txt", 206, 5),
        ("/static/nope", 404, len(NOT_FOUND)),
    ]


def test_static_files_checks_its_directory_and_makes_it_absolute(tmp_path, monkeypatch, site):
    monkeypatch.chdir(tmp_path)
    files = StaticFiles(directory="static")
    assert files.directory == str(site) and os.path.isabs(files.directory)
    with pytest.raises(RuntimeError, match="Directory 'nowhere' does not exist"):
        StaticFiles(directory="nowhere")
    assert StaticFiles(directory="nowhere", check_dir=False).directory == str(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="html must be True or False"):
        StaticFiles(directory="static", html="yes")


def test_only_static_files_can_be_mounted(app, site):
    class SubApp:
        pass

    with pytest.raises(RouteError, match=r"mount /sub: cannot mount SubApp: .*sub-applications are not supported yet") as raised:
        app.mount("/sub", SubApp())
    assert raised.value.route == "GET /sub/{path:path}"
    with pytest.raises(RouteError, match="must start with '/'"):
        app.mount("static", StaticFiles(directory=site))
    app.mount("/static/", StaticFiles(directory=site))
    with pytest.raises(RouteError, match=r"mount /static: /static/\{path:path\} is already registered"):
        app.mount("/static", StaticFiles(directory=site))
    assert [r.tier for r in app.routes] == ["files"]


def test_a_mount_is_listed_but_left_out_of_openapi(app, site):
    @app.get("/items")
    def items():
        return []

    mount = app.mount("/static", StaticFiles(directory=site), name="static")
    assert (mount.path, mount.prefix, mount.name, mount.tier) == ("/static/{path:path}", "/static", "static", "files")
    assert [(r.method, r.path, r.tier) for r in app.routes] == [("GET", "/items", "static"), ("GET", "/static/{path:path}", "files")]
    assert list(app.openapi()["paths"]) == ["/items"]
    with TestClient(app) as client:
        assert list(client.get("/openapi.json").json()["paths"]) == ["/items"]


def test_a_mount_at_the_root_leaves_the_apps_routes_first(app, site):
    @app.get("/api/items")
    def items():
        return ["pen"]

    app.mount("/", StaticFiles(directory=site, html=True))
    with TestClient(app) as client:
        assert client.get("/").content == b"<h1>home</h1>"
        assert client.get("/hello.txt").content == b"hello, files\n"
        assert client.get("/api/items").json() == ["pen"]
        assert client.get("/docs/").content == b"<h1>docs</h1>"


def test_routers_mount_under_their_prefix(app, site):
    inner = Router(prefix="/assets")
    inner.mount("/files", StaticFiles(directory=site))
    outer = Router()
    outer.include_router(inner, prefix="/v1")
    app.include_router(outer, prefix="/api")
    assert [r.path for r in app.routes] == ["/api/v1/assets/files/{path:path}"]
    with pytest.raises(RouteError, match="not supported yet"):
        inner.mount("/x", object())
    with TestClient(app) as client:
        assert client.get("/api/v1/assets/files/hello.txt").content == b"hello, files\n"


def test_mounting_while_serving_serves_at_once(app, site, tmp_path):
    with TestClient(app) as client:
        assert client.get("/static/hello.txt").status_code == 404
        app.mount("/static", StaticFiles(directory=site))
        assert client.get("/static/hello.txt").content == b"hello, files\n"
        # A directory that is not there: refused, and nothing changes.
        gone = StaticFiles(directory=tmp_path / "later", check_dir=False)
        with pytest.raises(SufastError, match=r"route GET /later/\{path:path\}: directory .* cannot be served"):
            app.mount("/later", gone)
        assert [r.path for r in app.routes] == ["/static/{path:path}"]
        assert client.get("/static/hello.txt").status_code == 200


def test_a_directory_made_after_the_mount_is_checked_at_start(app, tmp_path):
    app.mount("/late", StaticFiles(directory=tmp_path / "late", check_dir=False))
    with pytest.raises(SufastError, match=r"route GET /late/\{path:path\}: directory .* cannot be served"):
        app.start()
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "x.txt").write_text("x")
    port = app.start()
    assert request(port, "GET", "/late/x.txt").body == b"x"


def test_the_readme_static_files_example_serves_as_it_says(tmp_path, monkeypatch):
    from test_examples import readme_block

    monkeypatch.chdir(tmp_path)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "index.html").write_text("<h1>site</h1>")
    (tmp_path / "static" / "app.js").write_text("console.log(1)")
    namespace: dict = {}
    exec(compile(readme_block("### Static files"), "README.md", "exec", dont_inherit=True), namespace)
    app = namespace["app"]
    assert [r.tier for r in app.routes] == ["files", "static"]
    with TestClient(app) as client:
        assert client.get("/static/").content == b"<h1>site</h1>"
        assert client.get("/static/app.js").content == b"console.log(1)"
        assert client.get("/static/missing.js").json() == {"detail": "Not Found"}
        assert client.get("/").json() == {"docs": "/static/"}


def test_the_middleware_note_says_mounts_are_served_without_it(app, site):
    @app.middleware("http")
    def count(request, call_next):
        return call_next(request)

    app.mount("/static", StaticFiles(directory=site))
    assert "1 mounted directory is served without it" in app._route_summary()
