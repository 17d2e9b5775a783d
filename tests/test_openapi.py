"""The OpenAPI document (``app.openapi()``) and the routes that serve it,
``/openapi.json``, ``/docs`` and ``/redoc``, over real HTTP.

No ``from __future__ import annotations``: the models' annotations are
real types."""

import contextlib
import dataclasses
import datetime
import decimal
import enum
import os
import subprocess
import sys
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, TypedDict

import pytest
from conftest import ROOT
from openapi_spec_validator import validate
from test_examples import load, readme_block

from sufast import App, Body, Cookie, Depends, File, Form, Header, HTMLResponse, Path, Query, Request, RouteError, Router, UploadFile
from sufast.testclient import TestClient

REF = "#/components/schemas/"


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Tag:
    name: str


@dataclasses.dataclass
class Item:
    """Something for sale."""

    name: str
    price: float
    color: Color = Color.RED
    tags: List[Tag] = dataclasses.field(default_factory=list)
    size: Literal["s", "m", "l"] = "m"
    note: Optional[str] = None
    counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    pair: Tuple[int, str] = (1, "a")
    ids: Tuple[uuid.UUID, ...] = ()
    made: Optional[datetime.datetime] = None
    day: datetime.date = datetime.date(2026, 1, 2)
    cost: decimal.Decimal = decimal.Decimal("1.50")


@dataclasses.dataclass
class Node:
    value: int
    children: List["Node"] = dataclasses.field(default_factory=list)


class Owner(TypedDict):
    name: str
    email: str


class Extras(TypedDict, total=False):
    nickname: str


@dataclasses.dataclass
class Public:
    name: str


@dataclasses.dataclass
class Message:
    detail: str


def operation(app: App, method: str, path: str) -> Dict[str, Any]:
    return app.openapi()["paths"][path][method]


def parameters(app: App, method: str, path: str) -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {(p["in"], p["name"]): p for p in operation(app, method, path).get("parameters", [])}


def component(app: App, name: str) -> Dict[str, Any]:
    return app.openapi()["components"]["schemas"][name]


def body_schema(app: App, method: str, path: str, media: str = "application/json") -> Dict[str, Any]:
    return operation(app, method, path)["requestBody"]["content"][media]["schema"]


# The document --------------------------------------------------------------


def test_the_document_is_openapi_3_1_with_the_apps_title_version_and_description():
    app = App(title="Shop", version="2.1.0", description="Things to buy.")

    @app.get("/")
    def home():
        return {"hello": "world"}

    document = app.openapi()
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "Shop", "version": "2.1.0", "description": "Things to buy."}
    assert list(document["paths"]) == ["/"]
    assert "components" not in document, "no parameters: no 422 schemas"
    validate(document)
    assert app.openapi() is document is app.openapi_schema, "built once and kept"
    assert App().openapi()["info"] == {"title": "sufast", "version": "0.1.0"}


