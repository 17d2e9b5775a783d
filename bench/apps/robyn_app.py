"""The benchmark endpoints in Robyn idiom, one process with one worker:

    BENCH_PORT=8000 python bench/apps/robyn_app.py
    BENCH_PORT=8000 ROBYN_CONST=1 python bench/apps/robyn_app.py   # `/`, `/cached` const

``ROBYN_CONST=1`` registers `/` and `/cached` with ``const=True``: Robyn
calls them once and serves the stored response from Rust afterwards, like
sufast's static tier. Handlers are plain ``def`` (Robyn calls them on its
worker directly) except `/async/users/{id}` and the WebSocket echo `/ws`.
Robyn encodes returned dicts with orjson: compact, UTF-8,
``application/json``, the same bytes as the other servers. Configuration: see bench_common.py (BENCH_PORT, BENCH_ROUTES).
"""

import json
import os
import sys

# Robyn reads its options from sys.argv (argparse, at import): give it an
# empty command line so nothing from the caller switches on --dev (the
# reloader), --fast (many processes) or the docs.
sys.argv = sys.argv[:1]

from robyn import Request, Response, Robyn, WebSocketAdapter, WebSocketDisconnect  # noqa: E402
from robyn.argument_parser import Config  # noqa: E402

import bench_common as bench  # noqa: E402

CONST = os.environ.get("ROBYN_CONST") == "1"


def config() -> Config:
    c = Config()
    c.processes = 1
    c.workers = 1
    c.dev = False
    c.log_level = "WARN"  # Robyn's production setting: no per-request logs
    c.disable_openapi = True  # no /docs and /openapi.json routes
    return c


app = Robyn(__file__, config=config())

NOT_FOUND = Response(404, {"Content-Type": "application/json"}, body='{"error":"Not found"}')


def path_int(request: Request):
    """The `id` path parameter as an int, or None: Robyn has no typed path
    convertor, so a non-integer id gets a 404 here."""
    value = request.path_params["id"]
    return int(value) if value.isdigit() else None


@app.get("/", const=CONST)
def hello():
    return {"message": "hello"}


@app.get("/users/:id")
def get_user(request: Request):
    id = path_int(request)
    return NOT_FOUND if id is None else {"id": id}


@app.get("/async/users/:id")
async def get_user_async(request: Request):
    id = path_int(request)
    return NOT_FOUND if id is None else {"id": id}


@app.get("/cached", const=CONST)
def cached():
    return {"message": "hello"}


@app.post("/echo")
def echo(request: Request):
    # Not request.json(): it returns the object's keys sorted, where every
    # other server keeps the order they arrived in.
    return json.loads(request.body)


@app.post("/items")
def create_item(request: Request):
    # The body as a plain dict, as /echo reads it.
    item = json.loads(request.body)
    return {"id": item["id"]}


# Each text or binary message sent back as it came, until the client
# closes (Robyn 0.88's channel-backed API; the connection is accepted by
# Robyn). The public receive_text()/receive_bytes() convert a message to
# the one type; _receive(), which both call, keeps the frame's type.
@app.websocket("/ws")
async def ws_echo(websocket: WebSocketAdapter):
    try:
        while True:
            message = await websocket._receive()
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(bytes(message))
    except WebSocketDisconnect:
        pass


def add_padding() -> None:
    # Factories, so that each handler closes over its own i.
    def static(i):
        def pad():
            return {"pad": i}

        return pad

    def with_param(i):
        def item(request: Request):
            id = path_int(request)
            return NOT_FOUND if id is None else {"pad": i, "id": id}

        return item

    for i, param in bench.padding():
        if param:
            app.add_route("GET", f"/pad/{i}/items/:id", with_param(i))
        else:
            app.add_route("GET", f"/pad/{i}", static(i))


add_padding()


if __name__ == "__main__":
    bench.stop_on_signals()
    # 127.0.0.1 only; no interactive prompt if the port is taken (fail instead).
    app.start(host="127.0.0.1", port=bench.PORT, _check_port=False)
