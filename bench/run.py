"""The side-by-side benchmark: every server answers the same requests, on
one core each for server and load generator, in interleaved rounds, and each
figure is reported as a ratio to bare axum measured in the same round.

Run by ``make bench`` (``make bench QUICK=1`` for a short development run);
writes ``bench/results/results.md``, ``results.json`` and ``chart.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

import servers  # noqa: E402

SERVER_CORE = "0"
CLIENT_CORE = "1"
CONNECTIONS = 16
# The second count of connections the speed targets apply at: the main
# scenarios run again with it, named by at().
WIDE = 64
TICK = os.sysconf("SC_CLK_TCK")
ECHO_BODY = json.dumps(
    {"items": [{"id": i, "name": f"item-{i:04d}", "tags": ["a", "b"], "ok": True} for i in range(17)]},
    separators=(",", ":"),
)
ORIGIN = "https://example.com"
TIERS = "sufast tiers"
STRUCTURE = "one Depends, one middleware"
ITEMS = "10-field model body"
COMPRESSED = "gzip, 1 KB of JSON"
STATIC = "static file 1 KB"
WEBSOCKET_MESSAGE = 64  # bytes of text in each WebSocket message
WEBSOCKET = f"WebSocket echo {WEBSOCKET_MESSAGE} B"
# Peers measured on the model body only, and on the static file only.
ITEMS_ONLY = {"litestar-uvicorn"}
STATIC_ONLY = {"nginx"}
# The peers QUICK=1 measures beside axum and sufast in the main scenarios
# (robyn-const where it has the route: see servers.Server.endpoints).
QUICK_PEERS = ("fastapi-uvicorn", "robyn", "robyn-const")


def at(name: str, connections: int) -> str:
    """The name of scenario ``name`` run with ``connections`` connections."""
    return name if connections == CONNECTIONS else f"{name}, {connections} connections"


def serves(name: str, method: str, path: str) -> bool:
    """Whether server ``name`` has the route ``method path`` (servers.Server.endpoints)."""
    return any(
        servers.ENDPOINTS[key].method == method and servers.ENDPOINTS[key].path == path
        for key in servers.SERVERS[name].endpoints
    )


@dataclass
class Scenario:
    """One request, sent to every server that supports it."""

    name: str
    path: str
    servers: List[str]
    method: str = "GET"
    body: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)
    options: Dict[str, str] = field(default_factory=dict)
    # Scenarios that compare variants of one server, not servers: each
    # variant is (label, server name, options, path or None for `path`).
    variants: Optional[List[Tuple[str, str, Dict[str, str], Optional[str]]]] = None
    pin: bool = True
    baseline: str = "axum"
    # WebSocket messages echoed on `path` by bench/ws_echo.py instead of
    # wrk's requests: "req/s" are then messages per second, CPU per message.
    websocket: bool = False
    # Concurrent connections of the load generator.
    connections: int = CONNECTIONS


# --- processes -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server under test in a process group of its own, pinned to a core."""

    def __init__(self, label: str, definition: "servers.Server", options: Dict[str, str], pin: bool) -> None:
        self.label = label
        self.path: Optional[str] = None  # the scenario's own path unless set
        self.port = free_port()
        argv, env = definition.command(self.port, options)
        cores = SERVER_CORE if pin else f"{SERVER_CORE},{CLIENT_CORE}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            ["taskset", "-c", cores, *argv],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        # A large route table takes a while to register (10,000 routes
        # took over a minute on the shared 2-core machine).
        try:
            self.wait_ready(60.0 + int(options.get("routes", 0)) / 50)
        except RuntimeError:
            self.stop()  # a server that never answered must not run on
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url("/"), timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.05)  # polling interval, not synchronisation
        raise RuntimeError(f"{self.label} did not answer within {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-2000:]

    def pids(self) -> List[int]:
        """Every live process of the server's process group."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = read_stat(int(entry))
                if stat is not None and int(stat[2]) == self.process.pid:
                    found.append(int(entry))
        return found

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            stat = read_stat(pid)
            if stat is not None:
                total += int(stat[11]) + int(stat[12])
        return total / TICK

    def rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            if match:
                total += int(match.group(1))
        return total / 1024

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


def read_stat(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


# --- load ------------------------------------------------------------------


@dataclass
class Sample:
    requests: int
    seconds: float
    rps: float
    p50_us: float
    p99_us: float
    cpu_us: float  # server CPU per request
    server_util: float  # server CPU seconds per second
    client_util: float  # load generator CPU seconds per second
    other_util: float  # everything else on the machine
    errors: int

    def flags(self, pinned: bool) -> List[str]:
        found = []
        if self.errors:
            found.append(f"{self.errors} errors")
        if pinned and self.client_util > 0.9 and self.server_util < 0.9:
            found.append("client-bound")
        elif pinned and self.client_util > 0.95:
            # Both cores full: the server's CPU per request still holds,
            # but a faster server could not show more requests per second.
            found.append("client saturated too")
        if self.other_util > 0.15:
            found.append(f"disturbed ({self.other_util:.0%} of a core elsewhere)")
        return found


def lua_script(scenario: Scenario) -> Optional[str]:
    if scenario.body is None and scenario.method == "GET":
        return None
    lines = [f"wrk.method = {json.dumps(scenario.method)}"]
    if scenario.body is not None:
        lines.append(f"wrk.body = {json.dumps(scenario.body)}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", scenario.name)
    path = Path(tempfile.gettempdir()) / f"sufast-bench-{safe}.lua"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_latency(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    return float(match.group(1)) * UNITS[match.group(2)] if match else float("nan")


def wrk_command(server: Server, scenario: Scenario, seconds: float, pinned: bool) -> List[str]:
    # wrk takes whole seconds.
    argv = ["wrk", "-t1", f"-c{scenario.connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in scenario.headers.items():
        argv += ["-H", f"{name}: {value}"]
    script = lua_script(scenario)
    if script:
        argv += ["-s", script]
    argv.append(server.url(server.path or scenario.path))
    return ["taskset", "-c", CLIENT_CORE, *argv] if pinned else argv


def load(server: Server, scenario: Scenario, seconds: float, pinned: bool) -> Sample:
    """Runs wrk against one server and reads the server's CPU around it."""
    if scenario.websocket:
        return ws_load(server, scenario, seconds, pinned)
    argv = wrk_command(server, scenario, seconds, pinned)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, busy, start = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    wall = time.monotonic() - start
    server_cpu = server.cpu_seconds() - cpu
    machine = machine_busy_seconds() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    out = result.stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk's output:\n{out}\n{result.stderr}")
    requests = int(match.group(1))
    elapsed = float(match.group(2)) * UNITS[match.group(3)] / 1_000_000
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Sample(
        requests=requests,
        seconds=elapsed,
        rps=requests / elapsed,
        p50_us=parse_latency(out, "50"),
        p99_us=parse_latency(out, "99"),
        cpu_us=server_cpu / max(requests, 1) * 1e6,
        server_util=server_cpu / wall,
        client_util=client_cpu / wall,
        other_util=max(0.0, machine - server_cpu - client_cpu) / wall,
        errors=errors,
    )


def ws_load(server: Server, scenario: Scenario, seconds: float, pinned: bool) -> Sample:
    """Runs bench/ws_echo.py (scenario.connections, one message in
    flight on each) against one server, like wrk in load()."""
    argv = [str(ROOT / servers.PYTHON), str(HERE / "ws_echo.py"), "--port", str(server.port)]
    argv += ["--path", server.path or scenario.path, "--connections", str(scenario.connections)]
    argv += ["--size", str(WEBSOCKET_MESSAGE), "--seconds", str(seconds)]
    argv = ["taskset", "-c", CLIENT_CORE, *argv] if pinned else argv
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, busy, start = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - start
    server_cpu = server.cpu_seconds() - cpu
    machine = machine_busy_seconds() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    try:
        out = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"cannot read ws_echo.py's output (exit status {result.returncode}):\n{result.stdout}\n{result.stderr}") from None
    if not out["messages"]:
        raise RuntimeError(f"no WebSocket message echoed by {server.label}:\n{result.stderr[-2000:]}\n{server.output()}")
    # wall includes the client's start and its connecting; the measured
    # window is out["seconds"]. Utilisation over wall, as for wrk.
    return Sample(
        requests=out["messages"],
        seconds=out["seconds"],
        rps=out["rate"],
        p50_us=out["p50_us"],
        p99_us=out["p99_us"],
        cpu_us=server_cpu / max(out["messages"], 1) * 1e6,
        server_util=server_cpu / wall,
        client_util=client_cpu / wall,
        other_util=max(0.0, machine - server_cpu - client_cpu) / wall,
        errors=out["errors"],
    )


