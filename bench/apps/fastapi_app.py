"""The benchmark endpoints in FastAPI idiom, for uvicorn or granian:

    python -m uvicorn --app-dir bench/apps fastapi_app:app --port 8000
    granian --interface asgi --working-dir bench/apps fastapi_app:app --port 8000

`/users/{id}` is a plain ``def`` (FastAPI runs it on its thread pool),
`/async/users/{id}` an ``async def``; `/`, `/cached`, `/echo` and `/items`
(its body validated as a pydantic model) are ``async def``, FastAPI's
usual way for handlers that do not block.
Responses are FastAPI's default JSONResponse, which encodes compactly
(separators ``,`` and ``:``, UTF-8), the same bytes as the other servers.
Configuration: see bench_common.py (BENCH_ROUTES, BENCH_CORS).
"""

import datetime
import enum
from typing import List, Literal, Optional

from fastapi import Body, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel

import bench_common as bench

# No docs routes: they would be extra entries in the route table.
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/")
async def hello():
    return {"message": "hello"}


@app.get("/users/{id}")
def get_user(id: int):
    return {"id": id}


@app.get("/async/users/{id}")
async def get_user_async(id: int):
    return {"id": id}


@app.get("/cached")
async def cached():
    return {"message": "hello"}


@app.post("/echo")
async def echo(body: dict = Body()):
    return body


class Status(str, enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Dimensions(BaseModel):
    length: float
    width: float
    unit: str = "cm"


class Item(BaseModel):
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


@app.post("/items")
async def create_item(item: Item):
    return {"id": item.id}


def add_padding() -> None:
    # Factories, so that each handler closes over its own i.
    def static(i):
        async def pad():
            return {"pad": i}

        return pad

    def with_param(i):
        async def item(id: int):
            return {"pad": i, "id": id}

        return item

    for i, param in bench.padding():
        if param:
            app.add_api_route(f"/pad/{i}/items/{{id}}", with_param(i), methods=["GET"])
        else:
            app.add_api_route(f"/pad/{i}", static(i), methods=["GET"])


add_padding()

if bench.CORS:
    # The last added is the outermost: ExtraHeader wraps CORS, so the header
    # is on every response, preflights included.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[bench.CORS_ORIGIN],
        allow_methods=bench.CORS_METHODS,
        allow_headers=bench.CORS_HEADERS,
        max_age=bench.CORS_MAX_AGE,
    )
    app.add_middleware(bench.ExtraHeader)
