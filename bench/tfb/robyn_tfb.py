"""The TechEmpower-style endpoints in Robyn idiom, one process with one
worker:

    BENCH_PORT=8000 BENCH_DB=/tmp/world.db python bench/tfb/robyn_tfb.py

Plain ``def`` handlers, as Robyn's docs write them; each thread that runs
one keeps its own sqlite3 connection (tfb_common.connection). Returned
dicts and lists are encoded by Robyn (orjson, compact). Robyn sends no
``Server`` header by itself, so every response carries one.
"""

import sys
from pathlib import Path

# Robyn reads its options from sys.argv (argparse, at import): an empty
# command line keeps --dev, --fast and the docs off.
sys.argv = sys.argv[:1]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps"))

from robyn import Request, Response, Robyn  # noqa: E402
from robyn.argument_parser import Config  # noqa: E402

import bench_common as bench  # noqa: E402
import tfb_common as tfb  # noqa: E402


def config() -> Config:
    c = Config()
    c.processes = 1
    c.workers = 1
    c.dev = False
    c.log_level = "WARN"  # no per-request logs
    c.disable_openapi = True
    return c


app = Robyn(__file__, config=config())
app.set_response_header("Server", "robyn")


def queries(request: Request) -> int:
    return tfb.query_count(request.query_params.get("queries", None))


@app.get("/")
def index():
    return {"ready": True}


@app.get("/json")
def json_message():
    return {"message": "Hello, World!"}


@app.get("/plaintext")
def plaintext():
    return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, "Hello, World!")


@app.get("/db")
def single_query():
    return tfb.world(tfb.connection())


@app.get("/queries")
def multiple_queries(request: Request):
    return tfb.worlds(tfb.connection(), queries(request))


@app.get("/updates")
def updates(request: Request):
    return tfb.updated_worlds(tfb.connection(), queries(request))


@app.get("/fortunes")
def fortunes():
    return Response(200, {"Content-Type": "text/html; charset=utf-8"}, tfb.fortunes(tfb.connection()))


@app.get("/list")
def article_list():
    return tfb.article_list(tfb.connection())


if __name__ == "__main__":
    bench.stop_on_signals()  # see bench/apps/bench_common.py
    app.start(host="127.0.0.1", port=bench.PORT, _check_port=False)
