"""What every TechEmpower-style app shares: the SQLite schema and its seed
data, a connection per thread, the query-count rule, the Fortunes template
and the rows of the list endpoint. Standard library only.

The apps (one per server, in this directory) import it; the driver
(bench/tfb.py) imports it too, to seed each server's database and to know
what a right answer is.

    BENCH_DB=/tmp/x/world.db   the database file an app opens (seeded by the driver)

Schema (TFB's, in SQLite):

    World(id INTEGER PRIMARY KEY, randomNumber INTEGER)   10,000 rows, randomNumber 1..10000
    Fortune(id INTEGER PRIMARY KEY, message TEXT)        TFB's 12 rows
    Article(id INTEGER PRIMARY KEY, ...)                 20 rows for GET /list (not a TFB type)

Every app renders Fortunes with ``fortunes_html`` and escapes with
``html.escape``, and parses ``queries`` with ``query_count``, so that what
differs between the apps is the framework, not this code.
"""

from __future__ import annotations

import html
import os
import random
import sqlite3
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

WORLD_ROWS = 10_000
MAX_QUERIES = 500

# TFB's Fortune table, as its setup scripts fill it (ids 1..12).
FORTUNES: Tuple[Tuple[int, str], ...] = (
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
)
ADDITIONAL_FORTUNE = (0, "Additional fortune added at request time.")

# TFB's template; whitespace between tags is free, the rest is not.
FORTUNES_HEAD = (
    "<!DOCTYPE html>\n<html>\n<head><title>Fortunes</title></head>\n<body>\n<table>\n"
    "<tr><th>id</th><th>message</th></tr>\n"
)
FORTUNES_ROW = "<tr><td>{}</td><td>{}</td></tr>\n"
FORTUNES_TAIL = "</table>\n</body>\n</html>\n"

SCHEMA = """
CREATE TABLE World (id INTEGER PRIMARY KEY, randomNumber INTEGER NOT NULL);
CREATE TABLE Fortune (id INTEGER PRIMARY KEY, message TEXT NOT NULL);
CREATE TABLE Article (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    summary TEXT NOT NULL,
    tags TEXT NOT NULL,
    published TEXT NOT NULL,
    views INTEGER NOT NULL
);
"""

# The queries each endpoint runs, shared so that every app asks SQLite the same.
SELECT_WORLD = "SELECT id, randomNumber FROM World WHERE id = ?"
UPDATE_WORLD = "UPDATE World SET randomNumber = ? WHERE id = ?"
SELECT_FORTUNES = "SELECT id, message FROM Fortune"
SELECT_ARTICLES = "SELECT id, slug, title, author, summary, tags, published, views FROM Article ORDER BY id LIMIT 20"
ARTICLE_FIELDS = ("id", "slug", "title", "author", "summary", "tags", "published", "views")
ARTICLES = 20


def articles() -> List[tuple]:
    """The 20 rows of Article, about 300 bytes of JSON each (6 KB in all)."""
    rows = []
    for n in range(1, ARTICLES + 1):
        rows.append(
            (
                n,
                f"notes-on-request-handling-part-{n:02d}",
                f"Notes on request handling, part {n}",
                ("Ada Lovelace", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov")[n % 4],
                f"Part {n} follows one HTTP request from the socket to the handler and back, "
                "measuring what each layer costs.",
                "http,python,rust,performance",
                f"2026-{1 + n % 12:02d}-{1 + n:02d}T09:30:00Z",
                1000 + 37 * n,
            )
        )
    return rows


def seed(path: str, rng: Optional[random.Random] = None) -> None:
    """Creates the database file ``path`` (which must not exist) with the
    10,000 World rows, the 12 Fortune rows and the 20 Article rows.

    WAL journal mode is stored in the file: readers do not wait for a
    writer, as with the Postgres TFB uses.
    """
    rng = rng or random.Random()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO World (id, randomNumber) VALUES (?, ?)",
            ((i, rng.randint(1, WORLD_ROWS)) for i in range(1, WORLD_ROWS + 1)),
        )
        conn.executemany("INSERT INTO Fortune (id, message) VALUES (?, ?)", FORTUNES)
        conn.executemany(f"INSERT INTO Article ({', '.join(ARTICLE_FIELDS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", articles())
        conn.commit()
    finally:
        conn.close()


