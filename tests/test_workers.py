"""`App.run(workers=N)` in real processes: one socket bound by the parent,
requests answered by several worker processes, a killed worker replaced,
a graceful stop of them all, and workers that fail at start given up on."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple

import pytest
from conftest import ROOT, pids_answering, read_until, request

from sufast import App, SufastError

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or not os.path.isdir("/proc/self/task"),
    reason="workers need os.fork; these tests find them through /proc",
)

APP = """
import os, sys
sys.path.insert(0, {python!r})
from sufast import App
{setup}
app = App(threads=2)

@app.get("/pid", dynamic=True)
def pid():
    return {{"pid": os.getpid()}}

@app.get("/")
def hello():
    return {{"message": "hello"}}

app.run(port=0, workers={workers})
print("run returned", flush=True)
"""

# What the parent prints first: the one socket's port and the worker count.
BANNER = r"serving on http://127\.0\.0\.1:(\d+) \(development, (\d+) workers; Ctrl-C to stop\)\n(?:.*\n){2}"


class Cluster(NamedTuple):
    proc: subprocess.Popen
    port: int
    stderr: Path


def _launch(tmp_path: Path, workers: int, setup: str = "") -> subprocess.Popen:
    script = tmp_path / "app.py"
    script.write_text(APP.format(python=str(ROOT / "python"), setup=setup, workers=workers))
    # stderr goes to a file: the workers' access logs could fill a pipe.
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr)


def _children(parent: int) -> List[int]:
    """Live (not zombie) child processes of ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)  # a polling interval, not synchronisation


def _workers(cluster: Cluster, count: int) -> List[int]:
    _wait_until(lambda: len(_children(cluster.proc.pid)) == count, f"{count} workers running")
    return _children(cluster.proc.pid)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    proc = _launch(tmp_path, workers=2)
    try:
        banner = read_until(proc, BANNER)
        assert banner.group(2) == "2"
        yield Cluster(proc, int(banner.group(1)), tmp_path / "stderr.txt")
    finally:
        if proc.poll() is None:
            for pid in _children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_requests_are_answered_by_several_workers(cluster):
    workers = _workers(cluster, 2)
    assert request(cluster.port, "GET", "/").body == b'{"message":"hello"}'
    seen = pids_answering(cluster.port, lambda pids: len(pids) >= 2, timeout=5.0)
    assert seen == set(workers), "every worker serves, and only workers do"
    assert cluster.proc.pid not in seen
    # The parent never starts the server: no runtime, no handler threads.
    assert _threads(cluster.proc.pid) == 1


def test_a_killed_worker_is_replaced_and_service_continues(cluster):
    workers = _workers(cluster, 2)
    pids_answering(cluster.port, lambda pids: len(pids) >= 2, timeout=5.0)
    victim, survivor = workers
    os.kill(victim, signal.SIGKILL)
    _wait_until(lambda: not _alive(victim), "the killed worker is gone")

    # Requests succeed from now on, while the replacement starts and after.
    pids_answering(cluster.port, lambda pids: survivor in pids, timeout=5.0)
    _wait_until(lambda: len(_children(cluster.proc.pid)) == 2, "a replacement worker")
    (replacement,) = set(_children(cluster.proc.pid)) - {survivor}
    assert replacement not in workers
    assert replacement in pids_answering(cluster.port, lambda pids: replacement in pids, timeout=5.0)
    assert f"worker {victim} was killed by SIGKILL" in cluster.stderr.read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_the_parent_stops_every_worker(cluster, signum):
    workers = _workers(cluster, 2)
    pids_answering(cluster.port, lambda pids: len(pids) >= 2, timeout=5.0)

    started = time.monotonic()
    cluster.proc.send_signal(signum)
    stdout, _ = cluster.proc.communicate(timeout=10)
    assert time.monotonic() - started < 8
    assert cluster.proc.returncode == 0, cluster.stderr.read_text()
    assert b"sufast stopped" in stdout and b"run returned" in stdout
    # The parent reaped them all before it returned.
    assert [pid for pid in workers if _alive(pid)] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", cluster.port), timeout=5).close()
    assert "Traceback" not in cluster.stderr.read_text()


def test_workers_that_keep_failing_at_start_are_given_up_on(tmp_path):
    # Every worker exits with code 3 right after its fork.
    proc = _launch(tmp_path, workers=2, setup="os.register_at_fork(after_in_child=lambda: os._exit(3))")
    try:
        read_until(proc, BANNER)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 1, stderr
    assert re.search(r"SufastError: workers keep failing at start \(5 in a row .*exited with code 3.*giving up", stderr)
    # Each quick exit before the last one was replaced, after a growing delay.
    delays = re.findall(r"starting another in (\d+\.\d) s", stderr)
    assert delays == ["0.1", "0.2", "0.4", "0.8"], stderr


@pytest.mark.parametrize("workers", [0, -1, True, 2.0, "2", None])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers must be an integer from 1"):
        App().run(port=0, workers=workers)


def test_workers_refuse_to_fork_while_a_server_runs(app):
    port = app.start()
    with pytest.raises(SufastError, match=f"already running in this process on port {port}"):
        App().run(port=0, workers=2)
    assert request(port, "GET", "/nope").status == 404, "the running server is untouched"


def test_workers_need_the_main_thread():
    raised: List[BaseException] = []

    def run() -> None:
        try:
            App().run(port=0, workers=2)
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert len(raised) == 1 and isinstance(raised[0], SufastError), raised
    assert "main thread" in str(raised[0])
