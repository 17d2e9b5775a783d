"""sufast behind a real nginx on loopback, with deploy/nginx.conf as shipped
(only its backends and listen port replaced): requests are spread over the
backends, a killed backend costs no failed GET, a backend stopped with
SIGTERM finishes the request it is serving, and forwarded headers set by
nginx reach ``request.client`` only from a trusted address."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from conftest import ROOT, Reply, read_until, request

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
if NGINX is None:
    pytest.skip(
        "nginx is not installed (not on PATH nor in /usr/sbin); `apt-get install nginx` runs these tests",
        allow_module_level=True,
    )

DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"

BACKEND = """
import json, os, sys, time
sys.path.insert(0, {python!r})
from sufast import App, Request, Response

options = json.loads(sys.argv[1])
signals = sys.argv[2]
app = App()

@app.get("/pid", dynamic=True)
def pid():
    return {{"pid": os.getpid()}}

@app.get("/client")
def client(request: Request):
    return {{"host": request.client.host if request.client else None, "url": request.url}}

@app.get("/slow")
def slow(request: Request):
    # Says it has started, then holds the request until the test releases it.
    started = os.path.join(signals, "started")
    with open(started + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(started + ".tmp", started)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(signals, "release")):
        if time.monotonic() > deadline:
            return Response("never released", status_code=500)
        time.sleep(0.01)
    return {{"pid": os.getpid(), "slow": "done"}}

app.run(port=0, **options)
"""

MAIN_CONF = """
worker_processes 1;
{user}
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request $status upstream=$upstream_addr status=$upstream_status';
    access_log {tmp}/access.log upstreams;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""

# Two backends, one trusting nginx's address and one trusting nothing, with
# the forwarded headers of deploy/nginx.conf; X-Forwarded-Proto says https
# as a TLS-terminating nginx would.
FORWARDED_SITE = """
server {{
    listen 127.0.0.1:{port};
    location /trusted/ {{
        proxy_pass http://127.0.0.1:{trusted}/;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
    }}
    location /untrusted/ {{
        proxy_pass http://127.0.0.1:{untrusted}/;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
    }}
}}
"""


class Backend:
    """One `app.run()` process; its stderr (the access log) goes to a file."""

    def __init__(self, tmp: Path, name: str, options: Dict[str, object]) -> None:
        self.signals = tmp / name
        self.signals.mkdir()
        script = tmp / "backend.py"
        if not script.exists():
            script.write_text(BACKEND.format(python=str(ROOT / "python")))
        self.stderr_path = tmp / f"{name}.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), json.dumps(options), str(self.signals)],
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        try:
            banner = read_until(self.proc, r"serving on http://127\.0\.0\.1:(\d+) ", timeout=20)
        except AssertionError as e:
            raise AssertionError(f"{e}\nstderr: {self.stderr()}") from None
        self.port = int(banner.group(1))

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


