"""The example apps, served and used over real HTTP as their docstrings
describe."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
from typing import Any, Dict, Iterator, Tuple

import pytest
from conftest import ROOT, request


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def served():
    apps = []

    def serve(name: str) -> int:
        app = load(name).app
        apps.append(app)
        return app.start()

    yield serve
    for app in apps:
        app.stop(timeout=0)


def call(port: int, method: str, path: str, data=None):
    body = None if data is None else json.dumps(data).encode()
    reply = request(port, method, path, body=body)
    return reply.status, (json.loads(reply.body) if reply.body else None)


def test_crud_example_creates_reads_updates_lists_and_deletes(served):
    port = served("crud")
    assert call(port, "POST", "/items", {"name": "pen", "price": 1.5}) == (201, {"id": 1, "name": "pen", "price": 1.5})
    assert call(port, "POST", "/items", {"name": "ink", "price": 3}) == (201, {"id": 2, "name": "ink", "price": 3})
    assert call(port, "GET", "/items/1") == (200, {"id": 1, "name": "pen", "price": 1.5})
    assert call(port, "PUT", "/items/1", {"name": "pen", "price": 2}) == (200, {"id": 1, "name": "pen", "price": 2})
    assert call(port, "GET", "/items?limit=1&offset=1") == (200, {"items": [{"id": 2, "name": "ink", "price": 3}], "total": 2})
    assert call(port, "GET", "/items?name=pen")[1]["total"] == 1
    assert call(port, "DELETE", "/items/1") == (204, None)
    assert call(port, "GET", "/items/1") == (404, {"detail": "item 1 not found"})
    assert call(port, "DELETE", "/items/1")[0] == 404
    assert call(port, "GET", "/items/abc")[0] == 404
    assert call(port, "POST", "/items", {"name": "", "price": 1}) == (422, {"detail": "name must be a non-empty string"})
    status, body = call(port, "GET", "/items?limit=many")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "limit"]
    assert request(port, "POST", "/items", body=b"{not json").status == 400


def test_hello_example_serves_every_tier(served):
    port = served("hello")
    assert call(port, "GET", "/") == (200, {"message": "hello"})
    assert call(port, "GET", "/users/7?verbose=true") == (200, {"id": 7, "name": "user 7"})
    assert call(port, "POST", "/echo", {"a": [1, 2]}) == (200, {"received": {"a": [1, 2]}})
    first = call(port, "GET", "/time")
    assert first[0] == 200 and call(port, "GET", "/time") == first


def readme_block(heading: str, language: str = "python") -> str:
    """The first ``language`` code block after ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n{heading}\n") :]
    start = section.index(f"```{language}\n") + len(language) + 4
    return section[start : section.index("```", start)]


def test_the_readme_example_is_the_app_make_run_serves():
    block = readme_block("## Example")
    assert "@app.get" in block
    assert block in (ROOT / "examples" / "hello.py").read_text()


@contextlib.contextmanager
def readme_app(heading: str) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Runs the README block under ``heading``, serves its ``app`` and
    gives the port and the block's names; the app is stopped afterwards."""
    namespace: Dict[str, Any] = {}
    # Compiled on its own: this module's `from __future__` must not turn
    # the block's annotations into strings.
    exec(compile(readme_block(heading), "README.md", "exec", dont_inherit=True), namespace)
    app = namespace["app"]
    try:
        yield app.start(), namespace
    finally:
        app.stop(timeout=0)


@pytest.mark.parametrize(
    "heading", ["## Limits and timeouts", "## Behind a proxy", "### Threads, the event loop and limits"]
)
def test_the_readme_app_settings_make_an_app_that_serves(heading):
    from sufast import App

    namespace = {"App": App}
    exec(compile(readme_block(heading), "README.md", "exec", dont_inherit=True), namespace)
    app = namespace["app"]
    app.get("/")(lambda: "up")
    try:
        port = app.start()
        assert request(port, "GET", "/").body == b"up"
    finally:
        app.stop(timeout=0)


def test_the_readme_dependencies_example_serves_as_it_says():
    with readme_app("### Headers, cookies and dependencies") as (port, _):
        reply = request(port, "GET", "/articles?page-size=1", headers={"Authorization": "Token secret", "Cookie": "theme=dark"})
        assert (reply.status, json.loads(reply.body)) == (200, {"user": "ann", "articles": ["a"], "theme": "dark"})
        assert request(port, "GET", "/articles", headers={"Authorization": "Token wrong"}).status == 401
        assert request(port, "GET", "/articles").status == 422


