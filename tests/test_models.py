"""JSON bodies validated against dataclasses and TypedDicts, every error
at once in FastAPI's shape, and the values JSON has no type for sent as
FastAPI sends them; over real HTTP with the TestClient.

No ``from __future__ import annotations`` here: the models' annotations
are real types."""

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Dict, List, Literal, Optional, Tuple, TypedDict

import pytest

from sufast import App, RouteError
from sufast.testclient import TestClient


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Tag:
    name: str
    weight: int = 1


@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: List[Tag] = dataclasses.field(default_factory=list)
    color: Optional[Color] = None
    size: Literal["s", "m", "l"] = "m"
    id: Optional[uuid.UUID] = None
    made: Optional[datetime.date] = None
    seen: Optional[datetime.datetime] = None
    box: Tuple[int, int] = (0, 0)
    stock: Dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.price < 0:
            raise ValueError("price must not be negative")


class User(TypedDict):
    name: str
    age: int


class Filters(TypedDict, total=False):
    limit: int


def make_app() -> App:
    app = App()

    @app.post("/items")
    def create(item: Item):
        assert isinstance(item, Item) and all(isinstance(tag, Tag) for tag in item.tags)
        return item

    @app.post("/users")
    def user(user: User, filters: Optional[Filters] = None):
        return {"user": user, "filters": filters}

    @app.post("/maybe/{n:int}")
    def maybe(n: int, item: Optional[Item] = None):
        return {"n": n, "item": None if item is None else item.name}

    @app.get("/values/{n:int}")
    def values(n: int):
        return {
            "color": Color.BLUE,
            "id": uuid.UUID(int=n),
            "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
            "day": datetime.date(2026, 1, 2),
            "price": decimal.Decimal("1.10"),
            "tag": Tag("x", n),
        }

    return app


def test_a_valid_body_becomes_the_dataclass_with_its_defaults_and_conversions():
    with TestClient(make_app()) as client:
        sent = {
            "name": "pen",
            "price": 2,
            "tags": [{"name": "office"}],
            "color": "red",
            "id": "12345678-1234-5678-1234-567812345678",
            "made": "2026-11-30",
            "seen": "2026-11-30T10:00:00Z",
            "box": [3, 4],
            "stock": {"a": 1},
            "unknown": "ignored",
        }
        reply = client.post("/items", json=sent)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "name": "pen",
            "price": 2.0,
            "tags": [{"name": "office", "weight": 1}],
            "color": "red",
            "size": "m",
            "id": "12345678-1234-5678-1234-567812345678",
            "made": "2026-11-30",
            "seen": "2026-11-30T10:00:00+00:00",
            "box": [3, 4],
            "stock": {"a": 1},
        }


def test_every_error_of_a_body_is_given_at_once_with_its_location():
    with TestClient(make_app()) as client:
        reply = client.post(
            "/items",
            json={"price": "free", "tags": [{"name": 1}, {}], "color": "green", "size": "xl", "id": "nope", "made": "soon", "box": [1], "stock": {"a": "x"}},
        )
        assert reply.status_code == 422
        errors = reply.json()["detail"]
        assert [(e["type"], e["loc"]) for e in errors] == [
            ("missing", ["body", "name"]),
            ("float_parsing", ["body", "price"]),
            ("string_type", ["body", "tags", 0, "name"]),
            ("missing", ["body", "tags", 1, "name"]),
            ("enum", ["body", "color"]),
            ("literal_error", ["body", "size"]),
            ("uuid_parsing", ["body", "id"]),
            ("date_parsing", ["body", "made"]),
            ("tuple_length", ["body", "box"]),
            ("int_parsing", ["body", "stock", "a"]),
        ]
        assert errors[0]["msg"] == "Field required"
        assert errors[1] == {
            "type": "float_parsing",
            "loc": ["body", "price"],
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": "free",
        }
        assert errors[4]["msg"] == "Input should be 'red' or 'blue'"
        assert errors[5]["msg"] == "Input should be 's', 'm' or 'l'"
        # A dataclass's own check (__post_init__) is a value error.
        reply = client.post("/items", json={"name": "pen", "price": -1})
        assert reply.status_code == 422
        assert reply.json()["detail"][0]["type"] == "value_error"
        assert reply.json()["detail"][0]["msg"] == "Value error, price must not be negative"