def websocket_scenario(available: List[str]) -> Optional[Scenario]:
    """The WebSocket echo on sufast, Starlette on uvicorn and Robyn,
    against sufast; None without sufast."""
    names = [name for name in ("sufast", "starlette-uvicorn", "robyn") if name in available and servers.SERVERS[name].websocket]
    if "sufast" not in names:
        return None
    return Scenario(WEBSOCKET, servers.WEBSOCKET, names, baseline="sufast", websocket=True)


# --- scenarios -------------------------------------------------------------


def items_scenario(available: List[str], quick: bool) -> Scenario:
    """servers.ITEM on every route a server has for it (sufast's with a
    dataclass and with a plain dict), against sufast's dict route."""
    names = ["sufast", "fastapi-uvicorn"] if quick else servers.ORDER
    variants = [
        (f"{name} {kind}", name, {}, path)
        for name in names
        if name in available
        for kind, path in servers.SERVERS[name].items.items()
    ]
    return Scenario(
        ITEMS,
        servers.ITEM.path,
        [],
        method=servers.ITEM.method,
        body=servers.ITEM.body.decode(),
        variants=variants,
        baseline="sufast dict",
    )


def static_scenario(available: List[str]) -> Optional[Scenario]:
    """servers.STATIC from sufast's files tier, nginx and Starlette's
    StaticFiles, against nginx; None without nginx or sufast."""
    if "nginx" not in available or "sufast" not in available:
        return None
    names = [name for name in ("sufast", "nginx", "starlette-uvicorn") if name in available]
    return Scenario(STATIC, servers.STATIC.path, names, baseline="nginx")


