"""A server out of file descriptors says so, rate-limited, and serves again
once descriptors are free: accept errors are never silent."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from conftest import ROOT, connect, read_until, request

resource = pytest.importorskip("resource")

SERVER = """
import resource, sys
sys.path.insert(0, {python!r})
from sufast import App
app = App()

@app.get("/")
def index():
    return "up"

port = app.start(access_log=False)
# Enough for the runtime, the handler threads and a few connections.
resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
print("serving", port, flush=True)
sys.stdin.readline()
app.stop()
print("stopped", flush=True)
"""

LIMIT = 64


def test_running_out_of_descriptors_is_logged_and_recovers(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER.format(python=str(ROOT / "python"), limit=LIMIT))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    clients = []
    try:
        port = int(read_until(proc, r"serving (\d+)\n").group(1))
        # More connections than the server has descriptors for: the
        # kernel queues them, the server's accepts fail with EMFILE.
        for _ in range(LIMIT * 2):
            clients.append(connect(port))
        # An accepted connection answers; waiting for one that cannot be
        # accepted yet shows the server is out of descriptors.
        probe = connect(port)
        probe.settimeout(0.5)
        probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with pytest.raises(socket.timeout):
            probe.recv(1)
        for client in clients:
            client.close()
        clients.clear()
        # Descriptors are free again: new requests (and the probe) are served.
        assert _served(port)
        probe.settimeout(10)
        assert probe.recv(4096).startswith(b"HTTP/1.1 200")
        probe.close()
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        read_until(proc, r"stopped\n")
        assert proc.wait(timeout=10) == 0
        stderr = proc.stderr.read().decode()
        lines = [line for line in stderr.splitlines() if "cannot accept connections" in line]
        assert lines, stderr
        assert lines[0].startswith("sufast: error: cannot accept connections: ")
        assert "out of file descriptors: raise `ulimit -n`" in lines[0]
        # Rate-limited: a line at most once a second, not one per attempt.
        assert len(lines) <= 5, lines
    finally:
        for client in clients:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _served(port: int) -> bool:
    for _ in range(100):
        try:
            if request(port, "GET", "/").body == b"up":
                return True
        except OSError:
            pass
    return False