def test_missing_malformed_and_wrongly_shaped_bodies_are_422():
    with TestClient(make_app()) as client:
        assert client.post("/items").json() == {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]}
        reply = client.post("/items", content=b"{not json")
        assert reply.status_code == 422 and reply.json()["detail"][0]["type"] == "json_invalid"
        reply = client.post("/items", json=[1, 2])
        assert reply.json()["detail"][0]["type"] == "model_attributes_type"
        # Optional: no body is None.
        assert client.post("/maybe/1").json() == {"n": 1, "item": None}
        assert client.post("/maybe/2", json={"name": "a", "price": 1}).json() == {"n": 2, "item": "a"}


def test_typeddicts_and_several_bodies_embedded_by_name():
    with TestClient(make_app()) as client:
        reply = client.post("/users", json={"user": {"name": "ann", "age": 30}, "filters": {"limit": 5}})
        assert reply.json() == {"user": {"name": "ann", "age": 30}, "filters": {"limit": 5}}
        assert client.post("/users", json={"user": {"name": "ann", "age": 30}}).json()["filters"] is None
        reply = client.post("/users", json={"user": {"name": "ann", "age": "old"}, "filters": {"limit": "x"}})
        assert [(e["type"], e["loc"]) for e in reply.json()["detail"]] == [
            ("int_parsing", ["body", "user", "age"]),
            ("int_parsing", ["body", "filters", "limit"]),
        ]
        reply = client.post("/users", json={"filters": {}})
        assert reply.json()["detail"] == [{"type": "missing", "loc": ["body", "user"], "msg": "Field required", "input": {"filters": {}}}]


def test_values_json_has_no_type_for_are_sent_as_fastapi_sends_them():
    with TestClient(make_app()) as client:
        assert client.get("/values/1").json() == {
            "color": "blue",
            "id": "00000000-0000-0000-0000-000000000001",
            "when": "2026-01-02T03:04:05",
            "day": "2026-01-02",
            "price": "1.10",
            "tag": {"name": "x", "weight": 1},
        }


def test_a_body_type_that_cannot_be_validated_is_refused_at_registration():
    class Opaque:
        pass

    @dataclasses.dataclass
    class Holder:
        thing: Opaque

    app = App()
    with pytest.raises(RouteError, match=r"route POST /h: handler .*: parameter 'body': field Holder.thing: the body type .*Opaque.* is not supported"):
        app.post("/h")(_takes_holder(Holder))


def _takes_holder(holder_type):
    def handler(body: holder_type):  # type: ignore[valid-type]
        return body

    return handler


@dataclasses.dataclass
class Public:
    name: str
    price: float = 0.0


class PublicUser(TypedDict):
    name: str


def test_a_response_model_checks_and_filters_what_is_sent(caplog):
    app = App()

    @app.get("/items/{n:int}", response_model=Public)
    def item(n: int):
        return {"name": f"item {n}", "price": n, "secret": "kept inside"}

    @app.get("/annotated/{n:int}")
    def annotated(n: int) -> List[PublicUser]:
        return [{"name": "ann", "password": "x"}] * n

    @app.get("/unchecked/{n:int}", response_model=None)
    def unchecked(n: int) -> Public:
        return {"anything": n}

    @app.get("/wrong/{n:int}", response_model=Public)
    def wrong(n: int):
        return {"price": "free"}

    # A precomputed route is filtered once, at registration.
    app.get("/stored", response_model=Public)(lambda: {"name": "stored", "secret": 1})
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/items/2").json() == {"name": "item 2", "price": 2.0}
        assert client.get("/annotated/2").json() == [{"name": "ann"}, {"name": "ann"}]
        assert client.get("/unchecked/1").json() == {"anything": 1}
        assert client.get("/stored").json() == {"name": "stored", "price": 0.0}
        reply = client.get("/wrong/1")
        assert (reply.status_code, reply.json()) == (500, {"detail": "Internal Server Error"})
    assert "the return value does not match the response model Public (response.name: Field required; response.price: Input should be a valid number, unable to parse string as a number)" in caplog.text


