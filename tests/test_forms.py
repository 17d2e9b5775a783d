"""Forms and uploads over real HTTP: the library parses form bodies (as
they arrive on routes that read forms, on demand for request.form()
elsewhere) and hands fields and files to Python."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, Optional

import pytest
from conftest import ROOT

from sufast import App, File, Form, Request, UploadFile
from sufast.testclient import TestClient


def client(app: App) -> TestClient:
    return TestClient(app)


def test_form_fields_are_converted_and_missing_ones_are_422():
    app = App()

    @app.post("/login")
    def login(username: str = Form(), age: int = Form(18), tags: List[str] = Form([])):
        return {"username": username, "age": age, "tags": tags}

    with client(app) as c:
        assert c.post("/login", data={"username": "ann", "age": "7", "tags": ["a", "b"]}).json() == {"username": "ann", "age": 7, "tags": ["a", "b"]}
        # multipart fields read the same as urlencoded ones
        assert c.post("/login", data={"username": "bo"}, files={"ignored": ("x", b"")}).json()["username"] == "bo"
        bad = c.post("/login", data={"username": "ann", "age": "x"})
        assert bad.status_code == 422
        assert bad.json()["detail"] == [
            {"type": "int_parsing", "loc": ["body", "age"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x"}
        ]
        # An empty field counts as missing, as in FastAPI.
        missing = c.post("/login", data={"username": ""})
        assert missing.status_code == 422
        assert missing.json()["detail"] == [{"type": "missing", "loc": ["body", "username"], "msg": "Field required", "input": None}]
        # A JSON body is no form: the field is missing.
        assert c.post("/login", json={"username": "ann"}).status_code == 422


def test_uploads_give_upload_files_lists_and_bytes():
    app = App()

    @app.post("/one")
    def one(file: UploadFile, note: Optional[str] = Form(None)):
        return {"filename": file.filename, "type": file.content_type, "size": file.size, "content": file.read().decode(), "note": note}

    @app.post("/many")
    async def many(files: List[UploadFile] = File()):
        return [{"filename": f.filename, "content": (await f.read()).decode()} for f in files]

    @app.post("/bytes")
    def raw(data: bytes = File(), maybe: Optional[UploadFile] = None):
        return {"data": data.decode(), "maybe": maybe}

    with client(app) as c:
        got = c.post("/one", files={"file": ("a.txt", b"hello", "text/plain")}, data={"note": "n"}).json()
        assert got == {"filename": "a.txt", "type": "text/plain", "size": 5, "content": "hello", "note": "n"}
        got = c.post("/many", files=[("files", ("a", b"1")), ("files", ("b", b"22"))]).json()
        assert got == [{"filename": "a", "content": "1"}, {"filename": "b", "content": "22"}]
        assert c.post("/bytes", files={"data": ("d", b"xyz")}).json() == {"data": "xyz", "maybe": None}
        missing = c.post("/one", data={"note": "n"})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "file"]
        not_a_file = c.post("/one", data={"file": "text"})
        assert not_a_file.status_code == 422 and not_a_file.json()["detail"][0]["type"] == "value_error"


def test_request_form_reads_forms_on_any_route():
    app = App()

    @app.post("/any")
    async def anyform(request: Request):
        form = await request.form()
        return {k: (v if isinstance(v, str) else [v.filename, (await v.read()).decode()]) for k, v in form.items()}

    @app.post("/sync")
    def sync(request: Request):
        form = request.form()
        return {"a": form.getlist("a"), "has_b": "b" in form, "n": len(form)}

    @app.post("/upload")
    def upload(request: Request, file: UploadFile):
        form = request.form()
        return {"same": form["file"] is file}

    @app.post("/body")
    def body(request: Request, name: str = Form()):
        try:
            request.body()
        except RuntimeError as exc:
            return {"refused": "request.form()" in str(exc)}
        return {"refused": False}

    with client(app) as c:
        assert c.post("/any", data={"a": "1", "b": "x y"}).json() == {"a": "1", "b": "x y"}
        assert c.post("/any", files={"f": ("f.txt", b"zz")}, data={"a": "1"}).json() == {"a": "1", "f": ["f.txt", "zz"]}
        assert c.post("/sync", data={"a": ["1", "2"]}).json() == {"a": ["1", "2"], "has_b": False, "n": 1}
        assert c.post("/sync", json={"a": 1}).json() == {"a": [], "has_b": False, "n": 0}
        assert c.post("/upload", files={"file": ("f", b"1")}).json() == {"same": True}
        assert c.post("/body", data={"name": "x"}).json() == {"refused": True}
        # A malformed multipart body is a 400 here too, parsed on demand.
        broken = c.post("/any", content=b"--b\r\nno", headers={"content-type": "multipart/form-data; boundary=b"})
        assert broken.status_code == 400 and "malformed" in broken.json()["detail"]


def test_malformed_forms_and_limits_get_400_and_413():
    app = App(max_form_parts=3, max_part_size=10)

    @app.post("/f")
    def form(a: str = Form("")):
        return {"a": a}

    with client(app) as c:
        no_boundary = c.post("/f", content=b"x", headers={"content-type": "multipart/form-data"})
        assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["detail"]
        broken = c.post("/f", content=b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nno end", headers={"content-type": "multipart/form-data; boundary=b"})
        assert broken.status_code == 400 and "malformed" in broken.json()["detail"]
        many = c.post("/f", data={"a": "1", "b": "2", "c": "3", "d": "4"})
        assert many.status_code == 413 and "max_form_parts (3)" in many.json()["detail"]
        long = c.post("/f", data={"a": "x" * 11}, files={"f": ("f", b"a file may be longer")})
        assert long.status_code == 413 and "max_part_size" in long.json()["detail"]
        # The server goes on serving.
        assert c.post("/f", data={"a": "ok"}).json() == {"a": "ok"}


def test_a_large_upload_is_spooled_to_a_file_deleted_after_the_response():
    app = App(upload_spool_size=1024)
    seen = {}

    @app.post("/up")
    def up(small: UploadFile, large: UploadFile):
        seen["path"] = getattr(large.file, "name", None)
        seen["exists"] = isinstance(seen["path"], str) and os.path.exists(seen["path"])
        return {"small": len(small.read()), "large": hashlib.sha256(large.read()).hexdigest(), "size": large.size}

    payload = os.urandom(200_000)
    with client(app) as c:
        got = c.post("/up", files={"small": ("s", b"x" * 100), "large": ("l", payload)}).json()
        assert got == {"small": 100, "large": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
        assert seen["exists"], "the large file is on disk while the handler runs"
        assert not os.path.exists(seen["path"]), "and gone once the request was answered"
    with pytest.raises(ValueError, match="upload_spool_size"):
        App(upload_spool_size=-1)


def test_spooled_files_hold_no_descriptors_and_are_deleted_read_or_not(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the library spools
    app = App(upload_spool_size=10)
    seen = {}

    @app.post("/many")
    def many(files: List[UploadFile]):
        seen["on_disk"] = sorted(p.name.startswith("sufast-upload-") for p in tmp_path.iterdir())
        seen["fds"] = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
        return {"first": files[0].read().decode()}

    with client(app) as c:
        before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
        got = c.post("/many", files=[("files", (f"f{i}", b"%d" % i * 100)) for i in range(5)])
        assert got.json() == {"first": "0" * 100}
        assert seen["on_disk"] == [True] * 5
        assert list(tmp_path.iterdir()) == [], "every spooled file is deleted once the request is answered"
        if before is not None:
            # the client's socket aside, no descriptor per spooled file
            assert seen["fds"] - before < 5


_UPLOAD_SERVER = textwrap.dedent(
    """
    import hashlib, sys
    sys.path.insert(0, sys.argv[1])
    from sufast import App, UploadFile

    app = App(max_body_size=64 << 20)

    @app.post("/up")
    def up(file: UploadFile):
        digest = hashlib.sha256()
        while True:
            chunk = file.file.read(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
        return {"size": file.size, "sha256": digest.hexdigest()}

    port = app.start(port=0)
    print(port, flush=True)
    sys.stdin.read()
    app.stop()
    """
)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_20_mb_upload_keeps_the_servers_memory_bounded():
    server = subprocess.Popen(
        [sys.executable, "-c", _UPLOAD_SERVER, str(ROOT / "python")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        before = _peak_rss_kib(server.pid)
        size, boundary = 20 * 1024 * 1024, "sufastboundary"
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'.encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        chunk = bytes(range(256)) * 256  # 64 KiB, sent over and over: the client holds no 20 MB either
        digest = hashlib.sha256()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                f"POST /up HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary={boundary}\r\n"
                f"content-length: {len(head) + size + len(tail)}\r\nconnection: close\r\n\r\n".encode() + head
            )
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
                digest.update(chunk)
            sock.sendall(tail)
            reply = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        head_bytes, _, body = reply.partition(b"\r\n\r\n")
        assert head_bytes.startswith(b"HTTP/1.1 200"), reply[:200]
        assert body.decode() == f'{{"size":{size},"sha256":"{digest.hexdigest()}"}}'
        grown_mib = (_peak_rss_kib(server.pid) - before) / 1024
        assert grown_mib < 10, f"the server's peak memory grew by {grown_mib:.1f} MiB for a 20 MiB upload"
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def test_the_readme_forms_example_serves_as_it_says():
    from test_examples import readme_block

    namespace: dict = {}
    exec(compile(readme_block("### Forms and uploads"), "README.md", "exec", dont_inherit=True), namespace)
    with TestClient(namespace["app"]) as c:
        assert c.post("/login", data={"username": "ann", "remember": "on"}).json() == {"username": "ann", "remember": True}
        got = c.post("/avatars", data={"user": "ann"}, files={"image": ("me.png", b"\x89PNG", "image/png")}).json()
        assert got == {"user": "ann", "filename": "me.png", "type": "image/png", "size": 4}
        got = c.post("/attachments", files=[("files", ("a", b"1")), ("files", ("b", b"22"))]).json()
        assert got == [{"name": "a", "size": 1}, {"name": "b", "size": 2}]
        assert c.post("/raw-form", data={"x": "1", "y": "2"}).json() == {"keys": ["x", "y"]}
        assert c.post("/login", data={}).status_code == 422
