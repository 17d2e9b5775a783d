"""A small REST API over an in-memory store: list, create, read, update and
delete items. Run it with `python examples/crud.py [port]`, then e.g.:

    curl -X POST localhost:8000/items -d '{"name": "pen", "price": 1.5}'
    curl localhost:8000/items?limit=10
    curl -X PUT localhost:8000/items/1 -d '{"name": "pen", "price": 2}'
    curl -X DELETE localhost:8000/items/1
"""

import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional

# Run from a checkout without installing: the package lives in ../python.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from sufast import App, HTTPException, Response  # noqa: E402

app = App()

# Sync handlers run on several threads at once: the store takes a lock.
_lock = threading.Lock()
_items: Dict[int, Dict[str, Any]] = {}
_next_id = 1


def _validated(data: dict) -> Dict[str, Any]:
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name:
        raise HTTPException(422, "name must be a non-empty string")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
        raise HTTPException(422, "price must be a number >= 0")
    return {"name": name, "price": price}


def _find(item_id: int) -> Dict[str, Any]:
    item = _items.get(item_id)
    if item is None:
        raise HTTPException(404, f"item {item_id} not found")
    return item


@app.get("/items")
def list_items(limit: int = 100, offset: int = 0, name: Optional[str] = None):
    with _lock:
        items = [item for item in _items.values() if name is None or item["name"] == name]
    return {"items": items[offset : offset + limit], "total": len(items)}


@app.post("/items", status_code=201)
def create_item(data: dict):
    global _next_id
    fields = _validated(data)
    with _lock:
        item = {"id": _next_id, **fields}
        _items[_next_id] = item
        _next_id += 1
    return item


@app.get("/items/{item_id:int}")
def read_item(item_id: int):
    with _lock:
        return _find(item_id)


@app.put("/items/{item_id:int}")
def update_item(item_id: int, data: dict):
    fields = _validated(data)
    with _lock:
        _find(item_id).update(fields)
        return _items[item_id]


@app.delete("/items/{item_id:int}")
def delete_item(item_id: int):
    with _lock:
        _find(item_id)
        del _items[item_id]
    return Response(status_code=204)


if __name__ == "__main__":
    app.run(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
