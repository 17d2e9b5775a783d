"""Exception handlers over real HTTP: by class (the most specific base
wins), by status code, for the 422 of bad parameters, sync and async, and
a handler that fails itself."""

from __future__ import annotations

import json

from conftest import request

from sufast import App, HTTPException, JSONResponse, PlainTextResponse, Request, RequestValidationError


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

    try:
        port = app.start()
        reply = request(port, "GET", "/users/ann")
        assert (reply.status, json.loads(reply.body)) == (404, {"errors": {"body": ["user ann"]}})
        for path in ("/articles/hello", "/sync-article/hello"):
            reply = request(port, "GET", path)
            assert (reply.status, json.loads(reply.body)) == (404, {"article": "hello", "path": path}), path
        reply = request(port, "GET", "/private")
        assert (reply.status, reply.body, reply.header("WWW-Authenticate")) == (401, b"login first (no token)", "Token")
        reply = request(port, "GET", "/teapot")
        assert (reply.status, json.loads(reply.body)) == (418, {"detail": "short and stout"})
        reply = request(port, "GET", "/page?n=ten")
        assert (reply.status, json.loads(reply.body)) == (422, {"errors": {"body": ["Input should be a valid integer, unable to parse string as an integer"]}})
        reply = request(port, "GET", "/divide")
        assert (reply.status, json.loads(reply.body)) == (500, {"detail": "Internal Server Error"})
        assert request(port, "GET", "/page?n=1").status == 200
    finally:
        app.stop(timeout=0)
    assert "the exception handler for ZeroDivisionError raised RuntimeError; the client got a 500" in caplog.text


def test_exception_handlers_given_to_the_app_and_bad_keys():
    import pytest

    app = App(exception_handlers={KeyError: lambda request, exc: JSONResponse({"missing": exc.args[0]}, 400)})

    @app.get("/k")
    def k(request: Request):
        return {}["gone"]

    with pytest.raises(TypeError, match="an exception class or a status code"):
        app.exception_handler("404")
    with pytest.raises(ValueError, match="400 to 599"):
        app.exception_handler(200)
    try:
        port = app.start()
        reply = request(port, "GET", "/k")
        assert (reply.status, json.loads(reply.body)) == (400, {"missing": "gone"})
    finally:
        app.stop(timeout=0)


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

    try:
        port = app.start()
        for path in ("/sync", "/async"):
            reply = request(port, "GET", path)
            assert (reply.status, reply.body) == (500, b"null"), path
    finally:
        app.stop(timeout=0)
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
    try:
        port = app.start()
        reply = request(port, "GET", "/nowhere?x=1")
        assert (reply.status, json.loads(reply.body)) == (404, {"errors": {"body": ["no /nowhere"]}})
        # A convertor that does not match is no route either.
        reply = request(port, "GET", "/items/ten")
        assert (reply.status, json.loads(reply.body)) == (404, {"errors": {"body": ["no /items/ten"]}})
        reply = request(port, "HEAD", "/nowhere")
        assert (reply.status, reply.body) == (404, b"")
        reply = request(port, "DELETE", "/items")
        assert (reply.status, json.loads(reply.body)) == (405, {"allowed": "GET, HEAD", "method": "DELETE"})
        assert reply.header("Allow") == "GET, HEAD"
        # The stored route is untouched, the handler routes as before.
        assert json.loads(request(port, "GET", "/items").body) == ["stored"]
        assert request(port, "GET", "/items/3").body == b"3"
        assert seen == ["/nowhere", "/items/ten", "/nowhere", "/items", "/items/3"]
    finally:
        app.stop(timeout=0)


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
    try:
        port = app.start()
        reply = request(port, "GET", "/nowhere")
        assert (reply.status, json.loads(reply.body)) == (404, {"detail": "Not Found"})
        reply = request(port, "POST", "/items")
        assert (reply.status, json.loads(reply.body), reply.header("Allow")) == (405, {"detail": "Method Not Allowed"}, "GET, HEAD")
        assert seen == []
        # One for HTTPException covers both, also registered while serving.
        app.exception_handler(HTTPException)(lambda request, exc: PlainTextResponse(f"{exc.status_code} {exc.detail}", exc.status_code))
        assert request(port, "GET", "/nowhere").body == b"404 Not Found"
        assert request(port, "POST", "/items").body == b"405 Method Not Allowed"
        assert seen == ["/nowhere", "/items"]
    finally:
        app.stop(timeout=0)
