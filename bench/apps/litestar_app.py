"""The benchmark endpoints in Litestar idiom, for uvicorn:

    python -m uvicorn --app-dir bench/apps litestar_app:app --port 8000

Handlers are ``async def`` except `/users/{id}`, a plain ``def`` that
Litestar calls on its event loop (``sync_to_thread=False``, its setting
for code that does not block). `/items` takes its body as a dataclass,
which Litestar validates with msgspec, and answers with Litestar's
default status for a POST, 201; `/echo` answers 200 like every other
server. Litestar encodes JSON with msgspec: compact, UTF-8,
``application/json``, the same bytes as the other servers. Configuration:
see bench_common.py (BENCH_ROUTES).
"""

import dataclasses
import datetime
import enum
from typing import Any, Dict, List, Literal, Optional

from litestar import Litestar, get, post

import bench_common as bench


@get("/")
async def hello() -> Dict[str, str]:
    return {"message": "hello"}


@get("/users/{id:int}", sync_to_thread=False)
def get_user(id: int) -> Dict[str, int]:
    return {"id": id}


@get("/async/users/{id:int}")
async def get_user_async(id: int) -> Dict[str, int]:
    return {"id": id}


@get("/cached")
async def cached() -> Dict[str, str]:
    return {"message": "hello"}


@post("/echo", status_code=200)
async def echo(data: Dict[str, Any]) -> Dict[str, Any]:
    return data


class Status(str, enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


@dataclasses.dataclass
class Dimensions:
    length: float
    width: float
    unit: str = "cm"


@dataclasses.dataclass
class Item:
    id: int
    name: str
    price: float
    in_stock: bool
    description: Optional[str]
    tags: List[str]
    dimensions: Dimensions
    created_at: datetime.datetime
    status: Status
    priority: Literal["low", "normal", "high"] = "normal"


@post("/items")
async def create_item(data: Item) -> Dict[str, int]:
    return {"id": data.id}


def padding() -> List[Any]:
    # Factories, so that each handler closes over its own i.
    def static(i: int) -> Any:
        async def pad() -> Dict[str, int]:
            return {"pad": i}

        return get(f"/pad/{i}", name=f"pad-{i}")(pad)

    def with_param(i: int) -> Any:
        async def item(id: int) -> Dict[str, int]:
            return {"pad": i, "id": id}

        return get(f"/pad/{i}/items/{{id:int}}", name=f"pad-{i}-items")(item)

    return [with_param(i) if param else static(i) for i, param in bench.padding()]


# No OpenAPI schema or docs routes: they would be extra entries in the
# route table.
app = Litestar(
    route_handlers=[hello, get_user, get_user_async, cached, echo, create_item, *padding()],
    openapi_config=None,
)