def scenarios(available: List[str], quick: bool) -> List[Scenario]:
    everyone = [name for name in servers.ORDER if name in available and name not in ITEMS_ONLY | STATIC_ONLY]
    ours = ["axum", "sufast"] + [name for name in ("sufast-baseline",) if name in available]
    peers = ours + [name for name in QUICK_PEERS if name in available] if quick else everyone

    def serving(path: str, method: str = "GET") -> List[str]:
        return [name for name in peers if serves(name, method, path)]

    core = [
        Scenario("precomputed", "/", serving("/")),
        Scenario("sync", "/users/123", serving("/users/123")),
        Scenario("async", "/async/users/123", serving("/async/users/123")),
        Scenario("cached", "/cached", serving("/cached")),
    ]
    # sufast's tiers side by side in the same rounds, for the targets that
    # compare them with each other.
    tiers = Scenario(
        TIERS,
        "/",
        [],
        variants=[
            ("sufast precomputed", "sufast", {}, "/"),
            ("sufast cached", "sufast", {}, "/cached"),
            ("sufast sync", "sufast", {}, "/users/123"),
            ("sufast async", "sufast", {}, "/async/users/123"),
        ],
        baseline="sufast precomputed",
    )
    found = [
        *core,
        tiers,
        # What the structuring features cost per request, against the
        # same route without them.
        Scenario(
            STRUCTURE,
            "/users/123",
            [],
            variants=[
                ("sufast sync", "sufast", {}, "/users/123"),
                ("sufast + Depends", "sufast", {}, "/deps/users/123"),
                ("sufast + middleware", "sufast", {"middleware": "1"}, "/users/123"),
                ("sufast + both", "sufast", {"middleware": "1"}, "/deps/users/123"),
                # A static route is served by Rust alone, middleware or not.
                ("sufast precomputed", "sufast", {}, "/"),
                ("sufast precomputed, middleware registered", "sufast", {"middleware": "1"}, "/"),
            ],
            baseline="sufast sync",
        ),
        # Validating a body with a model, against the same body as a dict.
        items_scenario(available, quick),
        # A client that takes gzip, compression off and on: stored routes
        # send a copy compressed once, per-request ones compress each time.
        Scenario(
            COMPRESSED,
            "/report",
            [],
            headers={"Accept-Encoding": "gzip"},
            variants=[
                ("sufast precomputed", "sufast", {"compression": "0"}, "/report"),
                ("sufast precomputed, gzip", "sufast", {"compression": "1"}, "/report"),
                ("sufast sync", "sufast", {"compression": "0"}, "/report/7"),
                ("sufast sync, gzip", "sufast", {"compression": "1"}, "/report/7"),
            ],
            baseline="sufast precomputed",
        ),
    ]
    if quick:
        return found
    # The WebSocket echo (not in QUICK=1, which it would take well past
    # two minutes: three servers, three rounds).
    websocket = websocket_scenario(available)
    if websocket:
        found.append(websocket)
    echo = Scenario("echo 1 KB", "/echo", serving("/echo", "POST"), method="POST", body=ECHO_BODY)
    found += [
        echo,
        # The speed targets hold at 16 and at WIDE connections: the main
        # scenarios, and the tiers for the targets between them, again.
        *(
            dataclasses.replace(scenario, name=at(scenario.name, WIDE), connections=WIDE)
            for scenario in (*core, echo, tiers)
        ),
        Scenario("precomputed + CORS", "/", ["axum", "sufast"], headers={"Origin": ORIGIN}, options={"cors": "1"}),
        *(
            Scenario(
                f"10 vs 10,000 routes, {path}",
                path,
                [],
                variants=[
                    ("sufast 10", "sufast", {"routes": "10"}, None),
                    ("sufast 10000", "sufast", {"routes": "10000"}, None),
                ],
                baseline="sufast 10",
            )
            for path in ("/", "/users/123")
        ),
        Scenario(
            "workers 1 vs 2, /users/123 (both cores)",
            "/users/123",
            [],
            variants=[
                ("sufast workers=1", "sufast", {"workers": "1"}, None),
                ("sufast workers=2", "sufast", {"workers": "2"}, None),
            ],
            baseline="sufast workers=1",
            pin=False,
        ),
    ]
    # The same 1 KiB file from the files tier and from nginx (not in
    # QUICK=1, which it would take past two minutes).
    static = static_scenario(available)
    if static:
        found.append(static)
    return found


