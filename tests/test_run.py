"""`App.run()` in a real process: it prints where it serves and what,
blocks without burning CPU, and stops gracefully on SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, request

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

app.run(port=0)
print("run returned", flush=True)
"""


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float = 20.0) -> str:
    """Reads the child's stdout until `pattern` matches, within `timeout`."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not re.search(pattern, seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no {pattern!r} in time; stdout so far: {seen!r}")
            chunk = os.read(proc.stdout.fileno(), 4096).decode()
            if not chunk:
                raise AssertionError(f"process ended before {pattern!r}; stdout: {seen!r}")
            seen += chunk
    return seen


@pytest.fixture
def served(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP.format(python=str(ROOT / "python")))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        banner = _read_until(proc, r"GET\s+/broken\s+.*\n")
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
    assert request(port, "GET", "/").body == b'{"message":"hello"}'

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
