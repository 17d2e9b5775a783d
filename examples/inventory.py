"""A typed inventory service: dataclass models for what comes in and what
goes out, validated by sufast, and described by the OpenAPI document the
app serves at /openapi.json, with Swagger UI at /docs and ReDoc at
/redoc. Run it with `python examples/inventory.py [port]` (or `sufast run
inventory:app --app-dir examples`), open http://127.0.0.1:8000/docs, or:

    curl -X POST localhost:8000/items -d '{"name": "pen", "price": 1.5, "quantity": 10, "category": "office"}'
    curl localhost:8000/items/1
    curl 'localhost:8000/items?limit=10&category=office'
    curl -X PATCH localhost:8000/items/1 -d '{"quantity": 7}'
    curl -X DELETE localhost:8000/items/1
"""

import dataclasses
import enum
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional

# Run from a checkout without installing: the package lives in ../python.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from sufast import App, HTTPException, Query, RequestValidationError, status  # noqa: E402

app = App(title="Inventory", version="1.0.0", description="Items in stock: create, list, read, update and delete them.")


class Category(enum.Enum):
    OFFICE = "office"
    KITCHEN = "kitchen"
    GARDEN = "garden"


@dataclasses.dataclass
class ItemIn:
    """An item as a client sends it."""

    name: str
    price: float
    quantity: int = 0
    category: Category = Category.OFFICE
    tags: List[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name must not be empty")
        if self.price < 0 or self.quantity < 0:
            raise ValueError("price and quantity must not be negative")


@dataclasses.dataclass
class Item(ItemIn):
    """An item in stock, with the id the service gave it."""

    id: int = 0


@dataclasses.dataclass
class ItemPatch:
    """The fields to change; those left out keep their value."""

    name: Optional[str] = None
    price: Optional[float] = None
    quantity: Optional[int] = None
    category: Optional[Category] = None
    tags: Optional[List[str]] = None


@dataclasses.dataclass
class ItemPage:
    """One page of the items, and how many there are in all."""

    items: List[Item]
    total: int


@dataclasses.dataclass
class Message:
    detail: str


# Sync handlers run on several threads at once: the store takes a lock.
_lock = threading.Lock()
_items: Dict[int, Item] = {}
_next_id = 1

NOT_FOUND = {status.HTTP_404_NOT_FOUND: {"description": "No item has this id", "model": Message}}


def _find(item_id: int) -> Item:
    item = _items.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"item {item_id} not found")
    return item


@app.get("/items", tags=["items"])
def list_items(limit: int = Query(10), offset: int = 0, category: Optional[Category] = None) -> ItemPage:
    """List the items.

    A page of at most `limit` items from `offset` on, of one `category` if given."""
    with _lock:
        found = [item for item in _items.values() if category is None or item.category is category]
    return ItemPage(items=found[offset : offset + limit], total=len(found))


@app.post("/items", status_code=status.HTTP_201_CREATED, response_model=Item, tags=["items"])
def create_item(item: ItemIn):
    """Add an item to the inventory."""
    global _next_id
    with _lock:
        created = Item(**dataclasses.asdict(item), id=_next_id)
        _items[_next_id] = created
        _next_id += 1
    return created


@app.get("/items/{item_id:int}", response_model=Item, tags=["items"], responses=NOT_FOUND)
def read_item(item_id: int):
    """Get one item by its id."""
    with _lock:
        return _find(item_id)


@app.patch("/items/{item_id:int}", response_model=Item, tags=["items"], responses=NOT_FOUND)
def update_item(item_id: int, patch: ItemPatch):
    """Change some fields of an item."""
    changes = {name: value for name, value in dataclasses.asdict(patch).items() if value is not None}
    with _lock:
        item = _find(item_id)
        try:
            updated = Item(**{**dataclasses.asdict(item), **changes})
        except ValueError as exc:  # the 422 a bad body gets, as the document says
            raise RequestValidationError([{"type": "value_error", "loc": ["body"], "msg": f"Value error, {exc}", "input": changes}]) from None
        _items[item_id] = updated
    return updated


@app.delete("/items/{item_id:int}", status_code=status.HTTP_204_NO_CONTENT, tags=["items"], responses=NOT_FOUND)
def delete_item(item_id: int) -> None:
    """Remove an item from the inventory."""
    with _lock:
        _find(item_id)
        del _items[item_id]


if __name__ == "__main__":
    app.run(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
