"""What the tests share: the package on sys.path, an App fixture that is always
stopped and a TestClient of it, a plain HTTP client for servers the
TestClient does not serve (other processes, an App started by hand), and
raw sockets for what must be seen byte by byte."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from sufast import App  # noqa: E402
from sufast.testclient import TestClient  # noqa: E402


class Reply:
    """One HTTP response as received."""

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.header_list = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> List[str]:
        return [v for n, v in self.header_list if n.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:80]!r})"


def request(
    port: int,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Reply:
    """Sends one request to 127.0.0.1:port over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def connect(port: int) -> socket.socket:
    """A fresh connection to 127.0.0.1:port."""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything ``sock`` receives until the server closes it."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def raw(port: int, data: bytes) -> bytes:
    """Writes ``data`` as is to a fresh connection and reads until the
    server closes it (a server that answers before all of ``data`` was
    sent still has its answer read)."""
    with connect(port) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(sock)


@pytest.fixture
def app():
    """A fresh App, stopped after the test whatever happens."""
    application = App()
    yield application
    application.stop(timeout=0)


@pytest.fixture
def client(app):
    """A TestClient of the ``app`` fixture. Its first request starts the
    app, so routes registered before it are served; it stops after the
    test."""
    test_client = TestClient(app)
    yield test_client
    test_client.close()


@pytest.fixture
def make_app():
    """Makes Apps with options (``make_app(headers=...)``); every one is
    stopped after the test whatever happens."""
    made: List[App] = []

    def make(**options) -> App:
        application = App(**options)
        made.append(application)
        return application

    yield make
    for application in made:
        application.stop(timeout=0)


def read_until(proc: subprocess.Popen, pattern: str, timeout: float = 20.0) -> "re.Match[str]":
    """Reads a child's stdout until ``pattern`` matches, within ``timeout``
    seconds; the match's ``string`` is everything read so far."""
    seen = ""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            match = re.search(pattern, seen)
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no {pattern!r} in time; stdout so far: {seen!r}")
            chunk = os.read(proc.stdout.fileno(), 4096).decode()
            if not chunk:
                raise AssertionError(f"process ended before {pattern!r}; stdout: {seen!r}")
            seen += chunk


def pids_answering(
    port: int, until: Callable[[Set[int]], bool], path: Callable[[int], str] = lambda n: "/pid", timeout: float = 10.0
) -> Set[int]:
    """Sends rounds of 16 concurrent GETs of ``path(n)`` (each answering
    ``{"pid": ...}``), each over a fresh connection, until the set of pids
    that answered satisfies ``until``; every request must succeed."""
    seen: Set[int] = set()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=8) as pool:
        while not until(seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"only pids {sorted(seen)} answered within {timeout} s")
            for reply in pool.map(lambda n: request(port, "GET", path(n)), range(16)):
                assert reply.status == 200, reply
                seen.add(json.loads(reply.body)["pid"])
    return seen
