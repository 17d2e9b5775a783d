"""Starting, stopping and restarting; the one-server-per-process rule; the
native library's loading and errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, connect, read_all, request

import sufast
from sufast import App, SufastError, _native


def test_start_returns_the_bound_port_and_stop_releases_it(app):
    app.get("/")(lambda: "up")
    port = app.start()
    assert port > 0 and app.port == port and app.running
    assert request(port, "GET", "/").body == b"up"
    app.stop()
    assert not app.running and app.port == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free again


def test_restart_in_the_same_process(app):
    app.get("/")(lambda: "again")
    for _ in range(3):
        port = app.start()
        assert request(port, "GET", "/").body == b"again"
        app.stop()


def test_stop_when_not_running_does_nothing(app):
    app.stop()
    app.stop()


def test_a_second_app_cannot_start_while_one_serves(app):
    app.get("/")(lambda: "first")
    port = app.start()
    other = App()
    other.get("/")(lambda: "second")
    with pytest.raises(SufastError, match=f"already being served on port {port}"):
        other.start()
    assert request(port, "GET", "/").body == b"first"
    with pytest.raises(SufastError, match="already being served"):
        app.start()


def test_busy_port_is_a_clear_error(app):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        with pytest.raises(SufastError, match=f"cannot listen on 127.0.0.1:{busy}") as info:
            app.start(port=busy)
    assert info.value.code == 7
    assert not app.running


@pytest.mark.parametrize("port", [-1, 65536, 80.0, "80", True])
def test_invalid_port_is_refused_before_the_library(app, port):
    with pytest.raises(ValueError, match="port must be an integer"):
        app.start(port=port)


def test_bad_host_is_a_clear_error(app):
    with pytest.raises(SufastError, match='host "example.invalid" is not an IP address'):
        app.start(host="example.invalid")


def test_library_version_matches_the_package():
    assert _native.version() == sufast.__version__


def test_route_table_errors_carry_code_and_message():
    with pytest.raises(SufastError, match="route table is not valid JSON") as info:
        _native.check_routes(b"{")
    assert info.value.code == 3
    with pytest.raises(SufastError, match=r'unknown method "FETCH"') as info:
        _native.check_routes(b'{"FETCH": {}}')
    assert info.value.code == 4


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "python"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_works_without_the_library_and_use_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "libsufast.so"
    code = "import sufast\napp = sufast.App()\napp.get('/')(lambda: 1)\n"
    result = _python(code, SUFAST_LIB=str(missing))
    assert result.returncode == 1
    assert f"the sufast native library was not found at {missing}" in result.stderr
    assert "run `make build`" in result.stderr


def test_a_file_that_is_not_a_library_is_refused(tmp_path):
    bogus = tmp_path / "libsufast.so"
    bogus.write_text("not a library")
    result = _python("import sufast\nsufast._native.version()\n", SUFAST_LIB=str(bogus))
    assert result.returncode == 1
    assert f"cannot load the sufast native library at {bogus}" in result.stderr


def test_a_library_of_another_version_is_refused(monkeypatch):
    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setattr(_native, "PACKAGE_VERSION", "9.9.9")
    with pytest.raises(SufastError, match=r"is version 0\.1\.0, but the sufast package is 9\.9\.9; rebuild it with `make build`"):
        _native.version()


def test_the_library_is_found_inside_the_package():
    assert _native.library_path().parent == ROOT / "python" / "sufast"
    assert _native.library_path().name == _native.library_name()


def test_requests_already_waiting_on_a_socket_are_served_when_it_starts(app):
    # As a worker joining a socket that clients already use: its first
    # accepts come at once, before start() has returned.
    @app.get("/users/{user_id:int}")
    def user(user_id: int):
        return {"id": user_id}

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        clients = [connect(port) for _ in range(8)]
        for n, client in enumerate(clients):
            client.sendall(f"GET /users/{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        app.start(fd=listener.fileno())
    for n, client in enumerate(clients):
        with client:
            reply = read_all(client)
        assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(f'{{"id":{n}}}'.encode()), reply


FORKED = """
import os, sys
sys.path.insert(0, {python!r})
from sufast import App, SufastError, _native
app = App()
app.get("/")(lambda: "parent")
port = app.start()
pid = os.fork()
if pid == 0:
    seen = [str(_native.bound_port())]
    for call in (lambda: _native.stop(0), lambda: _native.start(0, False)):
        try:
            call()
            seen.append("ok")
        except SufastError as exc:
            seen.append(f"{{exc.code}}: {{exc.message}}")
    print("|".join(seen), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
import http.client
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
conn.request("GET", "/")
print("parent", os.waitstatus_to_exitcode(status), conn.getresponse().read().decode(), flush=True)
app.stop()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_clear_error_and_the_parent_keeps_serving(tmp_path):
    script = tmp_path / "forked.py"
    script.write_text(FORKED.format(python=str(ROOT / "python")))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    child, parent = proc.stdout.splitlines()
    port, stopped, started = child.split("|")
    assert port == "0"
    for failed in (stopped, started):
        assert failed.startswith("13: the server on port "), failed
        assert "belongs to process" in failed and "fork before starting" in failed
    assert parent == "parent 0 parent"
    assert "panicked" not in proc.stderr