def warm_up(running: List[Server], scenario: Scenario, seconds: float, together: bool) -> None:
    """Loads each server for ``seconds`` before the rounds: one after
    another, or with ``together`` all at once (one wrk each, on the
    client's core), which is shorter and warms each a little less."""
    if not together or scenario.websocket:
        for server in running:
            load(server, scenario, seconds, scenario.pin)
        return
    clients = [
        subprocess.Popen(wrk_command(server, scenario, seconds, scenario.pin), stdout=subprocess.DEVNULL)
        for server in running
    ]
    for client in clients:
        if client.wait():
            raise RuntimeError(f"wrk exited with status {client.returncode} in the warm-up of {scenario.name}")


def run_scenario(
    scenario: Scenario, rounds: int, seconds: float, warmup: float, warm_together: bool = False
) -> Dict[str, List[Sample]]:
    variants = scenario.variants or [(name, name, scenario.options, None) for name in scenario.servers]
    running: List[Server] = []
    try:
        for label, name, options, path in variants:
            running.append(Server(label, servers.SERVERS[name], options, scenario.pin))
            running[-1].path = path
        warm_up(running, scenario, warmup, warm_together)
        samples: Dict[str, List[Sample]] = {server.label: [] for server in running}
        for round_number in range(rounds):
            for server in running:
                sample = load(server, scenario, seconds, scenario.pin)
                samples[server.label].append(sample)
                flags = ", ".join(sample.flags(scenario.pin))
                print(
                    f"  round {round_number + 1} {server.label:<18} {sample.rps:>9.0f} req/s "
                    f"p50 {sample.p50_us:>7.0f} us p99 {sample.p99_us:>7.0f} us "
                    f"cpu {sample.cpu_us:>6.2f} us/req {flags}",
                    flush=True,
                )
        return samples
    finally:
        for server in running:
            server.stop()


def memory(requests_total: int, first: int, seconds: float) -> Dict[str, float]:
    """RSS of the sufast app: idle, then after `first` and `requests_total`
    requests to a per-request route."""
    server = Server("sufast", servers.SERVERS["sufast"], {}, True)
    scenario = Scenario("memory", "/users/123", [])
    try:
        result = {"idle_mib": server.rss_mib()}
        done = 0
        for target, key in ((first, "after_first_mib"), (requests_total, "after_all_mib")):
            while done < target:
                done += load(server, scenario, seconds, True).requests
            result[key] = server.rss_mib()
            result[key.replace("_mib", "_requests")] = done
        return result
    finally:
        server.stop()


# --- report ----------------------------------------------------------------


def ratio_summary(samples: Dict[str, List[Sample]], baseline: str, metric: str) -> Dict[str, Tuple[float, float, float]]:
    """Per server: the median, lowest and highest of per-round ratios to the
    baseline server of the same round."""
    summary = {}
    base = samples[baseline]
    for label, runs in samples.items():
        ratios = [getattr(run, metric) / getattr(ref, metric) for run, ref in zip(runs, base)]
        summary[label] = (statistics.median(ratios), min(ratios), max(ratios))
    return summary


def summarize_flags(runs: List[Sample], pinned: bool) -> List[str]:
    """One entry per kind of flag, with how many rounds raised it."""
    found = []
    errors = sum(run.errors for run in runs)
    if errors:
        found.append(f"{errors} errors")
    for flag in ("client-bound", "client saturated too"):
        count = sum(1 for run in runs if flag in run.flags(pinned))
        if count:
            found.append(f"{flag} in {count}/{len(runs)} rounds")
    disturbed = [run.other_util for run in runs if run.other_util > 0.15]
    if disturbed:
        found.append(f"disturbed in {len(disturbed)}/{len(runs)} rounds (up to {max(disturbed):.0%} of a core elsewhere)")
    return found


def fmt_ratio(value: Tuple[float, float, float]) -> str:
    median, low, high = value
    return f"{median:.2f}× ({low:.2f}–{high:.2f})"


def versions() -> Dict[str, str]:
    found = {"python": platform.python_version()}
    for tool, argv in {
        "rustc": ["rustc", "--version"],
        "wrk": ["wrk", "-v"],
    }.items():
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout or ""
            found[tool] = out.strip().splitlines()[0] if out.strip() else "?"
        except OSError:
            found[tool] = "not found"
    try:
        from importlib.metadata import version
    except ImportError:  # pragma: no cover
        version = None
    for package in ("fastapi", "pydantic", "starlette", "uvicorn", "robyn", "granian", "litestar", "msgspec"):
        try:
            found[package] = version(package) if version else "?"
        except Exception:
            found[package] = "not installed"
    lock = (ROOT / "rust-core" / "Cargo.lock").read_text()
    for crate in ("axum", "hyper", "tokio"):
        match = re.search(rf'name = "{crate}"\nversion = "([^"]+)"', lock)
        found[crate] = match.group(1) if match else "?"
    sys.path.insert(0, str(ROOT / "python"))
    from sufast import __version__

    found["sufast"] = __version__
    return found


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


