"""The benchmark endpoints in Starlette idiom, for uvicorn or granian:

    python -m uvicorn --app-dir bench/apps starlette_app:app --port 8000
    granian --interface asgi --working-dir bench/apps starlette_app:app --port 8000

`/users/{id}` is a plain ``def`` (Starlette runs it on its thread pool),
the rest are ``async def``; ``/static`` is a ``StaticFiles`` mount of
bench/apps/static; ``/ws`` is a WebSocket echo (uvicorn needs the
``websockets`` or ``wsproto`` package for it, which uvicorn[standard]
brings). JSONResponse encodes compactly (separators ``,`` and ``:``,
UTF-8), the same bytes as the other servers.
Configuration: see bench_common.py (BENCH_ROUTES, BENCH_CORS).
"""

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

import bench_common as bench


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello"})


def get_user(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"]})


async def get_user_async(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"]})


async def cached(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello"})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


# Starlette has no body models: the body as a plain dict.
async def create_item(request: Request) -> JSONResponse:
    item = await request.json()
    return JSONResponse({"id": item["id"]})


# Each text or binary message sent back as it came, until the client closes.
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


def padding():
    # Factories, so that each endpoint closes over its own i.
    def static(i):
        async def pad(request: Request) -> JSONResponse:
            return JSONResponse({"pad": i})

        return pad

    def with_param(i):
        async def item(request: Request) -> JSONResponse:
            return JSONResponse({"pad": i, "id": request.path_params["id"]})

        return item

    for i, param in bench.padding():
        if param:
            yield Route(f"/pad/{i}/items/{{id:int}}", with_param(i))
        else:
            yield Route(f"/pad/{i}", static(i))


routes = [
    Route("/", hello),
    # {id:int}: a non-integer id does not match, so it is a 404.
    Route("/users/{id:int}", get_user),
    Route("/async/users/{id:int}", get_user_async),
    Route("/cached", cached),
    Route("/echo", echo, methods=["POST"]),
    Route("/items", create_item, methods=["POST"]),
    WebSocketRoute("/ws", ws_echo),
    *padding(),
    Mount("/static", app=StaticFiles(directory=Path(__file__).resolve().parent / "static")),
]

middleware = []
if bench.CORS:
    # Outermost first: the header is on every response, preflights included.
    middleware = [
        Middleware(bench.ExtraHeader),
        Middleware(
            CORSMiddleware,
            allow_origins=[bench.CORS_ORIGIN],
            allow_methods=bench.CORS_METHODS,
            allow_headers=bench.CORS_HEADERS,
            max_age=bench.CORS_MAX_AGE,
        ),
    ]

app = Starlette(routes=routes, middleware=middleware)