def test_the_readme_router_example_serves_as_it_says():
    with readme_app("### Routers") as (port, _):
        key = {"X-Api-Key": "secret"}
        assert json.loads(request(port, "GET", "/api/articles", headers=key).body) == ["hello"]
        assert json.loads(request(port, "GET", "/api/articles/hi", headers=key).body) == {"slug": "hi"}
        assert request(port, "GET", "/api/articles/hi", headers={"X-Api-Key": "wrong"}).status == 403


def test_the_readme_lifespan_example_serves_as_it_says():
    with readme_app("### Start-up and shut-down") as (port, names):
        assert json.loads(request(port, "GET", "/users").body) == ["ann"]
    assert names["app"].state.db == {}


def test_the_readme_exception_handlers_example_serves_as_it_says():
    with readme_app("### Exception handlers") as (port, _):
        reply = request(port, "GET", "/articles/hello")
        assert (reply.status, json.loads(reply.body)) == (404, {"errors": {"body": ["article hello"]}})
        reply = request(port, "GET", "/articles/private")
        assert (reply.status, json.loads(reply.body)) == (401, {"errors": {"body": ["log in first"]}})
        reply = request(port, "GET", "/articles/hello?page=two")
        assert (reply.status, json.loads(reply.body)) == (422, {"errors": ["Input should be a valid integer, unable to parse string as an integer"]})
        reply = request(port, "GET", "/nowhere")
        assert (reply.status, json.loads(reply.body)) == (404, {"errors": {"body": ["no /nowhere"]}})


def test_the_readme_middleware_example_serves_as_it_says():
    with readme_app("### Middleware") as (port, _):
        reply = request(port, "GET", "/items/3", headers={"X-Api-Key": "secret"})
        assert (reply.status, json.loads(reply.body)) == (200, {"n": 3, "client": "trusted"})
        assert reply.header("X-Time").endswith(" ms")
        reply = request(port, "GET", "/items/3")
        assert (reply.status, json.loads(reply.body)) == (403, {"detail": "bad API key"})
        assert reply.header("X-Time") is not None
        reply = request(port, "GET", "/health")
        assert (reply.status, reply.header("X-Time")) == (200, None)


def test_the_readme_testclient_example_passes():
    namespace: Dict[str, Any] = {}
    exec(compile(readme_block("### Testing with `TestClient`"), "README.md", "exec", dont_inherit=True), namespace)
    namespace["test_item"]()
    assert not namespace["app"].running


def test_the_readme_request_bodies_example_serves_as_it_says():
    with readme_app("### Request bodies") as (port, _):
        reply = request(port, "POST", "/items", body=b'{"name": "pen", "price": 2}')
        assert (reply.status, json.loads(reply.body)) == (200, {"name": "pen", "price": 2.0, "tags": []})
        reply = request(port, "POST", "/items", body=b'{"price": "free"}')
        assert reply.status == 422
        assert [e["loc"] for e in json.loads(reply.body)["detail"]] == [["body", "name"], ["body", "price"]]
        reply = request(port, "POST", "/items/3/owned", body=b'{"item": {"name": "pen", "price": 1}, "owner": {"name": "ann"}}')
        assert json.loads(reply.body) == {"n": 3, "item": "pen", "owner": "ann"}
        assert json.loads(request(port, "GET", "/users/7").body) == {"name": "user 7"}
        assert json.loads(request(port, "POST", "/ratings", body=b'{"stars": 5}').body) == {"stars": 5}


def test_the_readme_background_tasks_example_serves_as_it_says():
    with readme_app("### Background tasks") as (port, names):
        reply = request(port, "POST", "/signup", body=b'{"email": "ann@example.com"}')
        assert json.loads(reply.body) == {"ok": True}
        deadline = time.monotonic() + 5
        while not names["sent"] and time.monotonic() < deadline:
            time.sleep(0.01)  # polls for the task, bounded
        assert names["sent"] == [("ann@example.com", "welcome")]