TARGETS = [
    # (scenario, server, metric, limit, text); ratios against the scenario's baseline.
    ("precomputed", "sufast", "cpu_us", 1.05, "precomputed: CPU/request ≤ 1.05× axum"),
    ("precomputed", "sufast", "rps", -0.95, "precomputed: req/s ≥ 0.95× axum"),
    ("precomputed + CORS", "sufast", "cpu_us", 1.05, "precomputed with CORS + global header: CPU/request ≤ 1.05× axum"),
    (STATIC, "sufast", "rps", -0.8, "static file 1 KB (files tier): req/s ≥ 0.8× nginx"),
    ("10 vs 10,000 routes, /", "sufast 10000", "cpu_us", 1.1, "10,000 routes: CPU/request ≤ 1.1× 10 routes (/)"),
    (
        "10 vs 10,000 routes, /users/123",
        "sufast 10000",
        "cpu_us",
        1.1,
        "10,000 routes: CPU/request ≤ 1.1× 10 routes (/users/123)",
    ),
    # The speed targets, at 16 and at WIDE connections (at() names the
    # scenario of each): stored responses at bare axum's CPU/request or
    # below, per-request routes within these multiples of it.
    *(
        (at(scenario, connections), "sufast", "cpu_us", float(limit), f"{at(text, connections)}: CPU/request ≤ {limit}× axum")
        for connections in (CONNECTIONS, WIDE)
        for scenario, text, limit in (
            ("precomputed", "precomputed", "1.00"),
            ("cached", "cached", "1.00"),
            ("sync", "per-request sync", "1.7"),
            ("echo 1 KB", "echo 1 KB", "1.15"),
        )
    ),
]


def connection_counts(names: List[str], connections: Dict[str, int]) -> str:
    """The connection counts scenarios ``names`` used, for the method line:
    "16 connections", or "16 connections; 64 in ..." when some used another."""
    by_count: Dict[int, List[str]] = {}
    for name in names:
        by_count.setdefault(connections.get(name, CONNECTIONS), []).append(name)
    if not by_count:
        return f"{CONNECTIONS} connections"
    main = max(by_count, key=lambda count: (len(by_count[count]), count == CONNECTIONS))
    text = f"{main} connections"
    for count, found in sorted(by_count.items()):
        if count == main:
            continue
        if all(name == at(name[: -len(at("", count))], count) for name in found):
            text += f'; {count} in the {len(found)} scenarios named "…{at("", count)}"'
        else:
            text += f"; {count} in " + ", ".join(f'"{name}"' for name in found)
    return text


