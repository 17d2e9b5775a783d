"""The TechEmpower-style endpoints in sufast idiom.

    BENCH_PORT=8000 BENCH_DB=/tmp/world.db python bench/tfb/sufast_tfb.py

The database handlers are sync ``def``: sufast runs them on its handler
threads, and each thread keeps its own sqlite3 connection
(tfb_common.connection). ``/json``, ``/plaintext``, ``/db``,
``/fortunes`` and ``/list`` take no input, so sufast would run them once
at registration and store their bytes (the static tier); TFB requires
every response to be built, and the database read, per request, hence
``dynamic=True``. ``queries`` is read as a string: TFB wants a value that
is not an integer to mean 1, where an ``int`` parameter would answer 422.
The ``Server`` header (TFB requires one) is set app-wide.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# sufast from this checkout (python/), not an installed copy.
sys.path.insert(0, str(HERE.parent.parent / "python"))
sys.path.insert(0, str(HERE.parent / "apps"))

import bench_common as bench  # noqa: E402
import tfb_common as tfb  # noqa: E402
from sufast import App, HTMLResponse, PlainTextResponse, Query  # noqa: E402

app = App(headers={"Server": "sufast"})


@app.get("/")
def index():
    return {"ready": True}


@app.get("/json", dynamic=True)
def json_message():
    return {"message": "Hello, World!"}


@app.get("/plaintext", dynamic=True)
def plaintext():
    return PlainTextResponse("Hello, World!")


@app.get("/db", dynamic=True)
def single_query():
    return tfb.world(tfb.connection())


@app.get("/queries")
def multiple_queries(queries: str = Query("1")):
    return tfb.worlds(tfb.connection(), tfb.query_count(queries))


@app.get("/updates")
def updates(queries: str = Query("1")):
    return tfb.updated_worlds(tfb.connection(), tfb.query_count(queries))


@app.get("/fortunes", dynamic=True)
def fortunes():
    return HTMLResponse(tfb.fortunes(tfb.connection()))


@app.get("/list", dynamic=True)
def article_list():
    return tfb.article_list(tfb.connection())


if __name__ == "__main__":
    app.run(port=bench.PORT, production=True, host="127.0.0.1")