def test_path_query_header_and_cookie_parameters_with_types_defaults_and_aliases():
    app = App()

    @app.get("/files/{owner}/{n:int}/{rest:path}")
    def files(
        owner: str,
        n: int,
        rest: str,
        tags: List[str] = [],
        limit: Optional[int] = None,
        page_size: int = Query(20, alias="page-size"),
        x_request_id: Optional[str] = Header(None),
        user_agent: str = Header(),
        raw_name: str = Header("x", convert_underscores=False),
        theme: str = Cookie("light"),
        key: Optional[uuid.UUID] = None,
        flag: bool = False,
        ratio: float = 0.5,
    ):
        return {}

    found = parameters(app, "get", "/files/{owner}/{n}/{rest}")
    assert found[("path", "owner")] == {"name": "owner", "in": "path", "required": True, "schema": {"type": "string", "title": "Owner"}}
    assert found[("path", "n")]["schema"] == {"type": "integer", "title": "N"}
    assert found[("path", "rest")]["required"] is True
    assert found[("query", "tags")] == {
        "name": "tags", "in": "query", "required": False,
        "schema": {"type": "array", "items": {"type": "string"}, "title": "Tags", "default": []},
    }  # fmt: skip
    assert found[("query", "limit")]["schema"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Limit", "default": None}
    assert found[("query", "limit")]["required"] is False
    assert found[("query", "page-size")]["schema"] == {"type": "integer", "title": "Page Size", "default": 20}
    assert found[("header", "x-request-id")]["required"] is False
    assert found[("header", "user-agent")] == {"name": "user-agent", "in": "header", "required": True, "schema": {"type": "string", "title": "User Agent"}}
    assert ("header", "raw_name") in found, "convert_underscores=False keeps the name"
    assert found[("cookie", "theme")]["schema"]["default"] == "light"
    assert found[("query", "key")]["schema"]["anyOf"][0] == {"type": "string", "format": "uuid"}
    assert found[("query", "flag")]["schema"] == {"type": "boolean", "title": "Flag", "default": False}
    assert found[("query", "ratio")]["schema"]["type"] == "number"
    assert len(found) == 13
    validate(app.openapi())


def test_annotated_markers_path_aliases_and_paths_only_the_request_reads():
    app = App()

    @app.get("/a/{item_id}")
    def aliased(item: Annotated[int, Path(alias="item_id")], q: Annotated[str, Query(alias="Q")] = "x"):
        return {}

    @app.get("/b/{slug}/{n:int}")
    def raw(request: Request):
        return {}

    found = parameters(app, "get", "/a/{item_id}")
    assert found[("path", "item_id")]["schema"]["type"] == "integer"
    assert found[("query", "Q")]["schema"]["default"] == "x"
    found = parameters(app, "get", "/b/{slug}/{n}")
    assert found[("path", "slug")]["schema"]["type"] == "string"
    assert found[("path", "n")]["schema"]["type"] == "integer", "the convertor's type"
    validate(app.openapi())


def user(authorization: str = Header(), db: str = Depends(lambda: "db")) -> str:
    return authorization


def page(offset: int = 0, who: str = Depends(user)) -> int:
    return offset


def api_key(x_api_key: str = Header()) -> None:
    return None


def test_dependencies_parameters_count_all_the_way_down_and_once():
    app = App(dependencies=[Depends(api_key)])
    router = Router(prefix="/r", dependencies=[Depends(user)])

    @router.get("/{n:int}")
    def handler(n: int, at: int = Depends(page), who: str = Depends(user), verbose: bool = False):
        return {}

    app.include_router(router)
    found = parameters(app, "get", "/r/{n}")
    assert set(found) == {("path", "n"), ("query", "verbose"), ("query", "offset"), ("header", "authorization"), ("header", "x-api-key")}
    assert found[("header", "authorization")]["required"] is True
    assert "422" in operation(app, "get", "/r/{n}")["responses"]
    validate(app.openapi())


def test_a_dataclass_body_with_every_standard_type_as_a_component():
    app = App()

    @app.post("/items")
    def create(item: Item):
        return {}

    assert operation(app, "post", "/items")["requestBody"] == {"content": {"application/json": {"schema": {"$ref": REF + "Item"}}}, "required": True}
    schema = component(app, "Item")
    assert schema["title"] == "Item" and schema["type"] == "object" and schema["description"] == "Something for sale."
    assert schema["required"] == ["name", "price"]
    fields = schema["properties"]
    assert fields["name"] == {"type": "string", "title": "Name"}
    assert fields["price"] == {"type": "number", "title": "Price"}
    assert fields["color"] == {"$ref": REF + "Color", "default": "red"}
    assert fields["tags"] == {"type": "array", "items": {"$ref": REF + "Tag"}, "title": "Tags"}
    assert fields["size"] == {"enum": ["s", "m", "l"], "type": "string", "title": "Size", "default": "m"}
    assert fields["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Note", "default": None}
    assert fields["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}, "title": "Counts"}
    assert fields["pair"] == {
        "type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2,
        "title": "Pair", "default": [1, "a"],
    }  # fmt: skip
    assert fields["ids"]["items"] == {"type": "string", "format": "uuid"}
    assert fields["made"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    assert fields["day"] == {"type": "string", "format": "date", "title": "Day", "default": "2026-01-02"}
    assert fields["cost"] == {"anyOf": [{"type": "number"}, {"type": "string"}], "title": "Cost", "default": "1.50"}
    assert component(app, "Color") == {"title": "Color", "enum": ["red", "green"], "type": "string"}
    assert component(app, "Tag") == {"title": "Tag", "type": "object", "properties": {"name": {"type": "string", "title": "Name"}}, "required": ["name"]}
    validate(app.openapi())


def test_typeddicts_recursive_dataclasses_and_several_bodies_embedded_by_name():
    app = App()

    @app.post("/owners")
    def owners(owner: Owner, extras: Optional[Extras] = None):
        return {}

    @app.post("/trees")
    def trees(root: Node):
        return {}

    schema = body_schema(app, "post", "/owners")
    assert schema == {"$ref": REF + "Body_owners_owners_post"}
    assert component(app, "Body_owners_owners_post") == {
        "title": "Body_owners_owners_post",
        "type": "object",
        "properties": {
            "owner": {"$ref": REF + "Owner"},
            "extras": {"anyOf": [{"$ref": REF + "Extras"}, {"type": "null"}], "title": "Extras", "default": None},
        },
        "required": ["owner"],
    }
    assert component(app, "Owner")["required"] == ["name", "email"]
    assert "required" not in component(app, "Extras"), "total=False"
    assert component(app, "Node")["properties"]["children"]["items"] == {"$ref": REF + "Node"}
    validate(app.openapi())


def test_body_markers_standard_types_dicts_and_raw_bytes():
    app = App()

    @app.post("/ratings")
    def rate(stars: int = Body(embed=True)):
        return {}

    @app.post("/values")
    def values(values: List[int] = Body()):
        return {}

    @app.post("/items/{n:int}")
    def with_importance(n: int, item: Item, importance: int = Body()):
        return {}

    @app.post("/json")
    def plain(data: dict):
        return {}

    @app.post("/raw")
    def raw(payload: bytes):
        return {}

    ratings = component(app, "Body_rate_ratings_post")
    assert ratings["properties"] == {"stars": {"type": "integer", "title": "Stars"}} and ratings["required"] == ["stars"]
    assert body_schema(app, "post", "/values") == {"type": "array", "items": {"type": "integer"}, "title": "Values"}
    embedded = component(app, "Body_with_importance_items__n__post")
    assert embedded["properties"] == {"item": {"$ref": REF + "Item"}, "importance": {"type": "integer", "title": "Importance"}}
    assert body_schema(app, "post", "/json") == {"type": "object", "additionalProperties": {}, "title": "Data"}
    assert body_schema(app, "post", "/raw", "application/octet-stream") == {"type": "string", "format": "binary"}
    validate(app.openapi())


def test_form_fields_and_files_are_a_form_body():
    app = App()

    @app.post("/login")
    def login(username: str = Form(), remember: bool = Form(False)):
        return {}

    @app.post("/avatars")
    def avatar(user: str = Form(), image: UploadFile = File(), extra: List[UploadFile] = File([]), raw: bytes = File(b"")):
        return {}

    @app.post("/attachments")
    def attachments(files: List[UploadFile]):
        return {}

    login_body = operation(app, "post", "/login")["requestBody"]
    assert login_body == {"content": {"application/x-www-form-urlencoded": {"schema": {"$ref": REF + "Body_login_login_post"}}}, "required": True}
    assert component(app, "Body_login_login_post") == {
        "title": "Body_login_login_post",
        "type": "object",
        "properties": {"username": {"type": "string", "title": "Username"}, "remember": {"type": "boolean", "title": "Remember", "default": False}},
        "required": ["username"],
    }
    avatar_body = body_schema(app, "post", "/avatars", "multipart/form-data")
    fields = component(app, avatar_body["$ref"][len(REF) :])["properties"]
    assert fields["image"] == {"type": "string", "format": "binary", "title": "Image"}
    assert fields["extra"] == {"type": "array", "items": {"type": "string", "format": "binary"}, "title": "Extra"}
    assert fields["raw"] == {"type": "string", "format": "binary", "title": "Raw"}
    assert component(app, avatar_body["$ref"][len(REF) :])["required"] == ["user", "image"]
    files = component(app, body_schema(app, "post", "/attachments", "multipart/form-data")["$ref"][len(REF) :])
    assert files["properties"]["files"]["items"] == {"type": "string", "format": "binary"}
    validate(app.openapi())


def test_response_models_from_the_decorator_or_the_return_annotation_and_status_codes():
    app = App()

    @app.get("/users/{n:int}", response_model=Public)
    def one(n: int):
        return {"name": "x", "password": "never sent"}

    @app.get("/users")
    def many() -> List[Public]:
        return []

    @app.post("/users", status_code=201)
    def create(user: Public) -> Public:
        return user

    @app.get("/off", response_model=None)
    def off() -> Public:
        return Public("x")

    @app.delete("/users/{n:int}", status_code=204)
    def delete(n: int) -> None:
        return None

    @app.get("/page")
    def html_page() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>")

    def content(method: str, path: str, status: str) -> Any:
        return operation(app, method, path)["responses"][status].get("content")

    assert content("get", "/users/{n}", "200") == {"application/json": {"schema": {"$ref": REF + "Public"}}}
    assert content("get", "/users", "200") == {"application/json": {"schema": {"type": "array", "items": {"$ref": REF + "Public"}}}}
    assert list(operation(app, "post", "/users")["responses"]) == ["201", "422"]
    assert content("post", "/users", "201")["application/json"]["schema"] == {"$ref": REF + "Public"}
    assert content("get", "/off", "200") == {"application/json": {"schema": {}}}
    assert operation(app, "delete", "/users/{n}")["responses"]["204"] == {"description": "Successful Response"}
    assert content("get", "/page", "200") == {"text/html": {"schema": {"type": "string"}}}
    assert operation(app, "get", "/users")["responses"]["200"]["description"] == "Successful Response"
    validate(app.openapi())


def test_docstrings_summaries_descriptions_and_operation_ids():
    app = App()

    @app.get("/documented/{n:int}")
    def documented(n: int):
        """Read one thing.

        It is found by its number.
        More lines follow.
        \f
        What follows a form feed is for the code's readers only."""

    @app.get("/named")
    def read_all_items():
        return []

    @app.get("/given", summary="Given summary", description="Given description", operation_id="given_one")
    def given():
        """Not the summary.

        Not the description."""
        return []

    @app.get("/summary-only", summary="Just this")
    def summary_only():
        """The whole docstring.

        Is the description."""
        return []

    documented_op = operation(app, "get", "/documented/{n}")
    assert documented_op["summary"] == "Read one thing."
    assert documented_op["description"] == "It is found by its number.\nMore lines follow."
    assert documented_op["operationId"] == "documented_documented__n__get"
    named = operation(app, "get", "/named")
    assert (named["summary"], named["operationId"]) == ("Read All Items", "read_all_items_named_get")
    assert "description" not in named
    given_op = operation(app, "get", "/given")
    assert (given_op["summary"], given_op["description"], given_op["operationId"]) == ("Given summary", "Given description", "given_one")
    only = operation(app, "get", "/summary-only")
    assert (only["summary"], only["description"]) == ("Just this", "The whole docstring.\n\nIs the description.")
    validate(app.openapi())


def test_tags_from_routes_and_routers_responses_deprecated_and_include_in_schema():
    app = App()
    inner = Router(prefix="/inner", tags=["inner"])
    outer = Router(prefix="/outer", tags=["outer"])

    @inner.get("/{n:int}", tags=["route"], responses={404: {"description": "No such thing", "model": Message}, "5XX": {}})
    def thing(n: int):
        return {}

    @inner.get("/old", deprecated=True)
    def old():
        return {}

    @inner.get("/hidden", include_in_schema=False)
    def hidden():
        return {"secret": True}

    outer.include_router(inner)
    app.include_router(outer, tags=["app"])

    @app.post("/own-422", responses={422: {"description": "Refused", "content": {"application/json": {"schema": {"$ref": REF + "Message"}}}}})
    def own(item: Message):
        return {}

    @app.get("/default", responses={"default": {"description": "Anything else"}})
    def default(q: int = 0):
        return {}

    op = operation(app, "get", "/outer/inner/{n}")
    assert op["tags"] == ["app", "outer", "inner", "route"]
    assert op["responses"]["404"] == {"description": "No such thing", "content": {"application/json": {"schema": {"$ref": REF + "Message"}}}}
    assert op["responses"]["5XX"] == {"description": "Server Error"}
    assert list(op["responses"]) == ["200", "404", "5XX", "422"]
    assert operation(app, "get", "/outer/inner/old")["deprecated"] is True
    assert "deprecated" not in op
    assert "/outer/inner/hidden" not in app.openapi()["paths"]
    assert operation(app, "post", "/own-422")["responses"]["422"]["description"] == "Refused", "a declared 422 replaces the validation one"
    assert list(operation(app, "get", "/default")["responses"]) == ["200", "default"]
    assert component(app, "Message")["required"] == ["detail"]
    validate(app.openapi())
    with TestClient(app) as client:
        assert client.get("/outer/inner/hidden").json() == {"secret": True}, "left out of the document, still served"


def test_the_validation_error_schemas_are_fastapis_and_only_for_routes_that_take_input():
    app = App()

    @app.get("/fixed")
    def fixed():
        return {}

    @app.get("/q")
    def with_query(q: int = 0):
        return {}

    assert "422" not in operation(app, "get", "/fixed")["responses"]
    assert operation(app, "get", "/q")["responses"]["422"] == {
        "description": "Validation Error",
        "content": {"application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}},
    }
    assert component(app, "HTTPValidationError")["properties"]["detail"] == {"title": "Detail", "type": "array", "items": {"$ref": REF + "ValidationError"}}
    assert set(component(app, "ValidationError")["properties"]) >= {"loc", "msg", "type"}
    required = component(app, "ValidationError")["required"]
    assert required == ["loc", "msg", "type"]
    with TestClient(app) as client:
        reply = client.get("/q", params={"q": "x"})
        assert reply.status_code == 422
        assert all(set(required) <= set(error) for error in reply.json()["detail"]), "a 422 has what the schema requires"


def test_registration_refuses_openapi_keywords_of_the_wrong_kind():
    app = App()
    with pytest.raises(RouteError, match="responses must be a dict"):
        app.get("/a", responses=[404])(lambda: {})
    with pytest.raises(RouteError, match="'teapot' is not a status code"):
        app.get("/b", responses={"teapot": {}})(lambda: {})
    with pytest.raises(RouteError, match="include_in_schema must be True or False"):
        app.get("/c", include_in_schema="no")(lambda: {})
    with pytest.raises(RouteError, match="summary must be a str"):
        app.get("/d", summary=3)(lambda: {})
    assert app.routes == [], "nothing was registered"
    with pytest.raises(ValueError, match="docs_url must be a path starting with '/'"):
        App(docs_url="docs")


# Served --------------------------------------------------------------------


def served_app(**options: Any) -> App:
    app = App(title="Served", **options)

    @app.get("/items/{n:int}")
    def item(n: int):
        return {"n": n}

    @app.middleware("http")
    def mark(request, call_next):
        response = call_next(request)
        response.headers["X-Through"] = "middleware"
        return response

    return app


def test_the_document_swagger_ui_and_redoc_are_served_as_stored_routes():
    app = served_app()
    with TestClient(app) as client:
        reply = client.get("/openapi.json")
        assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
        assert reply.json() == app.openapi()
        assert set(reply.json()["paths"]) == {"/items/{n}"}, "the three routes are not in the document"
        assert reply.headers.get("x-through") is None, "stored: served without Python, so without the middleware"
        assert client.get("/items/3").headers["x-through"] == "middleware"
        validate(reply.json())

        docs = client.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"] == "text/html; charset=utf-8"
        assert "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js" in docs.text
        assert "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css" in docs.text
        assert '"url": "/openapi.json"' in docs.text and "<title>Served - Swagger UI</title>" in docs.text
        redoc = client.get("/redoc")
        assert redoc.status_code == 200 and redoc.headers["content-type"] == "text/html; charset=utf-8"
        assert "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js" in redoc.text
        assert '<redoc spec-url="/openapi.json">' in redoc.text and "<title>Served - ReDoc</title>" in redoc.text
        assert client.head("/openapi.json").status_code == 200

        @app.get("/later")
        def later():
            return {"later": True}

        assert client.get("/later").json() == {"later": True}
        assert "/later" not in client.get("/openapi.json").json()["paths"], "built once, when the app started"

    summary = app._route_summary()
    assert "openapi" not in summary and "/docs" not in summary and "/redoc" not in summary, summary
    assert [line.split()[:2] for line in summary.splitlines() if line.startswith("  GET")] == [["GET", "/items/{n:int}"], ["GET", "/later"]]


def test_routes_added_at_start_up_are_in_the_document():
    def add_route(app: App):
        @app.get("/from-lifespan")
        def from_lifespan():
            return {}

        return contextlib.nullcontext()

    app = App(lifespan=add_route)
    with TestClient(app) as client:
        assert "/from-lifespan" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "options, served",
    [
        ({"openapi_url": None}, {"/openapi.json": 404, "/docs": 404, "/redoc": 404}),
        ({"docs_url": None}, {"/openapi.json": 200, "/docs": 404, "/redoc": 200}),
        ({"redoc_url": None}, {"/openapi.json": 200, "/docs": 200, "/redoc": 404}),
        ({"openapi_url": "/api/schema.json", "docs_url": "/api/docs", "redoc_url": None},
         {"/api/schema.json": 200, "/api/docs": 200, "/openapi.json": 404, "/docs": 404, "/redoc": 404}),
    ],
)  # fmt: skip
def test_the_urls_are_chosen_or_turned_off(options, served):
    app = served_app(**options)
    with TestClient(app) as client:
        assert {path: client.get(path).status_code for path in served} == served
        if options.get("docs_url") == "/api/docs":
            assert '"url": "/api/schema.json"' in client.get("/api/docs").text
        assert client.get("/items/1").json() == {"n": 1}
    assert app.openapi()["paths"], "app.openapi() works whatever is served"


def test_a_replaced_openapi_method_is_what_is_served_and_one_that_fails_is_logged(caplog):
    app = served_app()
    app.openapi = lambda: {"openapi": "3.1.0", "info": {"title": "custom", "version": "1"}, "paths": {}}
    with TestClient(app) as client:
        assert client.get("/openapi.json").json()["info"]["title"] == "custom"

    def broken() -> Dict[str, Any]:
        raise RuntimeError("no document today")

    app = served_app()
    app.openapi = broken
    with TestClient(app) as client:
        assert [client.get(path).status_code for path in ("/openapi.json", "/docs", "/redoc")] == [404, 404, 404]
        assert client.get("/items/2").json() == {"n": 2}, "the app's routes are served"
    assert "the OpenAPI document could not be built" in caplog.text and "no document today" in caplog.text


def test_a_route_of_the_app_at_a_documentation_path_replaces_it():
    app = App()

    @app.get("/docs")
    def my_docs():
        return "my own docs"

    with TestClient(app) as client:
        assert client.get("/docs").text == "my own docs"
        assert client.get("/redoc").status_code == 200
        assert list(client.get("/openapi.json").json()["paths"]) == ["/docs"]


# Every example app, and the README ------------------------------------------

EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_apps_document_is_valid_openapi(name):
    app = load(name).app
    document = app.openapi()
    validate(document)
    assert document["paths"]
    with TestClient(app) as client:
        assert client.get("/openapi.json").json() == document
        assert client.get("/docs").status_code == 200


def test_the_readme_openapi_example_serves_as_it_says():
    namespace: Dict[str, Any] = {}
    exec(compile(readme_block("### OpenAPI and /docs"), "README.md", "exec", dont_inherit=True), namespace)
    app = namespace["app"]
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
        validate(document)
        assert document["info"]["title"] == "Pets"
        operation = document["paths"]["/pets/{pet_id}"]["get"]
        assert operation["summary"] == "Get one pet." and operation["tags"] == ["pets"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": REF + "Pet"}
        assert operation["responses"]["404"]["description"] == "No such pet"
        assert "/internal" not in document["paths"]
        assert client.get("/docs").status_code == 200
        assert client.get("/pets/1").json() == {"id": 1, "name": "Rex", "kind": "dog"}
        assert client.get("/pets/9").status_code == 404


# A property-based run against the inventory example ---------------------------


def test_schemathesis_finds_no_server_error_in_the_inventory_example(tmp_path):
    schemathesis = FilePath(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.skip("schemathesis is not installed in this venv (tests/requirements.txt has it)")
    app = load("inventory").app
    with TestClient(app) as client:
        client.get("/openapi.json")  # started
        url = f"http://127.0.0.1:{app.port}/openapi.json"
        checks = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
        done = subprocess.run(
            [str(schemathesis), "run", url, "--checks", checks, "--max-examples", "50", "--seed", "1"],
            cwd=tmp_path,  # its .hypothesis and report folders stay out of the tree
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