def report(
    results: Dict[str, Dict[str, List[Sample]]],
    baselines: Dict[str, str],
    pinned: Dict[str, bool],
    mem,
    meta,
    connections: Optional[Dict[str, int]] = None,
) -> Tuple[str, list]:
    """The markdown report and the targets' checks; ``connections`` per
    scenario (CONNECTIONS where absent, as in results.json files that
    predate it)."""
    connections = connections or {}
    wrk_connections = connection_counts([name for name in results if name != WEBSOCKET], connections)
    lines = [
        "# sufast benchmark",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- command: `{meta['command']}`",
        f"- method: server pinned to core {SERVER_CORE}, wrk (1 thread, {wrk_connections}) to core {CLIENT_CORE};"
        f" {meta['rounds']} interleaved rounds of {meta['seconds']} s after a {meta['warmup']} s warm-up;"
        " ratios are the median of per-round ratios to the baseline of the same round (range in brackets);"
        " CPU is the server's whole process group, from /proc."
        + (
            f" {WEBSOCKET}: bench/ws_echo.py in wrk's place ({connection_counts([WEBSOCKET], connections)},"
            " one message in flight on each);"
            " req/s are messages/s, CPU µs/req is per message."
            if WEBSOCKET in results
            else ""
        ),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        *(f"- not measured, it could not run: {name} ({why})" for name, why in (meta.get("skipped") or {}).items()),
        "",
        "| scenario | server | req/s | p50 µs | p99 µs | CPU µs/req | CPU vs baseline | req/s vs baseline | flags |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    checks = []
    for name, samples in results.items():
        baseline = baselines[name]
        cpu = ratio_summary(samples, baseline, "cpu_us")
        rps = ratio_summary(samples, baseline, "rps")
        for label, runs in samples.items():
            flags = summarize_flags(runs, pinned[name])
            lines.append(
                f"| {name} | {label} | {statistics.median(r.rps for r in runs):,.0f} | "
                f"{statistics.median(r.p50_us for r in runs):,.0f} | {statistics.median(r.p99_us for r in runs):,.0f} | "
                f"{statistics.median(r.cpu_us for r in runs):.2f} | "
                f"{'baseline' if label == baseline else fmt_ratio(cpu[label])} | "
                f"{'baseline' if label == baseline else fmt_ratio(rps[label])} | {'; '.join(flags)} |"
            )
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    targets = list(TARGETS)
    for scenario, server, metric, limit, text in targets:
        samples = results.get(scenario)
        if not samples or server not in samples:
            continue
        value = ratio_summary(samples, baselines[scenario], metric)[server]
        met = value[0] <= limit if limit > 0 else value[0] >= -limit
        checks.append({"target": text, "median": value[0], "low": value[1], "high": value[2], "met": met})
        lines.append(f"| {text} | {fmt_ratio(value)} | {'yes' if met else 'no'} |")
    def cpu_ratio_target(
        samples: Dict[str, List[Sample]], label: str, base: str, limit: float, text: str, metric: str = "cpu_us"
    ) -> None:
        """A target that ``label``'s CPU per request (or ``metric``) is at
        most ``limit`` times ``base``'s, or at least ``-limit`` times for a
        negative ``limit``, from the per-round ratios of one scenario."""
        if label in samples and base in samples:
            ratios = [getattr(a, metric) / getattr(b, metric) for a, b in zip(samples[label], samples[base])]
            value = (statistics.median(ratios), min(ratios), max(ratios))
            met = value[0] <= limit if limit > 0 else value[0] >= -limit
            checks.append({"target": text, "median": value[0], "low": value[1], "high": value[2], "met": met})
            lines.append(f"| {text} | {fmt_ratio(value)} | {'yes' if met else 'no'} |")

    for count in (CONNECTIONS, WIDE):
        # Stored responses at most Robyn const's CPU/request, in the same rounds.
        for scenario in ("precomputed", "cached"):
            cpu_ratio_target(
                results.get(at(scenario, count), {}),
                "sufast",
                "robyn-const",
                1.0,
                f"{at(scenario, count)}: CPU/request ≤ Robyn const's",
            )
        tiers = results.get(at(TIERS, count), {})
        for label, base, metric, limit, text in (
            ("sufast cached", "sufast precomputed", "cpu_us", 1.1, "cached: CPU/request ≤ 1.1× precomputed"),
            ("sufast async", "sufast sync", "rps", -0.9, "async: req/s ≥ 0.9× sync"),
        ):
            name, rest = text.split(": ", 1)
            cpu_ratio_target(tiers, label, base, limit, f"{at(name, count)}: {rest}", metric)
    items = results.get(ITEMS, {})
    for label, base, limit, text in (
        ("sufast dataclass", "fastapi-uvicorn pydantic", 0.5, "10-field body as a model: CPU/request ≤ 0.5× FastAPI's (pydantic)"),
        ("sufast dataclass", "sufast dict", 1.5, "10-field body as a model: CPU/request ≤ 1.5× the same body as a dict"),
    ):
        cpu_ratio_target(items, label, base, limit, text)
    structure = results.get(STRUCTURE, {})
    for label, limit, text in (
        ("sufast + Depends", 0.7, "one Depends: ≤ 0.7 µs CPU/request more than without"),
        ("sufast + middleware", 1.5, "one async middleware: ≤ 1.5 µs CPU/request more than without"),
    ):
        if label in structure and "sufast sync" in structure:
            extra = [a.cpu_us - b.cpu_us for a, b in zip(structure[label], structure["sufast sync"])]
            value = (statistics.median(extra), min(extra), max(extra))
            met = value[0] <= limit
            checks.append({"target": text, "median": value[0], "low": value[1], "high": value[2], "met": met})
            lines.append(f"| {text} | {value[0]:+.2f} µs [{value[1]:+.2f}, {value[2]:+.2f}] | {'yes' if met else 'no'} |")
    cpu_ratio_target(
        results.get(COMPRESSED, {}),
        "sufast precomputed, gzip",
        "sufast precomputed",
        1.05,
        "compressed stored route: CPU/request ≤ 1.05× uncompressed",
    )
    cpu_ratio_target(
        structure,
        "sufast precomputed, middleware registered",
        "sufast precomputed",
        1.05,
        "static route with middleware registered: CPU/request ≤ 1.05× without",
    )
    websocket = results.get(WEBSOCKET, {})
    for peer in ("starlette-uvicorn", "robyn"):
        cpu_ratio_target(websocket, "sufast", peer, -1.0, f"WebSocket echo: messages/s ≥ {peer}'s", metric="rps")
    if mem:
        growth = mem["after_all_mib"] / mem["after_first_mib"]
        lines.append(
            f"| RSS after {mem['after_all_requests']:,} requests ≤ 1.10× after {mem['after_first_requests']:,} |"
            f" {growth:.3f}× ({mem['after_first_mib']:.1f} → {mem['after_all_mib']:.1f} MiB) | {'yes' if growth <= 1.1 else 'no'} |"
        )
        lines.append(f"| idle hello-world app ≤ 30 MB RSS | {mem['idle_mib']:.1f} MiB | {'yes' if mem['idle_mib'] * 1.048576 <= 30 else 'no'} |")
        checks.append({"target": "rss growth", "median": growth, "met": growth <= 1.1})
        checks.append({"target": "idle rss MiB", "median": mem["idle_mib"], "met": mem["idle_mib"] * 1.048576 <= 30})
    lines.append("")
    return "\n".join(lines), checks


# Bar colours by server, the same in every panel; a variant ("sufast
# cached", "robyn dict") takes its server's colour. Related servers in
# pairs of shades.
COLOURS = {
    "axum": "#1f77b4",
    "sufast": "#ff7f0e",
    "sufast-baseline": "#ffbb78",
    "fastapi-uvicorn": "#2ca02c",
    "fastapi-granian": "#98df8a",
    "starlette-uvicorn": "#9467bd",
    "starlette-granian": "#c5b0d5",
    "robyn": "#d62728",
    "robyn-const": "#ff9896",
    "litestar-uvicorn": "#8c564b",
    "nginx": "#7f7f7f",
}


def server_of(label: str) -> str:
    """The server a bar's label names: itself, or the longest server name
    it starts with ("sufast precomputed" -> "sufast")."""
    found = [name for name in COLOURS if label == name or label.startswith((name + " ", name + ","))]
    return max(found, key=len) if found else label


def disturbed(runs: List[Sample], pinned: bool) -> bool:
    return any(flag.startswith("disturbed") for run in runs for flag in run.flags(pinned))


def pyplot():
    """matplotlib's pyplot (headless) and its Patch, or None (and a word
    on stderr) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        print("matplotlib is not installed; no chart", file=sys.stderr)
        return None
    return plt, Patch


def chart(
    results: Dict[str, Dict[str, List[Sample]]],
    baselines: Dict[str, str],
    pinned: Dict[str, bool],
    meta: dict,
    connections: Dict[str, int],
    path: Path,
) -> bool:
    """One panel per scenario: each server's (or variant's) server CPU per
    request as a multiple of the scenario's baseline, in the same rounds."""
    found = pyplot()
    if found is None:
        return False
    plt, Patch = found
    import textwrap

    names = list(results)
    if not names:
        return False
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    counts = connection_counts([name for name in names if name != WEBSOCKET], connections)
    about = [f"{meta.get('date', '?')} · {meta.get('command', '?')} · {meta.get('machine', '?')}"]
    about += textwrap.wrap(
        f"server on core {SERVER_CORE}, wrk (1 thread, {counts}) on core {CLIENT_CORE};"
        f" {meta.get('rounds', '?')} interleaved rounds of {meta.get('seconds', '?')} s;"
        " bars: median of the per-round ratios to the baseline, whiskers: their range",
        75 * columns,
    )
    versions_text = textwrap.fill("versions: " + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()), 75 * columns)
    # Inches above and below the panels: the title, the lines about the
    # run and the legend; the versions.
    header = 0.45 + 0.17 * len(about) + 0.5
    footer = 0.3 + 0.15 * (versions_text.count("\n") + 1)
    height = 4.1 * rows + header + footer
    fig, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, height), squeeze=False)
    plt.rcParams["hatch.linewidth"] = 0.8
    seen: List[str] = []
    for ax, name in zip(axes.flat, names):
        samples = results[name]
        baseline = baselines[name]
        cpu = ratio_summary(samples, baseline, "cpu_us")
        labels = list(samples)
        xs = range(len(labels))
        medians = [cpu[label][0] for label in labels]
        lows = [cpu[label][0] - cpu[label][1] for label in labels]
        highs = [cpu[label][2] - cpu[label][0] for label in labels]
        top = max(cpu[label][2] for label in labels)
        for x, label, value in zip(xs, labels, medians):
            server = server_of(label)
            if server not in seen:
                seen.append(server)
            marked = disturbed(samples[label], pinned.get(name, True))
            ax.bar(
                x,
                value,
                0.7,
                color=COLOURS.get(server, "#bcbd22"),
                edgecolor="#333333" if marked else "none",
                linewidth=0.6,
                hatch="///" if marked else None,
            )
        ax.errorbar(xs, medians, yerr=[lows, highs], fmt="none", ecolor="#333333", elinewidth=0.8, capsize=2.5)
        for x, label, value in zip(xs, labels, medians):
            ax.annotate(
                f"{value:.2f}×",
                (x, cpu[label][2]),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8 if len(labels) <= 7 else 7,
            )
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylim(0, max(top, 1.0) * 1.18)
        pad = max(0, 4 - len(labels)) / 2  # a panel of two bars keeps them bar-wide
        ax.set_xlim(-0.6 - pad, len(labels) - 0.4 + pad)
        ticks = [
            textwrap.fill(label, 14, break_on_hyphens=True) + ("\n(baseline)" if label == baseline else "")
            for label in labels
        ]
        ax.set_xticks(list(xs), ticks, fontsize=8, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        ax.tick_params(axis="y", labelsize=8)
        per = "message" if name == WEBSOCKET else "request"
        base = "bare axum" if baseline == "axum" else baseline
        ax.set_ylabel(f"server CPU per {per}\n× " + textwrap.fill(base, 26), fontsize=8.5)
        ax.set_title(name, fontsize=10.5, fontweight="bold")
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(
        "sufast benchmark: server CPU per request relative to each scenario's baseline in the same round (lower is better)",
        fontsize=13,
        fontweight="bold",
        y=1 - 0.18 / height,
    )
    fig.text(
        0.5,
        1 - 0.45 / height,
        "\n".join(about),
        ha="center",
        va="top",
        fontsize=9,
    )
    handles = [Patch(color=COLOURS.get(server, "#bcbd22"), label=server) for server in seen]
    # Always in the legend, so that a chart without hatching says so too.
    handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="///", label="disturbed round(s)"))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - (0.5 + 0.17 * len(about)) / height),
        ncol=min(len(handles), 12),
        fontsize=9,
        frameon=False,
    )
    fig.text(0.5, 0.12 / height, versions_text, ha="center", va="bottom", fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, footer / height, 1, 1 - header / height), h_pad=1.5, w_pad=1.5)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def cannot_measure() -> Optional[str]:
    """Why this machine cannot run the benchmark, or None."""
    if os.cpu_count() is None or os.cpu_count() < 2:
        return "the benchmark pins the server and the load generator to two different cores; this machine has fewer"
    if shutil.which("wrk") is None:
        return "wrk is not installed (make bench installs it)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run for development (about 2.5 minutes of measuring on 2 cores)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--only", help="run only scenarios whose name contains this text")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, help="only write the report again from this results.json")
    parser.add_argument("--tfb", action="store_true", help="run the TechEmpower-style suite instead (bench/tfb.py)")
    args = parser.parse_args()
    if args.tfb:
        import tfb  # bench/tfb.py; it takes the other options as they were given

        return tfb.main([arg for arg in sys.argv[1:] if arg != "--tfb"])
    if args.render:
        return render(args.render, args.out)
    why = cannot_measure()
    if why:
        print(why, file=sys.stderr)
        return 2
    rounds = args.rounds or 3
    seconds = args.seconds or (1 if args.quick else 4)
    warmup = 1
    available = servers.available()
    for name, why in servers.unavailable().items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    plan = [s for s in scenarios(available, args.quick) if not args.only or args.only in s.name]
    results: Dict[str, Dict[str, List[Sample]]] = {}
    baselines: Dict[str, str] = {}
    pinned: Dict[str, bool] = {}
    connections: Dict[str, int] = {}
    failed: Dict[str, str] = {}
    started = time.monotonic()
    for scenario in plan:
        print(f"== {scenario.name}: {scenario.method} {scenario.path}", flush=True)
        try:
            results[scenario.name] = run_scenario(scenario, rounds, seconds, warmup, warm_together=args.quick)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            # One scenario that cannot run costs its figures, not the
            # whole run's: the others are reported, and this one named.
            print(f"  skipped: {exc}", file=sys.stderr, flush=True)
            failed[scenario.name] = str(exc).splitlines()[0]
            continue
        baselines[scenario.name] = scenario.baseline
        pinned[scenario.name] = scenario.pin
        connections[scenario.name] = scenario.connections
    mem = None
    if not args.only or "memory" in args.only:
        total, first = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
        print(f"== memory: RSS idle, after {first:,} and {total:,} requests", flush=True)
        mem = memory(total, first, 2.0)
        print(f"  {mem}", flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "command": "make bench" + (" QUICK=1" if args.quick else ""),
        "rounds": rounds,
        "seconds": seconds,
        "warmup": warmup,
        "versions": versions(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "skipped": failed,
    }
    write(results, baselines, pinned, mem, meta, args.out, connections)
    print(f"written to {args.out} in {meta['minutes']} minutes")
    for name, why in failed.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    return 1 if failed else 0


def write(results, baselines, pinned, mem, meta, out: Path, connections: Optional[Dict[str, int]] = None) -> None:
    connections = {name: (connections or {}).get(name, CONNECTIONS) for name in results}
    markdown, checks = report(results, baselines, pinned, mem, meta, connections)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown)
    raw = {name: {label: [vars(s) for s in runs] for label, runs in samples.items()} for name, samples in results.items()}
    document = {
        "meta": meta,
        "baselines": baselines,
        "pinned": pinned,
        "connections": connections,
        "results": raw,
        "memory": mem,
        "targets": checks,
    }
    (out / "results.json").write_text(json.dumps(document, indent=1))
    chart(results, baselines, pinned, meta, connections, out / "chart.png")
    print()
    print(markdown)


def render(path: Path, out: Path) -> int:
    """Writes the report again from a results.json, measuring nothing."""
    document = json.loads(path.read_text())
    results = {
        name: {label: [Sample(**run) for run in runs] for label, runs in samples.items()}
        for name, samples in document["results"].items()
    }
    known = {s.name: s for s in scenarios(list(servers.SERVERS), quick=False)}
    baselines = document.get("baselines") or {n: known[n].baseline if n in known else "axum" for n in results}
    pinned = document.get("pinned") or {n: known[n].pin if n in known else True for n in results}
    # Files from before the connection count was recorded ran CONNECTIONS.
    write(results, baselines, pinned, document["memory"], document["meta"], out, document.get("connections"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
