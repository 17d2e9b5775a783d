"""The OpenAPI document of routes whose bodies and response models are
pydantic v2 models or msgspec Structs: their schemas are the packages'
own, under ``components/schemas``. make test runs this file in the venv
that has them; without them each test is skipped.

No ``from __future__ import annotations``: the models' annotations are
real types."""

from typing import List, Optional

import pytest
from openapi_spec_validator import validate

from sufast import App
from sufast.testclient import TestClient

REF = "#/components/schemas/"


def test_pydantic_models_are_described_by_pydantics_json_schema():
    pydantic = pytest.importorskip("pydantic")

    class Tag(pydantic.BaseModel):
        name: str

    class Item(pydantic.BaseModel):
        """An item for sale."""

        name: str = pydantic.Field(min_length=1)
        price: float = pydantic.Field(gt=0)
        tags: List[Tag] = []

    class Node(pydantic.BaseModel):
        value: int
        children: List["Node"] = []

    Node.model_rebuild()

    class Public(pydantic.BaseModel):
        name: str

    app = App()

    @app.post("/items", status_code=201)
    def create(item: Item) -> Public:
        return Public(name=item.name)

    @app.post("/tags")
    def tag(tag: Tag, item: Optional[Item] = None) -> List[Tag]:
        return [tag]

    @app.post("/trees", response_model=Node)
    def tree(node: Node):
        return node

    document = app.openapi()
    validate(document)
    schemas = document["components"]["schemas"]
    expected = Item.model_json_schema(ref_template=REF + "{model}")
    expected.pop("$defs")
    assert schemas["Item"] == expected
    assert schemas["Item"]["properties"]["price"]["exclusiveMinimum"] == 0
    assert schemas["Item"]["description"] == "An item for sale."
    assert schemas["Tag"] == Tag.model_json_schema()
    assert "Tag" in schemas and not any(name.endswith("__Tag") for name in schemas), "one Tag, met in $defs and on its own"
    created = document["paths"]["/items"]["post"]
    assert created["requestBody"]["content"]["application/json"]["schema"] == {"$ref": REF + "Item"}
    assert created["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": REF + "Public"}
    tagged = document["paths"]["/tags"]["post"]
    body = schemas[tagged["requestBody"]["content"]["application/json"]["schema"]["$ref"][len(REF) :]]
    assert body["properties"]["tag"] == {"$ref": REF + "Tag"} and body["required"] == ["tag"]
    assert tagged["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "array", "items": {"$ref": REF + "Tag"}}
    assert schemas["Node"]["properties"]["children"]["items"] == {"$ref": REF + "Node"}

    with TestClient(app) as client:
        assert client.get("/openapi.json").json() == document
        assert client.post("/items", json={"name": "pen", "price": 1}).json() == {"name": "pen"}


def test_msgspec_structs_are_described_by_msgspecs_json_schema():
    msgspec = pytest.importorskip("msgspec")

    class Point(msgspec.Struct):
        x: int
        y: int = 0

    class Shape(msgspec.Struct):
        name: str
        points: List[Point] = []

    app = App()

    @app.post("/shapes")
    def create(shape: Shape) -> Shape:
        return shape

    document = app.openapi()
    validate(document)
    (expected,), components = msgspec.json.schema_components([Shape], ref_template=REF + "{name}")
    operation = document["paths"]["/shapes"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == expected == {"$ref": REF + "Shape"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": REF + "Shape"}
    schemas = document["components"]["schemas"]
    assert schemas["Shape"] == components["Shape"] and schemas["Point"] == components["Point"]
    assert schemas["Point"]["required"] == ["x"]

    with TestClient(app) as client:
        assert client.get("/openapi.json").json() == document


def test_pydantic_structs_and_dataclasses_side_by_side_make_one_valid_document():
    pydantic = pytest.importorskip("pydantic")
    msgspec = pytest.importorskip("msgspec")
    import dataclasses

    class Owner(pydantic.BaseModel):
        name: str

    class Pet(msgspec.Struct):
        name: str

    @dataclasses.dataclass
    class Visit:
        day: str

    app = App()

    @app.post("/visits")
    def visit(owner: Owner, pet: Pet, visit: Visit):
        return {}

    document = app.openapi()
    validate(document)
    body = document["components"]["schemas"]["Body_visit_visits_post"]
    assert body["properties"] == {"owner": {"$ref": REF + "Owner"}, "pet": {"$ref": REF + "Pet"}, "visit": {"$ref": REF + "Visit"}}
    assert {"Owner", "Pet", "Visit"} <= set(document["components"]["schemas"])
