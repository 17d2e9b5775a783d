"""The C example, compiled with strict warnings against the committed header
and run against the real library: the C tier of the test suite.

The binary is linked with an rpath to python/sufast, so it runs without
LD_LIBRARY_PATH; the tests remove that variable to prove it.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, request

SOURCE = Path("examples/c/hello.c")
LIB_DIR = ROOT / "python" / "sufast"
LIBRARY = LIB_DIR / "libsufast.so"

# The flags the example promises to compile cleanly with.
STRICT_FLAGS = [
    "-std=c11",
    "-D_POSIX_C_SOURCE=200809L",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-pthread",
]

STARTUP_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0


def compile_command(output: Path) -> list[str]:
    """The gcc command line, relative to the repository root."""
    return [
        "gcc",
        *STRICT_FLAGS,
        "-Iinclude",
        str(SOURCE),
        "-Lpython/sufast",
        "-lsufast",
        f"-Wl,-rpath,{LIB_DIR}",
        "-o",
        str(output),
    ]


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hello.c compiled with the strict flags; fails with gcc's output."""
    if not LIBRARY.is_file():
        pytest.fail(f"{LIBRARY} is missing: run `make build` first")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    binary = tmp_path_factory.mktemp("c-program") / "hello"
    command = compile_command(binary)
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(
            f"compiling {SOURCE} failed:\n$ {' '.join(command)}\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )
    return binary


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    return env


def start(binary: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(binary), str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )


def read_line(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line of the child's stdout, waiting at most `timeout`.

    Returns what was read so far (possibly b"") if the child closes its
    stdout first; raises TimeoutError if the line does not come in time.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"no line on stdout after {timeout}s: {received!r}")
            # os.read, not the buffered file: bytes past the line stay unread
            # rather than hidden in a buffer the selector cannot see.
            chunk = os.read(fd, 4096)
            if not chunk:
                return received
            received += chunk
    return received.split(b"\n", 1)[0]


def get(port: int, path: str) -> tuple[int, str | None, bytes]:
    reply = request(port, "GET", path)
    return reply.status, reply.header("Content-Type"), reply.body


def stop(process: subprocess.Popen[bytes]) -> None:
    """Makes sure no child outlives a failed test."""
    if process.poll() is None:
        process.kill()
    process.communicate()


def test_serves_routes_and_stops_on_sigterm(hello: Path) -> None:
    process = start(hello, 0)
    try:
        line = read_line(process, STARTUP_TIMEOUT).decode()
        prefix = "listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        port = int(line[len(prefix):])
        assert 0 < port < 65536

        assert get(port, "/") == (200, "application/json", b'{"hello":"world"}')
        assert get(port, "/health") == (200, "application/json", b'{"ok":true}')
        status, _, body = get(port, "/missing")
        assert (status, body) == (404, b'{"detail": "Not Found"}')

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=EXIT_TIMEOUT)
        assert process.returncode == 0, stderr.decode(errors="replace")
    finally:
        stop(process)


def test_busy_port_fails_with_the_library_message(hello: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start(hello, port)
        try:
            stdout, stderr = process.communicate(timeout=EXIT_TIMEOUT)
        finally:
            stop(process)
    message = stderr.decode(errors="replace")
    assert process.returncode == 1, message
    assert b"listening" not in stdout
    assert "start_server" in message
    assert f"127.0.0.1:{port}" in message
