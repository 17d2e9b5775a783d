"""Exception handlers over real HTTP: by class (the most specific base
wins), by status code, for the 422 of bad parameters, sync and async, and
a handler that fails itself."""

from __future__ import annotations

import pytest

from sufast import App, HTTPException, JSONResponse, PlainTextResponse, Request, RequestValidationError
from sufast.testclient import TestClient


class NotFound(Exception):
    pass


class ArticleNotFound(NotFound):
    pass


def test_exception_handlers_by_class_status_and_for_validation(caplog):
    app = App()

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound):
        return JSONResponse({"errors": {"body": [str(exc)]}}, status_code=404)

    @app.exception_handler(ArticleNotFound)
    async def article_not_found(request: Request, exc: ArticleNotFound):
        return JSONResponse({"article": str(exc), "path": request.path}, status_code=404)

    @app.exception_handler(401)
    def unauthorized(request: Request, exc: HTTPException):
        return PlainTextResponse(f"login first ({exc.detail})", status_code=401, headers={"WWW-Authenticate": "Token"})

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"errors": {"body": [e["msg"] for e in exc.errors()]}}, status_code=422)

    @app.exception_handler(ZeroDivisionError)
    def broken_handler(request: Request, exc: ZeroDivisionError):
        raise RuntimeError("the handler fails too")

    @app.get("/users/{name}")
    def user(name: str):
        raise NotFound(f"user {name}")

    @app.get("/articles/{slug}")
    async def article(slug: str):
        raise ArticleNotFound(slug)

    @app.get("/sync-article/{slug}")
    def sync_article(slug: str):
        raise ArticleNotFound(slug)  # an async exception handler, from a handler thread

    @app.get("/private")
    def private(request: Request):
        raise HTTPException(401, "no token")

    @app.get("/teapot")
    def teapot(request: Request):
        raise HTTPException(418, "short and stout")  # no handler: the usual detail

    @app.get("/page")
    def page(n: int):
        return {"n": n}

    @app.get("/divide")
    def divide(request: Request):
        return 1 / 0

    with TestClient(app, raise_server_exceptions=False) as client:
        reply = client.get("/users/ann")
        assert (reply.status_code, reply.json()) == (404, {"errors": {"body": ["user ann"]}})
        for path in ("/articles/hello", "/sync-article/hello"):
            reply = client.get(path)
            assert (reply.status_code, reply.json()) == (404, {"article": "hello", "path": path}), path
        reply = client.get("/private")
        assert (reply.status_code, reply.content, reply.headers.get("WWW-Authenticate")) == (401, b"login first (no token)", "Token")
        reply = client.get("/teapot")
        assert (reply.status_code, reply.json()) == (418, {"detail": "short and stout"})
        reply = client.get("/page?n=ten")
        assert (reply.status_code, reply.json()) == (422, {"errors": {"body": ["Input should be a valid integer, unable to parse string as an integer"]}})
        reply = client.get("/divide")
        assert (reply.status_code, reply.json()) == (500, {"detail": "Internal Server Error"})
        assert client.get("/page?n=1").status_code == 200
    assert "the exception handler for ZeroDivisionError raised RuntimeError; the client got a 500" in caplog.text


def test_exception_handlers_given_to_the_app_and_bad_keys():
    app = App(exception_handlers={KeyError: lambda request, exc: JSONResponse({"missing": exc.args[0]}, 400)})

    @app.get("/k")
    def k(request: Request):
        return {}["gone"]

    with pytest.raises(TypeError, match="an exception class or a status code"):
        app.exception_handler("404")
    with pytest.raises(ValueError, match="400 to 599"):
        app.exception_handler(200)
    with TestClient(app) as client:
        reply = client.get("/k")
        assert (reply.status_code, reply.json()) == (400, {"missing": "gone"})


def test_an_exception_handler_runs_once_even_when_it_returns_none():
    calls = []

    class Gone(Exception):
        pass

    app = App()

    @app.exception_handler(Gone)
    def gone(request: Request, exc: Gone):
        calls.append(request.path)  # returns None: sent as JSON null

    @app.get("/sync")
    def sync_route(request: Request):
        raise Gone()

    @app.get("/async")
    async def async_route(request: Request):
        raise Gone()

    with TestClient(app) as client:
        for path in ("/sync", "/async"):
            reply = client.get(path)
            assert (reply.status_code, reply.content) == (500, b"null"), path
    assert calls == ["/sync", "/async"]


def test_a_404_or_405_handler_answers_requests_no_route_takes(caplog):
    app = App()
    seen = []

    @app.middleware("http")
    def record(request, call_next):
        seen.append(request.path)
        return call_next(request)

    @app.exception_handler(404)
    def not_found(request: Request, exc: HTTPException):
        return JSONResponse({"errors": {"body": [f"no {request.path}"]}}, status_code=404)

    @app.exception_handler(405)
    async def wrong_method(request: Request, exc: HTTPException):
        return JSONResponse({"allowed": exc.headers["Allow"], "method": request.method}, status_code=405, headers=exc.headers)

    app.get("/items")(lambda: ["stored"])
    app.get("/items/{n:int}")(lambda n: n)
    with TestClient(app) as client:
        reply = client.get("/nowhere?x=1")
        assert (reply.status_code, reply.json()) == (404, {"errors": {"body": ["no /nowhere"]}})
        # A convertor that does not match is no route either.
        reply = client.get("/items/ten")
        assert (reply.status_code, reply.json()) == (404, {"errors": {"body": ["no /items/ten"]}})
        reply = client.head("/nowhere")
        assert (reply.status_code, reply.content) == (404, b"")
        reply = client.delete("/items")
        assert (reply.status_code, reply.json()) == (405, {"allowed": "GET, HEAD", "method": "DELETE"})
        assert reply.headers.get("Allow") == "GET, HEAD"
        # The stored route is untouched, the handler routes as before.
        assert client.get("/items").json() == ["stored"]
        assert client.get("/items/3").content == b"3"
        assert seen == ["/nowhere", "/items/ten", "/nowhere", "/items", "/items/3"]


def test_without_a_404_handler_the_server_answers_unmatched_requests_itself():
    app = App()
    seen = []

    @app.middleware("http")
    def record(request, call_next):
        seen.append(request.path)
        return call_next(request)

    # Neither a catch-all Exception handler nor one for 500 takes the 404s.
    app.exception_handler(Exception)(lambda request, exc: JSONResponse({"caught": True}, 500))
    app.exception_handler(500)(lambda request, exc: JSONResponse({"caught": True}, 500))
    app.get("/items")(lambda: [])
    with TestClient(app) as client:
        reply = client.get("/nowhere")
        assert (reply.status_code, reply.json()) == (404, {"detail": "Not Found"})
        reply = client.post("/items")
        assert (reply.status_code, reply.json(), reply.headers.get("Allow")) == (405, {"detail": "Method Not Allowed"}, "GET, HEAD")
        assert seen == []
        # One for HTTPException covers both, also registered while serving.
        app.exception_handler(HTTPException)(lambda request, exc: PlainTextResponse(f"{exc.status_code} {exc.detail}", exc.status_code))
        assert client.get("/nowhere").content == b"404 Not Found"
        assert client.post("/items").content == b"405 Method Not Allowed"
        assert seen == ["/nowhere", "/items"]
