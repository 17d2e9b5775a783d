"""A small articles service: token auth and a SQLite store, built from
routers and dependencies.

    sufast run examples.articles:app

- ``POST /api/users`` with ``{"username": ..., "password": ...}`` signs up
  and answers ``{"token": ...}``.
- ``POST /api/articles`` with ``Authorization: Token <token>`` and
  ``{"title": ..., "body": ...}`` creates an article (201).
- ``GET /api/articles`` lists them (``?author=`` filters, ``?limit=``).
- ``GET /api/articles/{slug}`` reads one (404 ``{"errors": ...}`` if none).
- ``DELETE /api/articles/{slug}`` deletes one of your own (204).

Every request gets its own SQLite connection from a generator
dependency, closed after the response is sent. The database lives in a
temporary directory the app's lifespan creates and removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from typing import Iterator, Optional

from sufast import App, Depends, Header, HTTPException, JSONResponse, Request, Router, status

SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, password TEXT NOT NULL, token TEXT UNIQUE NOT NULL);
CREATE TABLE articles (slug TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, author INTEGER NOT NULL REFERENCES users(id));
"""


class NotFound(Exception):
    """Something the client asked for does not exist."""


@contextlib.asynccontextmanager
async def lifespan(app: App):
    directory = tempfile.mkdtemp(prefix="sufast-articles-")
    app.state.database = os.path.join(directory, "articles.db")
    with sqlite3.connect(app.state.database) as db:
        db.executescript(SCHEMA)
    yield
    shutil.rmtree(directory, ignore_errors=True)


def get_db(request: Request) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(request.app.state.database)
    db.row_factory = sqlite3.Row
    try:
        yield db
        db.commit()
    finally:
        db.close()


def current_user(authorization: str = Header(), db: sqlite3.Connection = Depends(get_db)) -> sqlite3.Row:
    scheme, _, token = authorization.partition(" ")
    user = db.execute("SELECT id, username FROM users WHERE token = ?", (token,)).fetchone() if scheme == "Token" else None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Token"})
    return user


users = Router(prefix="/users", tags=["users"])
articles = Router(prefix="/articles", tags=["articles"])


@users.post("", status_code=status.HTTP_201_CREATED)
def sign_up(body: dict, db: sqlite3.Connection = Depends(get_db)):
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username or not isinstance(password, str) or len(password) < 8:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "username and a password of 8 or more characters are required")
    token = secrets.token_hex(16)
    digest = hashlib.sha256(password.encode()).hexdigest()
    try:
        db.execute("INSERT INTO users (username, password, token) VALUES (?, ?, ?)", (username, digest, token))
    except sqlite3.IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"username {username!r} is taken") from None
    return {"username": username, "token": token}


@articles.get("")
def list_articles(author: Optional[str] = None, limit: int = 20, db: sqlite3.Connection = Depends(get_db)):
    query = "SELECT a.slug, a.title, u.username AS author FROM articles a JOIN users u ON u.id = a.author"
    rows = db.execute(query + (" WHERE u.username = ?" if author else "") + " ORDER BY a.rowid LIMIT ?", (author, limit) if author else (limit,))
    return {"articles": [dict(row) for row in rows]}


@articles.post("", status_code=status.HTTP_201_CREATED)
def create_article(body: dict, user: sqlite3.Row = Depends(current_user), db: sqlite3.Connection = Depends(get_db)):
    title, text = body.get("title"), body.get("body")
    if not isinstance(title, str) or not title.strip() or not isinstance(text, str):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "title and body are required")
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    try:
        db.execute("INSERT INTO articles (slug, title, body, author) VALUES (?, ?, ?, ?)", (slug, title, text, user["id"]))
    except sqlite3.IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"an article {slug!r} exists") from None
    return {"slug": slug, "title": title, "body": text, "author": user["username"]}


@articles.get("/{slug}")
def get_article(slug: str, db: sqlite3.Connection = Depends(get_db)):
    row = db.execute(
        "SELECT a.slug, a.title, a.body, u.username AS author FROM articles a JOIN users u ON u.id = a.author WHERE a.slug = ?", (slug,)
    ).fetchone()
    if row is None:
        raise NotFound(f"article {slug!r}")
    return dict(row)


@articles.delete("/{slug}", status_code=status.HTTP_204_NO_CONTENT)
def delete_article(slug: str, user: sqlite3.Row = Depends(current_user), db: sqlite3.Connection = Depends(get_db)):
    deleted = db.execute("DELETE FROM articles WHERE slug = ? AND author = ?", (slug, user["id"])).rowcount
    if not deleted:
        raise NotFound(f"article {slug!r} of {user['username']}")


app = App(lifespan=lifespan)
app.include_router(users, prefix="/api")
app.include_router(articles, prefix="/api")


@app.exception_handler(NotFound)
def not_found(request: Request, exc: NotFound):
    return JSONResponse({"errors": {"body": [f"{exc} not found"]}}, status_code=status.HTTP_404_NOT_FOUND)
