"""The server's access log and events, as written to stderr by the library
itself: formats, on and off in both modes, and levels."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, request

from sufast import App, Request

COMMON = re.compile(
    r'^(?P<client>\S+) - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] '
    r'"(?P<method>\S+) (?P<target>\S+) HTTP/1\.1" (?P<status>\d{3}) (?P<bytes>\d+|-) (?P<ms>\d+\.\d{3})ms$',
    re.M,
)


def served(make_app, **start) -> int:
    app = make_app()

    @app.get("/")
    def index():
        return {"hello": "world"}

    @app.get("/users/{user_id:int}")
    def user(user_id: int):
        return {"id": user_id}

    return app.start(host="127.0.0.1", **start)


def test_common_format_is_the_default_in_development(make_app, capfd):
    port = served(make_app)
    assert request(port, "GET", "/users/7?x=1").status == 200
    assert request(port, "HEAD", "/").status == 200
    assert request(port, "GET", "/missing").status == 404
    lines = [m.groupdict() for m in COMMON.finditer(capfd.readouterr().err)]
    assert [(l["method"], l["target"], l["status"], l["bytes"]) for l in lines] == [
        ("GET", "/users/7?x=1", "200", "8"),
        ("HEAD", "/", "200", "-"),
        ("GET", "/missing", "404", str(len(request(port, "GET", "/missing").body))),
    ]
    assert {l["client"] for l in lines} == {"127.0.0.1"}


def test_json_lines_carry_every_field(make_app, capfd):
    port = served(make_app, access_log_format="json")
    request(port, "GET", "/users/3")
    request(port, "GET", "/")
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    assert [(r["method"], r["path"], r["status"], r["bytes"]) for r in records] == [
        ("GET", "/users/3", 200, 8),
        ("GET", "/", 200, 17),
    ]
    first = records[0]
    assert first["client"] == "127.0.0.1" and first["protocol"] == "HTTP/1.1"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", first["time"])
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0


@pytest.mark.parametrize(
    "start, logged",
    [
        ({"production": True}, False),
        ({"production": True, "access_log": True}, True),
        ({"production": True, "access_log": True, "access_log_format": "json"}, True),
        ({"production": True, "access_log_format": "json"}, False),
        ({"access_log": False}, False),
        ({"access_log": True}, True),
    ],
)
def test_access_log_switches_in_both_modes(make_app, capfd, start, logged):
    port = served(make_app, **start)
    assert request(port, "GET", "/").status == 200
    err = capfd.readouterr().err
    assert ('"GET / HTTP/1.1" 200 17' in err or '"path":"/"' in err) is logged, err


def test_a_bad_setting_raises_before_serving(make_app):
    app = make_app()
    with pytest.raises(ValueError, match="access_log_format"):
        app.start(access_log_format="xml")
    with pytest.raises(ValueError, match="log_level must be one of critical, error"):
        app.start(log_level="loud")
    with pytest.raises(TypeError, match="access_log"):
        app.start(access_log="yes")
    assert not app.running


def stuck_app(make_app):
    app = make_app()
    entered, release = threading.Event(), threading.Event()

    @app.get("/stuck")
    def stuck(request: Request):
        entered.set()
        release.wait(10)
        return {}

    return app, entered, release


@pytest.mark.parametrize("level, shown", [("warning", True), ("info", True), ("error", False)])
def test_a_passed_stop_deadline_is_a_warning(make_app, capfd, level, shown):
    app, entered, release = stuck_app(make_app)
    port = app.start(log_level=level, access_log=False)
    client = threading.Thread(target=lambda: _ignore_errors(port, "/stuck"))
    client.start()
    assert entered.wait(10)
    app.stop(timeout=0.05)
    release.set()
    client.join(10)
    err = capfd.readouterr().err
    line = "sufast: warning: stop deadline passed; closing connections still open"
    assert (line in err) is shown, err


def _ignore_errors(port: int, path: str) -> None:
    try:
        request(port, "GET", path)
    except OSError:
        pass


def test_debug_shows_start_and_stop_and_info_does_not(make_app, capfd):
    app = make_app()
    port = app.start(log_level="debug", access_log=False)
    app.stop()
    err = capfd.readouterr().err
    assert f"sufast: debug: server listening on 127.0.0.1:{port}" in err
    assert "sufast: debug: server stopped" in err
    port = app.start(access_log=False)
    app.stop()
    assert "server listening" not in capfd.readouterr().err


EVENTS = """
import sys, http.client
sys.path.insert(0, {python!r})
from sufast import App
app = App()

@app.get("/broken")
def broken(n: int = 0):
    raise RuntimeError("kaput")

port = app.start(log_level={level!r}, access_log=False)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
conn.request("GET", "/broken")
print(conn.getresponse().status, flush=True)
app.stop()
"""


@pytest.mark.parametrize("level, shown", [("error", True), ("critical", False)])
def test_python_events_share_the_servers_format_and_level(tmp_path, level, shown):
    script = tmp_path / "events.py"
    script.write_text(EVENTS.format(python=str(ROOT / "python"), level=level))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "500\n", proc.stderr
    line = "sufast: error: GET /broken: route GET /broken: handler raised RuntimeError"
    assert (line in proc.stderr) is shown, proc.stderr
    assert ("RuntimeError: kaput" in proc.stderr) is shown