def test_articles_example_signs_up_authenticates_and_stores_in_sqlite(served):
    port = served("articles")

    def send(method, path, data=None, token=None):
        headers = {"Authorization": f"Token {token}"} if token else {}
        body = None if data is None else json.dumps(data).encode()
        reply = request(port, method, path, body=body, headers=headers)
        return reply.status, (json.loads(reply.body) if reply.body else None)

    status, ann = send("POST", "/api/users", {"username": "ann", "password": "correct horse"})
    assert status == 201 and ann["username"] == "ann"
    assert send("POST", "/api/users", {"username": "ann", "password": "another one"})[0] == 409
    bo = send("POST", "/api/users", {"username": "bo", "password": "battery staple"})[1]

    assert send("POST", "/api/articles", {"title": "Hello", "body": "x"})[0] == 422  # no token: the header is required
    assert send("POST", "/api/articles", {"title": "Hello", "body": "x"}, token="wrong") == (401, {"detail": "invalid token"})
    created = send("POST", "/api/articles", {"title": "Hello World", "body": "first"}, token=ann["token"])
    assert created == (201, {"slug": "hello-world", "title": "Hello World", "body": "first", "author": "ann"})
    send("POST", "/api/articles", {"title": "Second", "body": "two"}, token=bo["token"])

    assert send("GET", "/api/articles?author=ann") == (200, {"articles": [{"slug": "hello-world", "title": "Hello World", "author": "ann"}]})
    assert len(send("GET", "/api/articles")[1]["articles"]) == 2
    assert send("GET", "/api/articles/hello-world")[1]["body"] == "first"
    assert send("GET", "/api/articles/nope") == (404, {"errors": {"body": ["article 'nope' not found"]}})
    assert send("DELETE", "/api/articles/hello-world", token=bo["token"])[0] == 404, "not bo's article"
    assert send("DELETE", "/api/articles/hello-world", token=ann["token"]) == (204, None)
    assert send("GET", "/api/articles/hello-world")[0] == 404


def test_the_readme_streams_example_serves_as_it_says(tmp_path, monkeypatch):
    from sufast.testclient import TestClient

    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.csv").write_text("id,total\n1,10\n")
    namespace: Dict[str, Any] = {}
    code = compile(readme_block("### Streams, server-sent events and files"), "README.md", "exec", dont_inherit=True)
    exec(code, namespace)
    with TestClient(namespace["app"]) as client:
        response = client.get("/lines/3")
        assert response.content == b"line 0\nline 1\nline 2\n"
        assert response.headers["transfer-encoding"] == "chunked"
        assert client.get("/export.csv?limit=1").text == "id,name\n1,row 1\n"
        response = client.get("/ticks", headers={"Last-Event-ID": "5"})
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-store"
        assert response.text == "".join(f'event: tick\nid: {n}\ndata: {{"n":{n}}}\n\n' for n in (6, 7, 8))
        response = client.get("/report")
        assert response.content == b"id,total\n1,10\n"
        assert response.headers["content-disposition"] == 'attachment; filename="report.csv"'
        assert client.get("/report", headers={"If-None-Match": response.headers["etag"]}).status_code == 304
        assert client.get("/report", headers={"Range": "bytes=0-1"}).content == b"id"


def test_the_readme_websocket_example_chats(monkeypatch):
    from sufast.testclient import TestClient
    from websockets.sync.client import connect

    namespace: Dict[str, Any] = {}
    exec(compile(readme_block("### WebSockets"), "README.md", "exec", dont_inherit=True), namespace)
    app = namespace["app"]
    with TestClient(app) as client:
        port = client._port
        with connect(f"ws://127.0.0.1:{port}/chat/lobby?name=ada") as ada:
            ada.send("hello")
            assert ada.recv() == '{"from":"ada","text":"hello"}'
            with connect(f"ws://127.0.0.1:{port}/chat/lobby") as guest:
                guest.send("hi")
                assert guest.recv() == '{"from":"guest","text":"hi"}'
                assert ada.recv() == '{"from":"guest","text":"hi"}'
        assert client.get("/chat/lobby").status_code == 426


def test_the_readme_upload_stream_example_hashes_as_it_reads():
    import hashlib

    from sufast.testclient import TestClient

    namespace: Dict[str, Any] = {}
    exec(compile(readme_block("### `Request`"), "README.md", "exec", dont_inherit=True), namespace)
    app = namespace["app"]
    assert app.routes[0].table_entry()["stream"] is True
    body = b"payload " * 100_000
    with TestClient(app) as client:
        answer = client.post("/uploads", content=body).json()
    assert answer == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
