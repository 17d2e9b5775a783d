"""The smallest sufast app: `make run` serves it on http://127.0.0.1:8000."""

import sys
from pathlib import Path

# Run from a checkout without installing: the package lives in ../python.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from sufast import App, HTMLResponse, PlainTextResponse  # noqa: E402

app = App()


@app.get("/")
def hello():
    return {"message": "hello"}


@app.get("/health", headers={"Cache-Control": "no-store"})
def health():
    return {"status": "ok"}


@app.get("/about")
def about():
    return HTMLResponse("<h1>sufast</h1><p>Python handlers, served by Rust.</p>")


@app.get("/robots.txt")
def robots():
    return PlainTextResponse("User-agent: *\nDisallow:\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    app.run(port=port)
