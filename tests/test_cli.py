"""The ``sufast`` command line in real processes: ``python -m sufast run``
with each flag, ``sufast routes``, the errors and their exit codes, and
``--reload`` restarting the app on an edit while keeping its port."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

import pytest
from conftest import ROOT, pids_answering, request

from sufast import __version__

APP = """
import os
from sufast import App, Request

app = App(threads=2)

@app.get("/")
def hello():
    return {"message": "hello"}

@app.get("/pid/{n:int}")
def pid(n: int):
    return {"pid": os.getpid()}

@app.get("/client")
def client(request: Request):
    return {"client": request.client.host, "url": request.url}

@app.get("/broken")
def broken():
    raise RuntimeError("boom")

class Container:
    app = app

container = Container()

def create_app():
    return app

number = 42
"""

BANNER = r"sufast \S+ serving on http://([0-9.]+):(\d+) \(([^;]*); Ctrl-C to stop\)\n(?:  .*\n)*?  GET\s+/broken\s+.*\n"

#: Every wait on a child is bounded by this many seconds.
TIMEOUT = 15.0


class Output:
    """A child's stdout, read as it comes: each ``expect`` looks past the
    previous match, so lines read early are not lost."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._fd = proc.stdout.fileno()
        self.text = ""
        self._pos = 0

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> "re.Match[str]":
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while True:
                match = compiled.search(self.text, self._pos)
                if match:
                    self._pos = match.end()
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise AssertionError(f"no {pattern!r} in time; stdout so far: {self.text!r}")
                chunk = os.read(self._fd, 65536).decode()
                if not chunk:
                    raise AssertionError(f"stdout ended before {pattern!r}; stdout: {self.text!r}")
                self.text += chunk

    def rest(self, timeout: float = TIMEOUT) -> str:
        """Everything after the last match, up to the end of the stream."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise AssertionError(f"stdout did not end in time; so far: {self.text!r}")
                chunk = os.read(self._fd, 65536).decode()
                if not chunk:
                    return self.text[self._pos :]
                self.text += chunk


class Served(NamedTuple):
    proc: subprocess.Popen
    port: int
    banner: Optional["re.Match[str]"]
    stderr: Path
    stdout: Output


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
    env.pop("FORWARDED_ALLOW_IPS", None)
    env.update(extra or {})
    return env


def sufast(cwd: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Runs ``python -m sufast ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "sufast", *args], cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=TIMEOUT
    )


@contextmanager
def serving(cwd: Path, *args: str, banner: Optional[str] = BANNER, env: Optional[Dict[str, str]] = None, **popen) -> Iterator[Served]:
    """Runs ``python -m sufast run ARGS`` until ``banner`` (its port is
    group 2; ``None``: do not wait); kills it (and its children) afterwards
    if the test did not stop it."""
    stderr_path = cwd / "stderr.txt"
    # stderr goes to a file: access logs could fill a pipe.
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sufast", "run", *args],
            cwd=cwd,
            env=_env(env),
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            **popen,
        )
    try:
        stdout = Output(proc)
        match = None
        if banner is not None:
            try:
                match = stdout.expect(banner)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nstderr: {stderr_path.read_text()}") from None
        yield Served(proc, int(match.group(2)) if match else 0, match, stderr_path, stdout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
        proc.stdout.close()


def stop(served: Served, signum: int = signal.SIGTERM) -> str:
    """Sends ``signum`` and returns the stdout not yet expected, once the
    process exited with 0."""
    served.proc.send_signal(signum)
    rest = served.stdout.rest()
    served.proc.wait(timeout=TIMEOUT)
    assert served.proc.returncode == 0, served.stderr.read_text()
    return rest


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)  # a polling interval, not synchronisation


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory holding main.py (the App above) and src/pkg/main.py (the
    same, one package down)."""
    (tmp_path / "main.py").write_text(APP)
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(APP.replace('"hello"', '"hello from pkg"'))
    return tmp_path


# Help and version -----------------------------------------------------------


