"""The TechEmpower-style endpoints in FastAPI idiom, for uvicorn:

    BENCH_DB=/tmp/world.db python -m uvicorn --app-dir bench/tfb fastapi_tfb:app --port 8000

Plain ``def`` path operations (FastAPI runs them on its thread pool, the
idiom for a blocking driver such as sqlite3), each pool thread with its own
connection (tfb_common.connection); dicts and lists returned as they are,
encoded by FastAPI's default JSONResponse. ``queries`` is an optional
string: TFB wants a value that is not an integer to mean 1, where an
``int`` parameter would answer 422. uvicorn sends ``Server`` and ``Date``.
"""

from typing import Optional

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, PlainTextResponse

import tfb_common as tfb

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/")
def index():
    return {"ready": True}


@app.get("/json")
def json_message():
    return {"message": "Hello, World!"}


@app.get("/plaintext", response_class=PlainTextResponse)
def plaintext():
    return "Hello, World!"


@app.get("/db")
def single_query():
    return tfb.world(tfb.connection())


@app.get("/queries")
def multiple_queries(queries: Optional[str] = Query(None)):
    return tfb.worlds(tfb.connection(), tfb.query_count(queries))


@app.get("/updates")
def updates(queries: Optional[str] = Query(None)):
    return tfb.updated_worlds(tfb.connection(), tfb.query_count(queries))


@app.get("/fortunes", response_class=HTMLResponse)
def fortunes():
    return tfb.fortunes(tfb.connection())


@app.get("/list")
def article_list():
    return tfb.article_list(tfb.connection())
