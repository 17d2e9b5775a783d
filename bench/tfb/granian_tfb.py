"""The TechEmpower-style endpoints as one raw ASGI callable (no
framework), for Granian:

    BENCH_DB=/tmp/world.db granian --interface asgi --working-dir bench/tfb granian_tfb:app --port 8000

The sqlite3 calls run on the event loop itself, as a raw ASGI app without
a thread pool does; the loop's thread keeps one connection
(tfb_common.connection). JSON is encoded with ``json.dumps`` compactly,
as the frameworks do. Granian sends no ``Server`` header by itself, so
every response carries one.
"""

import json
from urllib.parse import parse_qs

import tfb_common as tfb

SERVER = (b"server", b"granian")
JSON = [(b"content-type", b"application/json"), SERVER]
HTML = [(b"content-type", b"text/html; charset=utf-8"), SERVER]
TEXT = [(b"content-type", b"text/plain; charset=utf-8"), SERVER]
NOT_FOUND = b"Not Found"


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def queries(scope) -> int:
    values = parse_qs(scope["query_string"].decode("latin-1")).get("queries")
    return tfb.query_count(values[-1] if values else None)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    status, headers = 200, JSON
    if path == "/json":
        body = dumps({"message": "Hello, World!"})
    elif path == "/plaintext":
        body, headers = b"Hello, World!", TEXT
    elif path == "/db":
        body = dumps(tfb.world(tfb.connection()))
    elif path == "/queries":
        body = dumps(tfb.worlds(tfb.connection(), queries(scope)))
    elif path == "/updates":
        body = dumps(tfb.updated_worlds(tfb.connection(), queries(scope)))
    elif path == "/fortunes":
        body, headers = tfb.fortunes(tfb.connection()).encode(), HTML
    elif path == "/list":
        body = dumps(tfb.article_list(tfb.connection()))
    elif path == "/":
        body = b'{"ready":true}'
    else:
        status, body, headers = 404, NOT_FOUND, TEXT
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