def test_help_lists_every_command_flag_and_exit_code(project):
    top = sufast(project, "--help")
    assert top.returncode == 0
    assert "run" in top.stdout and "routes" in top.stdout
    run = sufast(project, "run", "--help")
    assert run.returncode == 0
    for flag in (
        "--host", "--port", "--fd", "--workers", "--production", "--reload", "--reload-dir",
        "--access-log, --no-access-log", "--access-log-format {common,json}",
        "--log-level {critical,error,warning,info,debug,trace}", "--app-dir", "--factory",
        "--proxy-headers, --no-proxy-headers", "--forwarded-allow-ips", "--version",
    ):  # fmt: skip
        assert flag in run.stdout, flag
    assert "--reload-pipe" not in run.stdout, "the supervisor's own flag stays hidden"
    routes = sufast(project, "routes", "--help")
    assert routes.returncode == 0 and "--app-dir" in routes.stdout and "--factory" in routes.stdout
    for text in (top.stdout, run.stdout, routes.stdout):
        assert re.search(r"exit codes:\n  0 .*\n  1 .*\n(?: .*\n)*  2 .*\n  3 ", text), text


def test_version(project):
    for args in (["--version"], ["run", "--version"]):
        done = sufast(project, *args)
        assert done.returncode == 0
        assert done.stdout.startswith(f"sufast {__version__} with "), done.stdout


def test_no_command_prints_usage_and_exits_2(project):
    done = sufast(project)
    assert done.returncode == 2
    assert "usage: sufast" in done.stderr


# sufast routes --------------------------------------------------------------


@pytest.mark.parametrize(
    "args, hello",
    [
        (["main:app"], "hello"),
        (["main:container.app"], "hello"),
        (["main:create_app", "--factory"], "hello"),
        (["pkg.main:app", "--app-dir", "src"], "hello from pkg"),
    ],
)
def test_routes_prints_each_route_with_its_tier(project, args, hello):
    done = sufast(project, "routes", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["GET", "/", "static"],
        ["GET", "/pid/{n:int}", "dynamic"],
        ["GET", "/client", "dynamic"],
        ["GET", "/broken", "static"],
    ]
    assert lines[3].endswith("static (500: handler raised)")


# Errors ---------------------------------------------------------------------

ERRORS = [
    # (command line, exit code, what stderr says)
    (["main"], 2, r"'main' is not MODULE:ATTR; name the module and the App in it, for example main:app"),
    (["main:"], 2, r"'main:' is not MODULE:ATTR"),
    (["nosuch:app"], 1, r"sufast: error: could not import module 'nosuch': no module named 'nosuch'"),
    (["pkg.nosuch:app", "--app-dir", "src"], 1, r"could not import module 'pkg.nosuch': no module named 'pkg.nosuch'"),
    (["nopkg.main:app"], 1, r"could not import module 'nopkg.main': no module named 'nopkg'"),
    (["main:nope"], 1, r"sufast: error: attribute 'nope' not found in module 'main'"),
    (["main:container.nope"], 1, r"sufast: error: attribute 'nope' not found in main:container"),
    (["main:number"], 1, r"sufast: error: main:number is an int, not a sufast.App\n"),
    (["main:create_app"], 1, r"main:create_app is a function, not a sufast.App; if it is a function that returns an App, add --factory"),
    (["main:number", "--factory"], 1, r"main:number is not callable \(it is an int\); --factory needs a function that returns an App"),
    (["main:Container", "--factory"], 1, r"the factory main:Container returned a Container, not a sufast.App"),
    (["main:app", "--app-dir", "nodir"], 2, r"argument --app-dir: no directory 'nodir'"),
    (["main:app", "--no-such-flag"], 2, r"unrecognized arguments: --no-such-flag"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["routes", "run"])
@pytest.mark.parametrize("args, code, message", ERRORS, ids=[" ".join(e[0]) for e in ERRORS])
def test_a_mistake_in_the_command_line_is_one_clear_line(project, command, args, code, message):
    if command == "run":
        args = args + ["--port", "0"]
    done = sufast(project, command, *args)
    assert done.returncode == code, done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--port", "65536"], r"argument --port: port must be from 0 to 65535, got 65536"),
        (["--port", "eighty"], r"argument --port: port must be an integer, got 'eighty'"),
        (["--workers", "0"], r"argument --workers: must be at least 1, got 0"),
        (["--log-level", "loud"], r"argument --log-level: invalid choice: 'loud'"),
        (["--access-log-format", "xml"], r"argument --access-log-format: invalid choice: 'xml'"),
        (["--forwarded-allow-ips", "10.0.0.1,proxy"], r"argument --forwarded-allow-ips: 'proxy' is not an IP address"),
    ],
)
def test_a_bad_flag_value_is_a_usage_error(project, flags, message):
    done = sufast(project, "run", "main:app", *flags)
    assert done.returncode == 2
    assert re.search(message, done.stderr), done.stderr