# One connection per OS thread, by thread id rather than threading.local:
# Robyn (0.88) runs a sync handler under a new Python thread state each
# time, on the same OS thread, which empties a threading.local on every
# request (a new connection per request). A dict by thread id behaves the
# same on every server. No lock: only the thread itself adds its key.
_connections: Dict[int, sqlite3.Connection] = {}


def connection() -> sqlite3.Connection:
    """This thread's connection to ``$BENCH_DB``, opened on first use.

    sqlite3 connections belong to the thread that made them, and a handler
    thread that keeps one avoids opening the file per request (TFB's apps
    keep a pool for the same reason). ``timeout``: how long a writer waits
    for another's lock before ``database is locked``; synchronous=NORMAL is
    WAL's usual setting (durable at checkpoints, not at every commit).
    """
    conn = _connections.get(threading.get_ident())
    if conn is None:
        conn = sqlite3.connect(os.environ["BENCH_DB"], timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        _connections[threading.get_ident()] = conn
    return conn


def query_count(value: Optional[str]) -> int:
    """TFB's rule for ``queries``: an integer clamped to 1..500; missing,
    empty or not an integer means 1."""
    try:
        count = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1
    return min(max(count, 1), MAX_QUERIES)


def random_id() -> int:
    return random.randint(1, WORLD_ROWS)


def fortunes_html(rows: Iterable[Sequence]) -> str:
    """The Fortunes page: ``rows`` (id, message) from the database plus the
    fortune added at request time, sorted by message, escaped."""
    fortunes = list(rows)
    fortunes.append(ADDITIONAL_FORTUNE)
    fortunes.sort(key=lambda row: row[1])
    body = "".join(FORTUNES_ROW.format(id, html.escape(message)) for id, message in fortunes)
    return FORTUNES_HEAD + body + FORTUNES_TAIL


# The database work of each endpoint, shared by the apps for the same
# reason as the template: each is what TFB asks for, one statement per row.


def world(conn: sqlite3.Connection) -> dict:
    """One random World row (GET /db)."""
    id, number = conn.execute(SELECT_WORLD, (random_id(),)).fetchone()
    return {"id": id, "randomNumber": number}


def worlds(conn: sqlite3.Connection, count: int) -> List[dict]:
    """``count`` random World rows, each read by a query of its own
    (GET /queries: TFB forbids one query for all of them)."""
    found = []
    for _ in range(count):
        id, number = conn.execute(SELECT_WORLD, (random_id(),)).fetchone()
        found.append({"id": id, "randomNumber": number})
    return found


def updated_worlds(conn: sqlite3.Connection, count: int) -> List[dict]:
    """GET /updates: ``count`` rows read one by one, each given a new
    randomNumber, written back in one transaction (TFB allows the writes to
    be batched, not the reads)."""
    rows = worlds(conn, count)
    for row in rows:
        row["randomNumber"] = random_id()
    # sqlite3 opens the transaction before the first UPDATE; commit ends it.
    conn.executemany(UPDATE_WORLD, [(row["randomNumber"], row["id"]) for row in rows])
    conn.commit()
    return rows


def fortunes(conn: sqlite3.Connection) -> str:
    """GET /fortunes: every Fortune row, rendered by fortunes_html."""
    return fortunes_html(conn.execute(SELECT_FORTUNES).fetchall())


def article_list(conn: sqlite3.Connection) -> List[dict]:
    """GET /list: the 20 Article rows as objects (about 6 KB of JSON)."""
    return [dict(zip(ARTICLE_FIELDS, row)) for row in conn.execute(SELECT_ARTICLES)]
