"""pydantic v2 models and msgspec Structs as request bodies and return
values, when those packages are installed (make test runs this file in
a venv that has them; without them it is skipped, and test_models.py
covers the standard library's models in both venvs).

No ``from __future__ import annotations``: the models' annotations are
real types."""

from typing import List, Optional

import pytest

from sufast import App
from sufast.testclient import TestClient


def test_a_pydantic_model_is_validated_by_pydantic_and_sent_back_as_json():
    pydantic = pytest.importorskip("pydantic")

    class Tag(pydantic.BaseModel):
        name: str

    class Item(pydantic.BaseModel):
        name: str
        price: float = pydantic.Field(gt=0)
        tags: List[Tag] = []

    app = App()

    @app.post("/items")
    def create(item: Item):
        assert isinstance(item, Item)
        return item

    @app.post("/maybe")
    def maybe(item: Optional[Item] = None):
        return {"item": item}

    class Public(pydantic.BaseModel):
        name: str

    @app.get("/public/{n:int}")
    def public(n: int) -> Public:  # the return annotation is the response model
        return {"name": f"p{n}", "secret": "kept inside"}

    with TestClient(app) as client:
        reply = client.post("/items", json={"name": "pen", "price": 2, "tags": [{"name": "a"}]})
        assert reply.json() == {"name": "pen", "price": 2.0, "tags": [{"name": "a"}]}
        reply = client.post("/items", json={"price": 0, "tags": [{}]})
        assert reply.status_code == 422
        errors = reply.json()["detail"]
        assert [(e["type"], e["loc"]) for e in errors] == [
            ("missing", ["body", "name"]),
            ("greater_than", ["body", "price"]),
            ("missing", ["body", "tags", 0, "name"]),
        ]
        assert errors[1]["msg"] == "Input should be greater than 0" and errors[1]["ctx"] == {"gt": 0}
        assert client.get("/public/1").json() == {"name": "p1"}
        assert client.post("/maybe").json() == {"item": None}
        assert client.post("/maybe", json={"name": "a", "price": 1}).json() == {"item": {"name": "a", "price": 1.0, "tags": []}}


def test_a_msgspec_struct_is_converted_by_msgspec_and_sent_back_as_json():
    msgspec = pytest.importorskip("msgspec")

    class Point(msgspec.Struct):
        x: int
        y: int = 0

    app = App()

    @app.post("/points")
    def create(point: Point):
        assert isinstance(point, Point)
        return point

    with TestClient(app) as client:
        assert client.post("/points", json={"x": 1}).json() == {"x": 1, "y": 0}
        reply = client.post("/points", json={"x": "one"})
        assert reply.status_code == 422
        error = reply.json()["detail"][0]
        assert (error["type"], error["loc"]) == ("value_error", ["body", "x"])
        assert "Expected `int`, got `str`" in error["msg"]
        error = client.post("/points", json={"y": 2}).json()["detail"][0]
        assert (error["type"], error["loc"]) == ("missing", ["body", "x"])
