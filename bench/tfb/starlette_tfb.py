"""The TechEmpower-style endpoints in Starlette idiom, for uvicorn:

    BENCH_DB=/tmp/world.db python -m uvicorn --app-dir bench/tfb starlette_tfb:app --port 8000

Every endpoint is a plain ``def``: Starlette runs it on its thread pool,
the idiom for a blocking driver such as sqlite3, and each pool thread
keeps its own connection (tfb_common.connection). uvicorn sends the
``Server`` and ``Date`` headers TFB requires.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

import tfb_common as tfb


def index(request: Request) -> JSONResponse:
    return JSONResponse({"ready": True})


def json_message(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, World!"})


def plaintext(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, World!")


def single_query(request: Request) -> JSONResponse:
    return JSONResponse(tfb.world(tfb.connection()))


def multiple_queries(request: Request) -> JSONResponse:
    count = tfb.query_count(request.query_params.get("queries"))
    return JSONResponse(tfb.worlds(tfb.connection(), count))


def updates(request: Request) -> JSONResponse:
    count = tfb.query_count(request.query_params.get("queries"))
    return JSONResponse(tfb.updated_worlds(tfb.connection(), count))


def fortunes(request: Request) -> HTMLResponse:
    return HTMLResponse(tfb.fortunes(tfb.connection()))


def article_list(request: Request) -> JSONResponse:
    return JSONResponse(tfb.article_list(tfb.connection()))


app = Starlette(
    routes=[
        Route("/", index),
        Route("/json", json_message),
        Route("/plaintext", plaintext),
        Route("/db", single_query),
        Route("/queries", multiple_queries),
        Route("/updates", updates),
        Route("/fortunes", fortunes),
        Route("/list", article_list),
    ]
)