def test_body_reads_one_field_or_the_whole_body_as_any_type():
    from sufast import Body

    app = App()

    @app.post("/embedded")
    def embedded(item: Item = Body(embed=True)):
        return {"name": item.name}

    @app.post("/mixed")
    def mixed(item: Item, importance: int = Body(), note: Optional[str] = Body(None)):
        return {"name": item.name, "importance": importance, "note": note}

    @app.post("/numbers")
    def numbers(values: List[int] = Body()):
        return sum(values)

    with TestClient(app) as client:
        assert client.post("/embedded", json={"item": {"name": "a", "price": 1}}).json() == {"name": "a"}
        reply = client.post("/embedded", json={"name": "a", "price": 1})
        assert reply.json()["detail"][0]["loc"] == ["body", "item"]
        reply = client.post("/mixed", json={"item": {"name": "a", "price": 1}, "importance": 5})
        assert reply.json() == {"name": "a", "importance": 5, "note": None}
        reply = client.post("/mixed", json={"item": {"name": "a", "price": 1}, "importance": "high"})
        assert reply.json()["detail"] == [
            {"type": "int_parsing", "loc": ["body", "importance"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "high"}
        ]
        assert client.post("/numbers", json=[1, 2, 3]).json() == 6


def test_numbers_and_booleans_in_strings_are_taken_as_fastapi_takes_them():
    @dataclasses.dataclass
    class Flags:
        count: int
        ratio: float
        on: bool
        keyed: Dict[int, str] = dataclasses.field(default_factory=dict)

    app = App()
    app.post("/flags")(_echo(Flags))
    with TestClient(app) as client:
        reply = client.post("/flags", json={"count": "12", "ratio": "0.5", "on": "yes", "keyed": {"1": "a"}})
        assert reply.json() == {"count": 12, "ratio": 0.5, "on": True, "keyed": {"1": "a"}}
        assert client.post("/flags", json={"count": 3.0, "ratio": 1, "on": 0}).json() == {"count": 3, "ratio": 1.0, "on": False, "keyed": {}}
        reply = client.post("/flags", json={"count": "twelve", "ratio": "half", "on": "maybe", "keyed": {"x": "a"}})
        assert [(e["type"], e["loc"]) for e in reply.json()["detail"]] == [
            ("int_parsing", ["body", "count"]),
            ("float_parsing", ["body", "ratio"]),
            ("bool_parsing", ["body", "on"]),
            ("int_parsing", ["body", "keyed", "x", "[key]"]),
        ]


def _echo(model):
    def handler(body: model):  # type: ignore[valid-type]
        return body

    return handler


def test_the_fast_path_takes_exactly_what_the_full_validator_takes():
    """A dataclass or TypedDict is checked first by a generated fast path;
    every value it passes on must come out as the full validator makes it,
    and every value it refuses must get the full validator's errors."""
    import typing

    from sufast import models

    class Mode(enum.Enum):
        ON = 1
        OFF = "off"

    @dataclasses.dataclass
    class Inner:
        x: float

    @dataclasses.dataclass
    class Every:
        n: int
        f: float
        b: bool
        s: str
        maybe: Optional[float] = None
        names: List[str] = dataclasses.field(default_factory=list)
        pick: typing.Literal[1, "a"] = 1
        mode: Mode = Mode.OFF
        inner: Optional[Inner] = None
        when: Optional[datetime.date] = None

    check = models.validator(Every)
    base = {"n": 1, "f": 2.5, "b": True, "s": "x"}
    taken = [
        ({}, Every(1, 2.5, True, "x")),
        ({"f": 3}, Every(1, 3.0, True, "x")),  # an int is a float
        ({"n": 2.0}, Every(2, 2.5, True, "x")),  # an integral float is an int
        ({"n": "7", "b": "yes"}, Every(7, 2.5, True, "x")),  # lax strings
        ({"maybe": 1, "names": ["a", "b"], "pick": "a"}, Every(1, 2.5, True, "x", 1.0, ["a", "b"], "a")),
        ({"mode": 1, "inner": {"x": 2}, "when": "2026-12-01"}, Every(1, 2.5, True, "x", mode=Mode.ON, inner=Inner(2.0), when=datetime.date(2026, 12, 1))),
        ({"mode": "off", "extra": [1]}, Every(1, 2.5, True, "x")),
    ]
    for change, expected in taken:
        errors: list = []
        got = check({**base, **change}, ("body",), errors)
        assert (got, errors) == (expected, []), change
        assert type(got.f) is float and type(got.n) is int
    refused = [
        ({"n": True}, "int_type"),  # a bool is no int
        ({"b": 1.5}, "bool_type"),
        ({"s": 5}, "string_type"),
        ({"pick": True}, "literal_error"),  # True == 1, but it is not 1
        ({"pick": 2}, "literal_error"),
        ({"names": ["a", 1]}, "string_type"),
        ({"inner": {"x": "wide"}}, "float_parsing"),
        ({"when": "soon"}, "date_parsing"),
    ]
    for change, kind in refused:
        errors = []
        assert check({**base, **change}, ("body",), errors) is models.INVALID, change
        assert [e["type"] for e in errors] == [kind], (change, errors)