class Nginx:
    """nginx in the foreground, everything it writes under ``tmp``."""

    def __init__(self, tmp: Path, site: str, port: int) -> None:
        self.tmp = tmp
        self.port = port
        (tmp / "site.conf").write_text(site)
        # As root, nginx's workers would switch to `nobody`, who cannot
        # enter the test's private temporary directory.
        user = "user root;" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(MAIN_CONF.format(tmp=tmp, user=user))
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Polls until nginx accepts connections; False if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"nginx did not listen on {self.port} in time:\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for name in ("error.log", "access.log"):
            path = self.tmp / name
            if path.exists():
                parts.append(f"--- nginx {name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy_site(backends: List[Backend], port: int) -> str:
    """deploy/nginx.conf with its upstream servers and listen port replaced."""
    text = DEPLOY_CONF.read_text()
    servers = re.findall(r"^ *server \S+:\d+[^;\n]*;\n", text, flags=re.M)
    assert servers, "deploy/nginx.conf has no `server host:port ...;` lines in its upstream"
    options = re.match(r" *server \S+(.*);", servers[0]).group(1)
    ours = "".join(f"    server 127.0.0.1:{b.port}{options};\n" for b in backends)
    text = text.replace(servers[0], ours, 1)
    for line in servers[1:]:
        text = text.replace(line, "", 1)
    text, listens = re.subn(r"^( *)listen \d+;", rf"\1listen 127.0.0.1:{port};", text, flags=re.M)
    assert listens == 1, "deploy/nginx.conf should have one `listen PORT;` line"
    return text


class Stack:
    """Backends and nginx for one test; everything is stopped afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.backends: List[Backend] = []
        self.nginx: Optional[Nginx] = None

    def backend(self, **options: object) -> Backend:
        backend = Backend(self.tmp, f"backend{len(self.backends)}", options)
        self.backends.append(backend)
        return backend

    def start_nginx(self, site_for_port) -> Nginx:
        """Starts nginx on a free port; ``site_for_port(port)`` is its site
        config. Another process may take the port between our probe and
        nginx's bind, so a failed start is retried on a new port."""
        for attempt in range(3):
            run = self.tmp / f"nginx{attempt}"
            run.mkdir()
            port = _free_port()
            nginx = Nginx(run, site_for_port(port), port)
            if nginx.wait_ready():
                self.nginx = nginx
                return nginx
            logs = nginx.logs()
            nginx.close()
            if "Address already in use" not in logs:
                raise AssertionError(f"nginx did not start:\n{logs}")
        raise AssertionError(f"nginx found no free port in 3 tries:\n{logs}")

    def get(self, path: str, headers: Optional[Dict[str, str]] = None) -> Reply:
        assert self.nginx is not None
        return request(self.nginx.port, "GET", path, headers=headers)

    def diagnostics(self) -> str:
        parts = [self.nginx.logs()] if self.nginx else []
        parts += [f"--- backend {b.port} stderr\n{b.stderr()}" for b in self.backends]
        return "\n".join(parts)

    def close(self) -> None:
        if self.nginx is not None:
            self.nginx.close()
        for backend in self.backends:
            backend.close()


@pytest.fixture
def stack(tmp_path):
    built = Stack(tmp_path)
    try:
        yield built
    finally:
        built.close()


def _pid(reply: Reply) -> int:
    assert reply.status == 200, reply
    return json.loads(reply.body)["pid"]


def _refuses_connections(port: int, timeout: float = 5.0) -> bool:
    """Polls until nothing listens on ``port`` any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # Queued in the backlog as the listener closed: keep polling
            # until connections are refused outright.
            pass
        time.sleep(0.02)
    return False


def test_requests_are_spread_over_the_backends(stack):
    first, second = stack.backend(), stack.backend()
    stack.start_nginx(lambda port: deploy_site([first, second], port))
    seen = {_pid(stack.get("/pid")) for _ in range(10)}
    assert seen == {first.proc.pid, second.proc.pid}, stack.diagnostics()


def test_a_killed_backend_costs_no_failed_get(stack):
    first, second = stack.backend(), stack.backend()
    stack.start_nginx(lambda port: deploy_site([first, second], port))
    # Both backends answer once, so nginx holds a kept-alive connection to each.
    assert {_pid(stack.get("/pid")) for _ in range(4)} == {first.proc.pid, second.proc.pid}

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    replies = [stack.get("/pid") for _ in range(20)]
    assert [r.status for r in replies] == [200] * 20, stack.diagnostics()
    assert {_pid(r) for r in replies} == {second.proc.pid}
    # Not luck: nginx tried the dead backend and retried on the live one.
    retried = f"upstream=127.0.0.1:{first.port}, 127.0.0.1:{second.port} "
    assert retried in (stack.nginx.tmp / "access.log").read_text(), stack.diagnostics()


def test_sigterm_finishes_the_request_in_flight_while_nginx_uses_the_other_backend(stack):
    backends = [stack.backend(), stack.backend()]
    stack.start_nginx(lambda port: deploy_site(backends, port))

    slow: Dict[str, object] = {}

    def slow_request() -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.port, timeout=15)
            conn.request("GET", "/slow")
            response = conn.getresponse()
            slow["reply"] = Reply(response.status, response.getheaders(), response.read())
            conn.close()
        except Exception as e:  # reported by the assertion below
            slow["error"] = e

    thread = threading.Thread(target=slow_request, daemon=True)
    thread.start()
    # Every backend was given a directory of its own; whichever got the
    # request writes `started` there.
    deadline = time.monotonic() + 10
    while not any((b.signals / "started").exists() for b in backends):
        assert time.monotonic() < deadline, f"/slow never reached a backend\n{stack.diagnostics()}"
        time.sleep(0.01)
    busy = next(b for b in backends if (b.signals / "started").exists())
    assert int((busy.signals / "started").read_text()) == busy.proc.pid
    (other,) = [b for b in backends if b is not busy]

    busy.proc.send_signal(signal.SIGTERM)
    # Draining: it takes no new connection...
    assert _refuses_connections(busy.port), f"backend still accepts after SIGTERM\n{stack.diagnostics()}"
    # ...and nginx sends new requests to the other one meanwhile.
    assert {_pid(stack.get("/pid")) for _ in range(5)} == {other.proc.pid}, stack.diagnostics()
    assert thread.is_alive(), "the slow request should still be in flight"

    (busy.signals / "release").touch()
    thread.join(timeout=15)
    assert not thread.is_alive() and "error" not in slow, slow
    reply = slow["reply"]
    assert reply.status == 200, f"{reply}\n{stack.diagnostics()}"
    assert json.loads(reply.body) == {"pid": busy.proc.pid, "slow": "done"}
    stdout, _ = busy.proc.communicate(timeout=10)
    assert busy.proc.returncode == 0, busy.stderr()
    assert b"sufast stopped" in stdout
    assert other.proc.poll() is None


def test_forwarded_client_is_believed_only_from_a_trusted_proxy(stack):
    trusted = stack.backend(forwarded_allow_ips=["127.0.0.1"])
    untrusted = stack.backend(forwarded_allow_ips=[])
    stack.start_nginx(
        lambda port: FORWARDED_SITE.format(port=port, trusted=trusted.port, untrusted=untrusted.port)
    )
    # nginx forwards "203.0.113.7, 127.0.0.1": what the client claimed, then
    # the address nginx saw. The trusting backend skips its trusted
    # addresses from the right and finds the claimed client.
    claim = {"X-Forwarded-For": "203.0.113.7"}

    seen = json.loads(stack.get("/trusted/client", headers=claim).body)
    assert seen["host"] == "203.0.113.7", f"{seen}\n{stack.diagnostics()}"
    assert seen["url"] == f"https://127.0.0.1:{stack.nginx.port}/client"

    seen = json.loads(stack.get("/untrusted/client", headers=claim).body)
    assert seen["host"] == "127.0.0.1", f"{seen}\n{stack.diagnostics()}"
    assert seen["url"] == f"http://127.0.0.1:{stack.nginx.port}/client"

