"""A small sufast app with every tier. `make run` serves it on
http://127.0.0.1:8000 (`make run PORT=9000` for another port) and prints
which tier each route is in; so does `sufast run hello:app --app-dir
examples` once sufast is installed, or `python examples/hello.py [PORT]`.
The README's example is this file."""

import sys
import time

from sufast import App, HTMLResponse, HTTPException, Request

app = App()


@app.get("/")
def hello():
    return {"message": "hello"}  # runs once; Rust serves the stored bytes


@app.get("/about")
def about():
    return HTMLResponse("<h1>sufast</h1><p>Python handlers, served by Rust.</p>")


@app.get("/health", headers={"Cache-Control": "no-store"})
def health():
    return {"status": "ok"}


# Per request: the path parameter arrives as an int, the query as a bool.
@app.get("/users/{user_id:int}")
def get_user(user_id: int, verbose: bool = False):
    if user_id == 0:
        raise HTTPException(404, "no such user")
    user = {"id": user_id}
    if verbose:
        user["name"] = f"user {user_id}"
    return user


@app.post("/echo")
async def echo(request: Request):
    return {"received": await request.json()}


# Rendered at most once a second; Rust serves the stored copy meanwhile.
@app.get("/time", cache_ttl=1)
def server_time():
    return {"time": time.time()}


if __name__ == "__main__":
    app.run(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
