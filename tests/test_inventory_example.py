"""examples/inventory.py, used as its docstring says, through the
TestClient: create, list, read, update and delete items, and the OpenAPI
document and /docs it serves."""

import importlib.util

import pytest
from conftest import ROOT
from openapi_spec_validator import validate

from sufast.testclient import TestClient

REF = "#/components/schemas/"


@pytest.fixture
def client():
    # A fresh module per test: a fresh app and an empty store.
    spec = importlib.util.spec_from_file_location("example_inventory", ROOT / "examples" / "inventory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as test_client:
        yield test_client


PEN = {"name": "pen", "price": 1.5, "quantity": 10, "category": "office"}


def test_create_read_update_list_and_delete(client):
    reply = client.post("/items", json=PEN)
    assert reply.status_code == 201
    assert reply.json() == {**PEN, "tags": [], "id": 1}
    pot = client.post("/items", json={"name": "pot", "price": 12, "category": "kitchen", "tags": ["steel"]}).json()
    assert pot == {"name": "pot", "price": 12.0, "quantity": 0, "category": "kitchen", "tags": ["steel"], "id": 2}

    assert client.get("/items/1").json() == {**PEN, "tags": [], "id": 1}
    reply = client.patch("/items/1", json={"quantity": 7, "tags": ["blue"]})
    assert reply.status_code == 200 and reply.json() == {**PEN, "quantity": 7, "tags": ["blue"], "id": 1}

    page = client.get("/items").json()
    assert page["total"] == 2 and [item["id"] for item in page["items"]] == [1, 2]
    assert client.get("/items", params={"limit": 1, "offset": 1}).json() == {"items": [pot], "total": 2}
    assert client.get("/items", params={"category": "kitchen"}).json() == {"items": [pot], "total": 1}

    reply = client.delete("/items/1")
    assert (reply.status_code, reply.content) == (204, b"")
    assert client.get("/items").json()["total"] == 1


def test_missing_items_are_404_and_bad_input_is_422(client):
    for method in ("get", "patch", "delete"):
        options = {"json": {}} if method == "patch" else {}
        reply = getattr(client, method)("/items/9", **options)
        assert (reply.status_code, reply.json()) == (404, {"detail": "item 9 not found"}), method
    assert client.get("/items/abc").status_code == 404, "not an int: no route"

    reply = client.post("/items", json={"price": "free", "category": "attic"})
    assert reply.status_code == 422
    assert [(e["type"], e["loc"]) for e in reply.json()["detail"]] == [
        ("missing", ["body", "name"]),
        ("float_parsing", ["body", "price"]),
        ("enum", ["body", "category"]),
    ]
    reply = client.post("/items", json={"name": " ", "price": 1})
    assert reply.json()["detail"][0]["msg"] == "Value error, name must not be empty"
    client.post("/items", json=PEN)
    reply = client.patch("/items/1", json={"price": -1})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body"]
    assert client.get("/items/1").json()["price"] == 1.5, "a refused change changes nothing"
    reply = client.get("/items", params={"limit": "ten"})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["query", "limit"]
    reply = client.get("/items", params={"category": "attic"})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["query", "category"]


def test_the_openapi_document_is_valid_and_describes_the_service(client):
    reply = client.get("/openapi.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    document = reply.json()
    validate(document)
    assert document["info"]["title"] == "Inventory"
    assert set(document["paths"]) == {"/items", "/items/{item_id}"}
    assert set(document["paths"]["/items/{item_id}"]) == {"get", "patch", "delete"}

    create = document["paths"]["/items"]["post"]
    assert create["summary"] == "Add an item to the inventory."
    assert create["tags"] == ["items"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": REF + "ItemIn"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": REF + "Item"}

    listing = document["paths"]["/items"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit == {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "title": "Limit", "default": 10}}
    assert listing["description"] == "A page of at most `limit` items from `offset` on, of one `category` if given."
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": REF + "ItemPage"}
    category = next(p for p in listing["parameters"] if p["name"] == "category")
    assert category["schema"]["anyOf"] == [{"$ref": REF + "Category"}, {"type": "null"}]

    read = document["paths"]["/items/{item_id}"]["get"]
    assert read["operationId"] == "read_item_items__item_id__get"
    assert read["responses"]["404"] == {"description": "No item has this id", "content": {"application/json": {"schema": {"$ref": REF + "Message"}}}}
    assert document["paths"]["/items/{item_id}"]["delete"]["responses"]["204"] == {"description": "Successful Response"}

    schemas = document["components"]["schemas"]
    assert schemas["Category"] == {"title": "Category", "enum": ["office", "kitchen", "garden"], "type": "string"}
    assert schemas["Item"]["required"] == ["name", "price"]
    assert set(schemas["Item"]["properties"]) == {"name", "price", "quantity", "category", "tags", "id"}
    assert "required" not in schemas["ItemPatch"]
    assert {"HTTPValidationError", "ValidationError"} <= set(schemas)


def test_docs_and_redoc_are_served(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"] == "text/html; charset=utf-8"
    assert "swagger-ui-bundle.js" in docs.text and "/openapi.json" in docs.text
    assert "<title>Inventory - Swagger UI</title>" in docs.text
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "redoc.standalone.js" in redoc.text
