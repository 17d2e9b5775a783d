"""The benchmark endpoints in sufast idiom: `/` is precomputed (static
tier), `/cached` is cached (``cache_ttl=60``), the others run per request;
``/static`` is a ``StaticFiles`` mount of bench/apps/static (files tier);
``/ws`` is a WebSocket echo.

    BENCH_PORT=8000 python bench/apps/sufast_app.py

Configuration: see bench_common.py; also ``BENCH_WORKERS`` (passed to
``app.run(workers=...)`` when above 1). sufast encodes JSON compactly
(separators ``,`` and ``:``), so plain dict returns give the same bytes as
the other servers.
"""

import dataclasses
import datetime
import enum
import inspect
import sys
from pathlib import Path
from typing import List, Literal, Optional

HERE = Path(__file__).resolve().parent
# sufast from this checkout (python/), not an installed copy.
sys.path.insert(0, str(HERE.parent.parent / "python"))

import bench_common as bench  # noqa: E402
from sufast import App  # noqa: E402


def make_app() -> App:
    options = {}
    if bench.CORS:
        try:
            from sufast import CORS
        except ImportError:
            bench.unsupported("BENCH_CORS=1 needs sufast.CORS, which this sufast does not have")
        options["headers"] = dict([bench.EXTRA_HEADER])
        options["cors"] = CORS(
            allow_origins=[bench.CORS_ORIGIN],
            allow_methods=bench.CORS_METHODS,
            allow_headers=bench.CORS_HEADERS,
            max_age=bench.CORS_MAX_AGE,
        )
    if bench.COMPRESSION:
        options["compression"] = True
    return App(**options)


app = make_app()

if bench.MIDDLEWARE:
    if not hasattr(app, "middleware"):
        bench.unsupported("BENCH_MIDDLEWARE=1 needs App.middleware, which this sufast does not have")

    # One async middleware that edits the response, as FastAPI's docs show.
    @app.middleware("http")
    async def stamp(request, call_next):
        response = await call_next(request)
        response.headers["x-bench"] = "1"
        return response


@app.get("/")
def hello():
    return {"message": "hello"}


@app.get("/users/{id:int}")
def get_user(id: int):
    return {"id": id}


try:
    from sufast import Depends

    def current_user(id: int) -> int:
        return id

    # One dependency that takes the path parameter.
    @app.get("/deps/users/{id:int}")
    def get_user_dep(user: int = Depends(current_user)):
        return {"id": user}

except ImportError:  # a sufast from before Depends
    pass


@app.get("/async/users/{id:int}")
async def get_user_async(id: int):
    return {"id": id}


@app.get("/cached", cache_ttl=60)
def cached():
    return {"message": "hello"}


if bench.COMPRESSION is not None:
    # About 1 KB of JSON, above compression's default minimum of 500 bytes.
    REPORT = tuple({"id": n, "name": f"item {n}", "price": n * 3 + 0.5, "tags": ("a", "b")} for n in range(18))

    @app.get("/report", dynamic=False)
    def report():
        return {"items": REPORT}

    @app.get("/report/{id:int}")
    def report_for(id: int):
        return {"id": id, "items": REPORT}


# Sync: sufast runs sync handlers on its handler threads directly, while an
# async one would take an extra hop to the app's event loop.
@app.post("/echo")
def echo(body: dict):
    return body


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


# The body validated as the dataclass; sync, as /echo.
@app.post("/items")
def create_item(item: Item):
    return {"id": item.id}


# The same route with the body as a plain dict: what validating costs.
@app.post("/items/dict")
def create_item_dict(item: dict):
    return {"id": item["id"]}


def add_padding() -> None:
    # Factories, so that each handler closes over its own i.
    def static(i):
        return lambda: {"pad": i}

    def with_param(i):
        def item(id: int):
            return {"pad": i, "id": id}

        return item

    for i, param in bench.padding():
        if param:
            app.get(f"/pad/{i}/items/{{id:int}}")(with_param(i))
        else:
            app.get(f"/pad/{i}")(static(i))


add_padding()

try:
    from sufast import WebSocket
except ImportError:  # a sufast from before WebSockets
    pass
else:
    # Each text or binary message sent back as it came, until the client closes.
    @app.websocket("/ws")
    async def ws_echo(websocket: WebSocket):
        await websocket.accept()
        async for message in websocket:
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)


try:
    from sufast import StaticFiles
except ImportError:  # a sufast from before the files tier
    pass
else:
    # Served by the server from the files, no Python per request.
    app.mount("/static", StaticFiles(directory=HERE / "static"))


def main() -> None:
    run_options = {"port": bench.PORT, "production": True, "host": "127.0.0.1"}
    if bench.WORKERS > 1:
        if "workers" not in inspect.signature(app.run).parameters:
            bench.unsupported(f"BENCH_WORKERS={bench.WORKERS} needs App.run(workers=...), which this sufast does not have")
        run_options["workers"] = bench.WORKERS
    app.run(**run_options)


if __name__ == "__main__":
    main()
