"""`App.run()` in a real process: it prints where it serves and what,
blocks without burning CPU, and stops gracefully on SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, read_until, request

APP = """
import sys
sys.path.insert(0, {python!r})
from sufast import App
app = App()

@app.get("/")
def hello():
    return {{"message": "hello"}}

@app.get("/broken")
def broken():
    raise RuntimeError("boom")

@app.get("/users/{{user_id:int}}")
def user(user_id: int):
    return {{"id": user_id}}

@app.get("/later")
async def later(n: int = 1):
    return {{"n": n}}

app.run(port=0)
print("run returned", flush=True)
"""


@pytest.fixture
def served(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP.format(python=str(ROOT / "python")))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        banner = read_until(proc, r"GET\s+/later\s+.*\n").string
        yield proc, banner
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_prints_routes_and_stops_on_signal(served, signum):
    proc, banner = served
    port = int(re.search(r"serving on http://127\.0\.0\.1:(\d+) \(development", banner).group(1))
    assert re.search(r"GET\s+/\s+static\n", banner)
    assert re.search(r"GET\s+/broken\s+static \(500: handler raised\)", banner)
    assert re.search(r"GET\s+/users/\{user_id:int\}\s+dynamic\n", banner)
    assert request(port, "GET", "/").body == b'{"message":"hello"}'
    assert request(port, "GET", "/users/7").body == b'{"id":7}'
    assert request(port, "GET", "/later?n=2").body == b'{"n":2}'

    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert b"sufast stopped" in stdout and b"run returned" in stdout
    assert b"route GET /broken: handler raised RuntimeError: boom" in stderr
    assert b'"GET / HTTP/1.1" 200 19' in stderr, "development mode logs each request"


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_run_blocks_without_burning_cpu(served):
    proc, _ = served
    before = _cpu_seconds(proc.pid)
    time.sleep(1.0)  # a measurement window, not synchronisation
    assert _cpu_seconds(proc.pid) - before < 0.1


EXIT_MID_REQUEST = """
import sys, threading, asyncio, http.client
sys.path.insert(0, {python!r})
from sufast import App
app = App()
entered = threading.Semaphore(0)

@app.get("/blocked")
def blocked(n: int = 0):
    entered.release()
    threading.Event().wait(60)

@app.get("/awaiting")
async def awaiting(n: int = 0):
    entered.release()
    await asyncio.sleep(60)

port = app.start()

def client(path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        print(path, conn.getresponse().status, flush=True)
    except OSError as exc:
        print(path, type(exc).__name__, flush=True)

for path in ("/blocked", "/awaiting"):
    threading.Thread(target=client, args=(path,), daemon=True).start()
entered.acquire(); entered.acquire()
print("exiting with handlers in flight", flush=True)
"""


def test_interpreter_exit_with_handlers_in_flight_is_prompt_and_clean(tmp_path):
    script = tmp_path / "exit.py"
    script.write_text(EXIT_MID_REQUEST.format(python=str(ROOT / "python")))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=30)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert b"exiting with handlers in flight" in proc.stdout
    assert b"Fatal Python error" not in proc.stderr and b"panicked" not in proc.stderr
    # atexit stops the server with a 1 s deadline; nothing waits for the
    # 60 s handlers.
    assert elapsed < 10, f"exit took {elapsed:.1f} s"