@pytest.mark.parametrize(
    "source, error",
    [
        ("import not_installed_anywhere\n", "ModuleNotFoundError: No module named 'not_installed_anywhere'"),
        ("from os import no_such_name\n", "ImportError: cannot import name 'no_such_name'"),
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('at import')\n", "RuntimeError: at import"),
    ],
)
def test_an_error_inside_the_module_shows_its_traceback(project, source, error):
    (project / "bad.py").write_text(source)
    done = sufast(project, "run", "bad:app", "--port", "0")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and error in done.stderr, done.stderr
    assert 'File "' in done.stderr and "bad.py" in done.stderr
    assert "sufast: error: could not load bad:app: importing it raised the error above" in done.stderr


def test_a_busy_port_says_to_choose_another(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--reload"], ["--workers", "2"]):
            done = sufast(project, "run", "main:app", "--port", str(port), *extra)
            assert done.returncode == 3, done.stderr
            assert re.search(f"sufast: error: cannot listen on 127.0.0.1:{port}: .*Address already in use", done.stderr)
            assert "choose another port with --port, or --port 0 for any free one" in done.stderr
            assert "Traceback" not in done.stderr


@pytest.mark.parametrize("extra", [[], ["--reload"]])
def test_an_fd_that_is_no_socket_cannot_be_served(project, extra):
    done = sufast(project, "run", "main:app", "--fd", "57", *extra)  # closed in the child
    assert done.returncode == 3, done.stderr
    assert re.search(r"sufast: error: .*fd 57 is not .*Bad file descriptor", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


# sufast run -----------------------------------------------------------------


def test_run_serves_until_sigterm_and_logs_requests(project):
    with serving(project, "main:app", "--host", "127.0.0.1", "--port", "0") as served:
        host, _, mode = served.banner.groups()
        assert (host, mode) == ("127.0.0.1", "development")
        assert re.search(r"GET\s+/pid/\{n:int\}\s+dynamic\n", served.banner.string)
        assert request(served.port, "GET", "/").body == b'{"message":"hello"}'
        broken = request(served.port, "GET", "/broken")
        # The exception is in the warning at registration, never on the wire.
        assert (broken.status, broken.body) == (500, b'{"detail":"Internal Server Error"}')
        assert "sufast stopped" in stop(served)
        stderr = served.stderr.read_text()
    assert '"GET / HTTP/1.1" 200 19' in stderr, "development logs each request"
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "args",
    [
        ["pkg.main:container.app", "--app-dir", "src"],
        ["pkg.main:create_app", "--factory", "--app-dir", "{project}/src"],
    ],
)
def test_run_finds_the_app_by_app_dir_factory_and_dotted_names(project, args):
    args = [arg.format(project=project) for arg in args]
    with serving(project, *args, "--port", "0") as served:
        assert request(served.port, "GET", "/").body == b'{"message":"hello from pkg"}'
        stop(served)


def test_production_logs_no_requests(project):
    with serving(project, "main:app", "--production", "--host", "127.0.0.1", "--port", "0") as served:
        assert served.banner.group(3) == "production"
        broken = request(served.port, "GET", "/broken")
        assert broken.status == 500 and b"boom" not in broken.body
        assert request(served.port, "GET", "/").status == 200
        stop(served)
    assert "HTTP/1.1" not in served.stderr.read_text()


def test_production_binds_every_address_by_default(project):
    with serving(project, "main:app", "--production", "--port", "0") as served:
        assert served.banner.group(1) == "0.0.0.0"
        assert request(served.port, "GET", "/").status == 200
        stop(served)


def _access_lines(served: Served) -> List[str]:
    return [line for line in served.stderr.read_text().splitlines() if "/pid/1" in line]


@pytest.mark.parametrize(
    "flags, logged",
    [
        (["--no-access-log"], None),
        (["--production", "--access-log"], "common"),
        (["--access-log-format", "json"], "json"),
    ],
)
def test_access_log_flags(project, flags, logged):
    with serving(project, "main:app", "--host", "127.0.0.1", "--port", "0", *flags) as served:
        assert request(served.port, "GET", "/pid/1").status == 200
        stop(served)  # the log is complete once the server stopped
    lines = _access_lines(served)
    if logged is None:
        assert lines == []
    elif logged == "common":
        assert len(lines) == 1 and re.search(r'"GET /pid/1 HTTP/1.1" 200 \d+', lines[0]), lines
    else:
        assert len(lines) == 1, lines
        entry = json.loads(lines[0])
        assert entry["status"] == 200 and "/pid/1" in json.dumps(entry), entry


def test_log_level_debug_shows_the_server_s_own_messages(project):
    with serving(project, "main:app", "--port", "0", "--log-level", "debug") as served:
        assert request(served.port, "GET", "/").status == 200
        stop(served)
    assert f"sufast: debug: server listening on 127.0.0.1:{served.port}" in served.stderr.read_text()


def test_log_level_critical_prints_nothing_but_serves(project):
    # No banner to read the port from: serve a socket bound here.
    with _listening() as listener:
        fd = listener.fileno()
        args = ["main:app", "--fd", str(fd), "--log-level", "critical", "--no-access-log"]
        with serving(project, *args, banner=None, pass_fds=(fd,)) as served:
            assert request(listener.getsockname()[1], "GET", "/").status == 200
            assert stop(served) == ""
    assert "sufast: " not in served.stderr.read_text()


@pytest.mark.parametrize(
    "flags, env, trusted",
    [
        ([], {}, True),  # uvicorn's default: trust 127.0.0.1
        (["--proxy-headers"], {}, True),
        (["--no-proxy-headers"], {}, False),
        (["--forwarded-allow-ips", "10.0.0.1"], {}, False),
        (["--forwarded-allow-ips", "10.0.0.0/8, 127.0.0.0/8"], {}, True),
        ([], {"FORWARDED_ALLOW_IPS": "10.0.0.1"}, False),
        ([], {"FORWARDED_ALLOW_IPS": "*"}, True),
    ],
)
def test_proxy_headers_are_honoured_from_trusted_addresses(project, flags, env, trusted):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with serving(project, "main:app", "--port", "0", "--no-access-log", *flags, env=env) as served:
        reply = request(served.port, "GET", "/client", headers=forwarded)
        stop(served)
    seen = json.loads(reply.body)
    if trusted:
        assert seen["client"] == "203.0.113.7"
        assert seen["url"].startswith("https://"), seen
    else:
        assert seen["client"] == "127.0.0.1"
        assert seen["url"].startswith("http://"), seen


@contextmanager
def _listening() -> Iterator[socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener


def test_fd_serves_an_inherited_listening_socket(project):
    with _listening() as listener:
        port = listener.getsockname()[1]
        fd = listener.fileno()
        with serving(project, "main:app", "--fd", str(fd), "--no-access-log", pass_fds=(fd,)) as served:
            assert served.port == port
            assert request(port, "GET", "/").body == b'{"message":"hello"}'
            stop(served)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need os.fork")
def test_workers_serve_from_several_processes(project):
    with serving(project, "main:app", "--port", "0", "--workers", "2", "--no-access-log") as served:
        assert served.banner.group(3) == "development, 2 workers"
        pids = pids_answering(served.port, lambda seen: len(seen) >= 2, path=lambda n: f"/pid/{n}")
        assert served.proc.pid not in pids
        assert "sufast stopped" in stop(served)


# --reload -------------------------------------------------------------------

RELOAD_BANNER = r"sufast: reloader \(pid \d+\) listening on http://([0-9.]+):(\d+)\n"


def _poll_until_body(port: int, wanted: bytes, timeout: float = TIMEOUT) -> None:
    """GETs / until it answers ``wanted``. Every request must be answered:
    during a restart clients wait in the backlog, they are not refused."""
    deadline = time.monotonic() + timeout
    while True:
        reply = request(port, "GET", "/")
        assert reply.status == 200, reply
        if reply.body == wanted:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/ still answers {reply.body!r} after {timeout} s")
        time.sleep(0.02)  # a polling interval, not synchronisation


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_reload_restarts_on_an_edit_and_survives_a_syntax_error(project):
    with serving(project, "main:app", "--reload", "--port", "0", "--no-access-log", banner=RELOAD_BANNER) as served:
        port = served.port
        first = served.stdout.expect(BANNER)
        assert int(first.group(2)) == port
        assert f"sufast: watching for changes in {project} (" in first.string
        assert request(port, "GET", "/").body == b'{"message":"hello"}'

        _edit(project / "main.py", '"hello"', '"hello again"')
        restarted = served.stdout.expect(r"change in main\.py; restarting\n(?:.*\n)*?" + BANNER)
        assert int(restarted.group(2)) == port, "the port stays the same"
        _poll_until_body(port, b'{"message":"hello again"}')

        _edit(project / "main.py", "def hello():", "def hello(:")
        served.stdout.expect(r"the app exited with code 1; waiting for changes to restart it\n")
        assert "SyntaxError" in served.stderr.read_text()
        assert served.proc.poll() is None, "the supervisor keeps running"

        fixed = (project / "main.py").read_text().replace("def hello(:", "def hello():")
        (project / "main.py").write_text(fixed.replace('"hello again"', '"hello, fixed"'))
        served.stdout.expect(BANNER)
        _poll_until_body(port, b'{"message":"hello, fixed"}')

        rest = stop(served)
        assert rest.endswith("sufast stopped\n"), rest
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_reload_watches_reload_dirs_and_ignores_workers(project):
    with serving(
        project, "pkg.main:app", "--app-dir", "src", "--reload", "--reload-dir", "src", "--workers", "2",
        "--port", "0", "--no-access-log", banner=RELOAD_BANNER,
    ) as served:  # fmt: skip
        served.stdout.expect(BANNER)
        assert "--reload serves from one process; ignoring --workers 2" in served.stderr.read_text()
        _edit(project / "src" / "pkg" / "main.py", '"hello from pkg"', '"hello from the edited pkg"')
        _poll_until_body(served.port, b'{"message":"hello from the edited pkg"}')
        assert "sufast stopped" in stop(served, signal.SIGINT)


def test_reload_stops_cleanly_while_the_app_is_broken(project):
    (project / "main.py").write_text("def broken(:\n")
    with serving(project, "main:app", "--reload", "--port", "0", banner=RELOAD_BANNER) as served:
        served.stdout.expect(r"the app exited with code 1; waiting for changes to restart it\n")
        assert stop(served).endswith("sufast stopped\n")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the app's process through /proc")
def test_reload_child_stops_when_the_supervisor_is_killed(project):
    with serving(project, "main:app", "--reload", "--port", "0", "--no-access-log", banner=RELOAD_BANNER) as served:
        served.stdout.expect(BANNER)
        child = json.loads(request(served.port, "GET", "/pid/1").body)["pid"]
        assert child != served.proc.pid
        served.proc.kill()
        served.proc.wait(timeout=TIMEOUT)
        wait_until(lambda: _gone(child), "the app stops once its supervisor is gone")
        assert "sufast stopped" in served.stdout.rest()
