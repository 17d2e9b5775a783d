"""The TechEmpower-style suite: TFB's six test types (JSON, plaintext,
single query, multiple queries, fortunes, updates) and a list endpoint,
against SQLite, on sufast, FastAPI and Starlette on uvicorn, Robyn, and
Granian with a raw ASGI app.

    make bench TFB=1                         # or: .venv-bench/bin/python bench/run.py --tfb
    make bench TFB=1 QUICK=1                 # 1 s rounds
    .venv-bench/bin/python bench/tfb.py --only fortunes --connections 16 --servers sufast,robyn

It reuses bench/run.py's machinery: each server in a process group of its
own pinned to core 0, wrk (one thread) pinned to core 1, interleaved rounds
after a warm-up, CPU from /proc, the same flags. Every test type runs at 16
and at 64 connections. Each server gets a fresh SQLite database per
scenario (updates change it), seeded by bench/tfb/tfb_common.py and passed
in ``BENCH_DB``. Before measuring, every server's answers are checked
(status, headers, body shape and values, the database really read and
written); a server that answers a test type wrongly is not measured on it.

Writes bench/results/tfb.md, tfb.json and tfb.png; ``--render tfb.json``
writes them again from a previous run. The apps live in bench/tfb/ (this
module, bench/tfb.py, is what ``import tfb`` finds: a module file wins over
a directory without ``__init__.py``).
"""

from __future__ import annotations

import argparse
import html.parser
import http.client
import json
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "tfb"))

import run  # noqa: E402
import servers  # noqa: E402
import tfb_common  # noqa: E402

TFB_DIR = "bench/tfb"
CONNECTIONS = (16, 64)
SUFAST = "sufast"


class TestType(NamedTuple):
    """One endpoint measured: ``kind`` says how its answer is checked,
    ``rows`` how many World rows it must send."""

    name: str
    path: str
    kind: str
    rows: int = 1


TEST_TYPES: List[TestType] = [
    TestType("JSON", "/json", "json"),
    TestType("plaintext", "/plaintext", "plaintext"),
    TestType("single query", "/db", "db"),
    TestType("queries=1", "/queries?queries=1", "queries", 1),
    TestType("queries=20", "/queries?queries=20", "queries", 20),
    TestType("fortunes", "/fortunes", "fortunes"),
    TestType("updates=1", "/updates?queries=1", "updates", 1),
    TestType("updates=20", "/updates?queries=20", "updates", 20),
    TestType("list, 20 rows (6.5 KB)", "/list", "list"),
]


# --- servers ---------------------------------------------------------------


def _script(name: str) -> Callable[[int, dict], List[str]]:
    return lambda port, opts: [servers.PYTHON, f"{TFB_DIR}/{name}"]


def _uvicorn(module: str) -> Callable[[int, dict], List[str]]:
    # As bench/servers.py runs uvicorn: uvloop and httptools, no access log.
    def argv(port: int, opts: dict) -> List[str]:
        return [
            servers.PYTHON, "-m", "uvicorn", "--app-dir", TFB_DIR, f"{module}:app",
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
        ]  # fmt: skip

    return argv


def _granian(module: str) -> Callable[[int, dict], List[str]]:
    # As bench/servers.py runs Granian: one worker, HTTP/1, uvloop.
    def argv(port: int, opts: dict) -> List[str]:
        return [
            servers.PYTHON, "-m", "granian", "--interface", "asgi", "--working-dir", TFB_DIR,
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--http", "1", "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
            f"{module}:app",
        ]  # fmt: skip

    return argv


# (label, argv builder, Python modules it imports), in report order.
PEERS: List[Tuple[str, Callable[[int, dict], List[str]], Tuple[str, ...]]] = [
    (SUFAST, _script("sufast_tfb.py"), ()),
    ("fastapi-uvicorn", _uvicorn("fastapi_tfb"), ("fastapi", "uvicorn", "uvloop", "httptools")),
    ("starlette-uvicorn", _uvicorn("starlette_tfb"), ("starlette", "uvicorn", "uvloop", "httptools")),
    ("robyn", _script("robyn_tfb.py"), ("robyn",)),
    ("granian-asgi", _granian("granian_tfb"), ("granian", "uvloop")),
]
LABELS = [label for label, _, _ in PEERS]


def definition(label: str, db: str) -> servers.Server:
    """The servers.Server for ``label`` serving the database file ``db``."""
    _, build, needs = next(peer for peer in PEERS if peer[0] == label)
    return servers.Server(f"tfb-{label}", build, frozenset(), extra_env={"BENCH_DB": db}, needs=needs)


def unavailable(label: str) -> Optional[str]:
    """None if ``label`` can run here, else what is missing."""
    if label == SUFAST:
        return servers.SERVERS["sufast"].unavailable()  # the venv and the built library
    return definition(label, "").unavailable()


class Databases:
    """Fresh database files in a temporary directory: one is seeded, and
    each server of each scenario gets a copy of it (a copy is much quicker
    than 10,000 inserts, and every server starts from the same rows)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sufast-tfb-"))
        self.seeded = self.dir / "seed.db"
        tfb_common.seed(str(self.seeded))
        self.count = 0

    def fresh(self) -> str:
        self.count += 1
        path = self.dir / f"world-{self.count}.db"
        shutil.copyfile(self.seeded, path)
        return str(path)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# --- checks ----------------------------------------------------------------

CONTENT_TYPES = {  # TFB's patterns (toolset/test_types/verifications.py)
    "json": r"^application/json(; ?charset=(UTF|utf)-8)?$",
    "html": r"^text/html; ?charset=(UTF|utf)-8$",
    "plaintext": r"^text/plain(; ?charset=(UTF|utf)-8)?$",
}
# The queries values TFB's verifier sends, and the rows each must give.
QUERY_CASES = [("1", 1), ("20", 20), ("0", 1), ("foo", 1), ("", 1), ("501", 500)]


def fetch(port: int, path: str) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def header_problems(status: int, headers: Dict[str, str], kind: str) -> List[str]:
    """What TFB's verifier fails in the status and headers."""
    found = [] if status == 200 else [f"status {status}"]
    found += [f"no {name} header" for name in ("server", "date", "content-type") if name not in headers]
    if "content-length" not in headers and "transfer-encoding" not in headers:
        found.append("neither Content-Length nor Transfer-Encoding")
    ctype = headers.get("content-type", "")
    if ctype and not re.match(CONTENT_TYPES[kind], ctype):
        found.append(f"Content-Type {ctype!r}")
    return found


def world_table(db: str) -> Dict[int, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT id, randomNumber FROM World"))
    finally:
        conn.close()


def world_problems(body: bytes, rows: Optional[int], table: Dict[int, int]) -> List[str]:
    """A World object (``rows`` None) or a list of ``rows`` of them, each
    with an id in 1..10000 and the randomNumber the database holds for it."""
    try:
        value = json.loads(body)
    except ValueError as e:
        return [f"invalid JSON ({e}): {body[:80]!r}"]
    if rows is None:
        items = [value]
    elif not isinstance(value, list):
        return [f"not a JSON array: {body[:80]!r}"]
    elif len(value) != rows:
        return [f"{len(value)} rows, expected {rows}"]
    else:
        items = value
    sent = {}
    for item in items:
        if not isinstance(item, dict) or set(item) != {"id", "randomNumber"}:
            return [f"not an object with exactly id and randomNumber: {str(item)[:80]}"]
        id, number = item["id"], item["randomNumber"]
        if type(id) is not int or type(number) is not int or not 1 <= id <= 10_000 or not 1 <= number <= 10_000:
            return [f"id or randomNumber not an integer in 1..10000: {item}"]
        # An id drawn twice by /updates holds the value written last.
        sent[id] = number
    for id, number in sent.items():
        if table.get(id) != number:
            return [f"row {id}: randomNumber {number}, the database holds {table.get(id)}"]
    return []


class FortuneParser(html.parser.HTMLParser):
    """The start tags, the title and each row's cells of a Fortunes page,
    entities decoded (any valid escaping is accepted, as TFB's parser does)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.tags: List[str] = []
        self.cells: List[str] = []
        self.title = ""
        self._cell: Optional[List[str]] = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower()

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag not in ("thead", "tbody"):  # TFB allows them
            self.tags.append(tag)
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self.tags and self.tags[-1] == "title":
            self.title += data


def fortune_problems(body: bytes) -> List[str]:
    """TFB's page: doctype, the table with the 12 rows and the added one
    sorted by message, the <script> row escaped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ["not UTF-8"]
    if "<script>" in text or "&lt;script&gt;" not in text:
        return ["the <script> fortune is not escaped as &lt;script&gt;"]
    parser = FortuneParser()
    parser.feed(text)
    parser.close()
    expected = sorted([*tfb_common.FORTUNES, tfb_common.ADDITIONAL_FORTUNE], key=lambda row: row[1])
    skeleton = ["html", "head", "title", "body", "table", "tr", "th", "th"] + ["tr", "td", "td"] * len(expected)
    found = []
    if parser.doctype != "doctype html":
        found.append(f"doctype {parser.doctype!r}")
    if parser.tags != skeleton:
        found.append(f"tags {' '.join(parser.tags)[:120]!r} are not TFB's template")
    if parser.title.strip() != "Fortunes":
        found.append(f"title {parser.title!r}")
    rows = [tuple(parser.cells[i : i + 2]) for i in range(2, len(parser.cells), 2)]
    if parser.cells[:2] != ["id", "message"] or rows != [(str(id), message) for id, message in expected]:
        found.append(f"rows {rows[:3]}... are not the 13 fortunes sorted by message")
    return found


def check_server(label: str, port: int, db: str) -> Dict[str, List[str]]:
    """Problems per check kind ({} of each when all is well)."""
    problems: Dict[str, List[str]] = {}

    def one(kind: str, path: str, content: str, body_problems: Callable[[bytes], List[str]]) -> None:
        status, headers, body = fetch(port, path)
        found = header_problems(status, headers, content)
        if status == 200:
            found += body_problems(body)
        problems.setdefault(kind, []).extend(f"GET {path}: {p}" for p in found)
        print(f"  {'ok  ' if not found else 'FAIL'} {path:22} {status} {headers.get('content-type', '')[:26]:26} {'; '.join(found)[:90]}")

    def exact(expected: bytes) -> Callable[[bytes], List[str]]:
        return lambda body: [] if body == expected else [f"body {body[:60]!r}, expected {expected!r}"]

    def json_message(body: bytes) -> List[str]:
        try:
            value = json.loads(body)
        except ValueError:
            return [f"invalid JSON {body[:60]!r}"]
        return [] if value == {"message": "Hello, World!"} else [f"body {body[:60]!r}"]

    one("json", "/json", "json", json_message)
    one("plaintext", "/plaintext", "plaintext", exact(b"Hello, World!"))
    one("db", "/db", "json", lambda body: world_problems(body, None, world_table(db)))
    for value, rows in QUERY_CASES + [(None, 1)]:
        path = "/queries" if value is None else f"/queries?queries={value}"
        one("queries", path, "json", lambda body, rows=rows: world_problems(body, rows, world_table(db)))
    for value, rows in QUERY_CASES:
        before = world_table(db)

        def updated(body: bytes, rows: int = rows, before: Dict[int, int] = before) -> List[str]:
            # The rows sent must be what the database now holds, and
            # (TFB's check, at many rows only: one new random number may
            # equal the old one) the table must have changed.
            found = world_problems(body, rows, world_table(db))
            if not found and rows >= 20 and world_table(db) == before:
                found.append("the World table did not change")
            return found

        one("updates", f"/updates?queries={value}", "json", updated)
    one("fortunes", "/fortunes", "html", fortune_problems)
    articles = [dict(zip(tfb_common.ARTICLE_FIELDS, row)) for row in tfb_common.articles()]

    def article_list(body: bytes) -> List[str]:
        try:
            value = json.loads(body)
        except ValueError:
            return [f"invalid JSON {body[:60]!r}"]
        return [] if value == articles else [f"not the 20 articles: {body[:80]!r}"]

    one("list", "/list", "json", article_list)
    for kind, found in per_request_problems(port, db).items():
        problems.setdefault(kind, []).extend(found)
        for problem in found:
            print(f"  FAIL {problem}")
    return problems


def per_request_problems(port: int, db: str) -> Dict[str, List[str]]:
    """TFB forbids caching what the database says: /db must not send the
    same row each time, and a row changed in the database must show in the
    next /fortunes and /list (changed here, then put back)."""
    found: Dict[str, List[str]] = {}
    bodies = {fetch(port, "/db")[2] for _ in range(5)}
    if len(bodies) == 1:
        found["db"] = [f"GET /db: the same answer five times ({bodies.pop()[:60]!r}): not read per request"]
    conn = sqlite3.connect(db, timeout=30)
    try:
        for kind, path, table, column, marker in (
            ("fortunes", "/fortunes", "Fortune", "message", "fortune: changed while serving"),
            ("list", "/list", "Article", "title", "Changed while serving"),
        ):
            (before,) = conn.execute(f"SELECT {column} FROM {table} WHERE id = 1").fetchone()
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = 1", (marker,))
            conn.commit()
            try:
                _, _, body = fetch(port, path)
            finally:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = 1", (before,))
                conn.commit()
            if marker.encode() not in body:
                found[kind] = [f"GET {path}: a row changed in the database is not in the next answer: not read per request"]
    finally:
        conn.close()
    return found


def check_all(labels: List[str], databases: Databases) -> Dict[str, Dict[str, List[str]]]:
    """Starts each server on a fresh database and checks every endpoint."""
    results = {}
    for label in labels:
        print(f"== check {label}", flush=True)
        db = databases.fresh()
        try:
            server = run.Server(label, definition(label, db), {}, pin=False)
        except RuntimeError as e:
            print(f"  FAIL did not start: {e}", flush=True)
            results[label] = {t.kind: [f"did not start: {str(e)[:300]}"] for t in TEST_TYPES}
            continue
        try:
            results[label] = check_server(label, server.port, db)
        except (OSError, http.client.HTTPException) as e:
            results[label] = {t.kind: [f"request failed: {e}"] for t in TEST_TYPES}
        finally:
            server.stop()
    return results


# --- measuring -------------------------------------------------------------


def scenario_name(test: TestType, connections: int) -> str:
    return f"{test.name} @{connections}"


def measure(
    plan: List[Tuple[TestType, int]], labels_for: Dict[str, List[str]], rounds: int, seconds: float, warmup: float, databases: Databases
) -> Dict[str, Dict[str, List[run.Sample]]]:
    results: Dict[str, Dict[str, List[run.Sample]]] = {}
    started = time.monotonic()
    for number, (test, connections) in enumerate(plan, 1):
        labels = labels_for[test.kind]
        name = scenario_name(test, connections)
        if not labels:
            print(f"== {name}: no server passed the checks; skipped", flush=True)
            continue
        # run_scenario finds a server by name in servers.SERVERS: each
        # scenario registers its servers there with a fresh database.
        for label in labels:
            servers.SERVERS[f"tfb-{label}"] = definition(label, databases.fresh())
        scenario = run.Scenario(
            name,
            test.path,
            [],
            variants=[(label, f"tfb-{label}", {}, None) for label in labels],
            baseline=SUFAST,
            connections=connections,
        )
        elapsed = time.monotonic() - started
        print(f"== [{number}/{len(plan)}, {elapsed / 60:.1f} min] {name}: GET {test.path}, {connections} connections", flush=True)
        results[name] = run.run_scenario(scenario, rounds, seconds, warmup)
    return results


def best_peer(samples: Dict[str, List[run.Sample]]) -> Optional[str]:
    """The server other than sufast with the highest median req/s."""
    peers = [label for label in samples if label != SUFAST]
    return max(peers, key=lambda label: statistics.median(s.rps for s in samples[label])) if peers else None


# --- report ----------------------------------------------------------------


def report(document: dict) -> str:
    meta = document["meta"]
    results = load_results(document)
    lines = [
        "# sufast, TechEmpower-style suite",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- command: `{meta['command']}`",
        f"- wall time: {meta['minutes']} minutes",
        f"- method: each server pinned to core {run.SERVER_CORE}, wrk (1 thread, no pipelining) to core {run.CLIENT_CORE};"
        f" every test type at {' and '.join(str(c) for c in meta['connections'])} connections;"
        f" {meta['rounds']} interleaved rounds of {meta['seconds']} s after a {meta['warmup']} s warm-up;"
        " ratios are the median of per-round ratios to the best peer of the same round (range in brackets),"
        " the best peer being the server other than sufast with the highest median req/s;"
        " CPU is the server's whole process group, from /proc.",
        "- database: SQLite (Python's sqlite3, WAL, synchronous=NORMAL), a fresh file per server and scenario with"
        " TFB's 10,000 World rows and 12 Fortune rows; a connection per handler thread."
        " TFB itself runs Postgres on another machine and pipelines plaintext 16 deep: neither here.",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "## Checks",
        "",
        "Every server was asked each endpoint before measuring (TFB's verifier cases for `queries`:"
        " 1, 20, 0, foo, empty, 501 and none; headers Server, Date, Content-Type and a length;"
        " the rows sent compared with the database; the table changed by updates;"
        " the Fortunes page parsed). A server is measured only on the test types it passed.",
        "",
        "| server | result |",
        "|---|---|",
    ]
    for label, problems in document["checks"].items():
        failed = {kind: found for kind, found in problems.items() if found}
        shown = "all passed" if not failed else "; ".join(f"{kind}: {found[0]}" for kind, found in failed.items())
        lines.append(f"| {label} | {shown} |")
    lines += [
        "",
        "## sufast against the best peer",
        "",
        "Req/s are the target; CPU per request is the steadier figure when other work takes part of the server's core"
        " (see the flags).",
        "",
        "| test type | connections | best peer | sufast req/s ÷ best peer's | sufast first | sufast CPU/req ÷ best peer's |",
        "|---|---:|---|---|---|---|",
    ]
    for name, samples in results.items():
        test, connections = document["scenarios"][name]
        peer = best_peer(samples)
        if SUFAST not in samples or peer is None:
            lines.append(f"| {test} | {connections} | {peer or '-'} | - | - | - |")
            continue
        ratio = run.ratio_summary(samples, peer, "rps")[SUFAST]
        cpu = run.ratio_summary(samples, peer, "cpu_us")[SUFAST]
        first = "yes" if ratio[1] > 1 else "yes, within the range" if ratio[0] > 1 else "no"
        lines.append(f"| {test} | {connections} | {peer} | {run.fmt_ratio(ratio)} | {first} | {run.fmt_ratio(cpu)} |")
    lines += [
        "",
        "## Every figure",
        "",
        "| test type | connections | server | req/s | p50 µs | p99 µs | CPU µs/req | req/s vs best peer | flags |",
        "|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for name, samples in results.items():
        test, connections = document["scenarios"][name]
        peer = best_peer(samples)
        ratios = run.ratio_summary(samples, peer, "rps") if peer else {}
        for label, runs in samples.items():
            shown = "best peer" if label == peer else run.fmt_ratio(ratios[label]) if label in ratios else "-"
            lines.append(
                f"| {test} | {connections} | {label} | {statistics.median(r.rps for r in runs):,.0f} | "
                f"{statistics.median(r.p50_us for r in runs):,.0f} | {statistics.median(r.p99_us for r in runs):,.0f} | "
                f"{statistics.median(r.cpu_us for r in runs):.1f} | {shown} | {'; '.join(run.summarize_flags(runs, True))} |"
            )
    lines.append("")
    return "\n".join(lines)


def load_results(document: dict) -> Dict[str, Dict[str, List[run.Sample]]]:
    return {
        name: {label: [run.Sample(**r) for r in runs] for label, runs in samples.items()}
        for name, samples in document["results"].items()
    }


def disturbed(sample: run.Sample) -> bool:
    return any(flag.startswith("disturbed") for flag in sample.flags(True))


def chart(document: dict, path: Path) -> bool:
    """One panel per test type, a group of bars per connection count: the
    median req/s (labelled), each round as a dot; a bar with a disturbed
    round is hatched and its disturbed rounds are red crosses."""
    found = run.pyplot()
    if found is None:
        return False
    plt, Patch = found
    results = load_results(document)
    meta = document["meta"]
    tests = list(dict.fromkeys(document["scenarios"][name][0] for name in results))
    labels = [label for label in LABELS if any(label in s for s in results.values())]
    colors = {label: f"C{i}" for i, label in enumerate(LABELS)}
    columns = 3
    rows = (len(tests) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(16, 4.2 * rows + 1.2), squeeze=False)
    width = 0.8 / max(len(labels), 1)
    for ax, test in zip(axes.flat, tests):
        names = [n for n, (t, _) in document["scenarios"].items() if t == test and n in results]
        titles = []
        for g, name in enumerate(names):
            samples = results[name]
            connections = document["scenarios"][name][1]
            peer = best_peer(samples)
            if peer and SUFAST in samples:
                titles.append(f"{connections} conn: sufast {run.ratio_summary(samples, peer, 'rps')[SUFAST][0]:.2f}× {peer}")
            for i, label in enumerate(labels):
                if label not in samples:
                    continue
                runs = samples[label]
                x = g + i * width
                value = statistics.median(r.rps for r in runs)
                hit = any(disturbed(r) for r in runs)
                ax.bar(x, value, width, color=colors[label], hatch="///" if hit else None, edgecolor="black" if hit else colors[label], linewidth=0.6)
                top = max([value] + [r.rps for r in runs])
                shown = f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
                ax.annotate(shown, (x, top), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=7, rotation=90)
                for r in runs:
                    ax.plot(x, r.rps, "x" if disturbed(r) else ".", color="red" if disturbed(r) else "black", markersize=4)
        ax.set_xticks([g + width * (len(labels) - 1) / 2 for g in range(len(names))], [f"{document['scenarios'][n][1]} connections" for n in names])
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)  # room for the labels
        ax.set_ylabel("req/s (higher is better)")
        ax.set_title(f"{test}\n" + "; ".join(titles), fontsize=9)
    for ax in list(axes.flat)[len(tests) :]:
        ax.axis("off")
    handles = [Patch(color=colors[label], label=label) for label in labels]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="a round disturbed (red ×)"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=9)
    versions = meta["versions"]
    shown = ", ".join(
        f"{k} {versions[k].split()[1] if k == 'wrk' and len(versions[k].split()) > 1 else versions[k]}"
        for k in ("sufast", "python", "fastapi", "starlette", "uvicorn", "robyn", "granian", "wrk")
        if k in versions
    )
    footer = (
        f"{meta['date']} · {meta['command']} · {meta['rounds']} rounds of {meta['seconds']} s after a {meta['warmup']} s warm-up,"
        f" server on core {run.SERVER_CORE}, wrk on core {run.CLIENT_CORE}, SQLite\n{shown}"
    )
    fig.text(0.01, 0.005, footer, fontsize=8, va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(document: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    markdown = report(document)
    (out / "tfb.md").write_text(markdown)
    (out / "tfb.json").write_text(json.dumps(document, indent=1, ensure_ascii=False))
    chart(document, out / "tfb.png")
    print()
    print(markdown)


# --- main ------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s rounds, for development")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--only", help="only test types whose name contains this text")
    parser.add_argument("--servers", help="comma-separated server labels (default: all)")
    parser.add_argument("--connections", help="comma-separated connection counts (default: 16,64)")
    parser.add_argument("--out", type=Path, default=run.RESULTS)
    parser.add_argument("--render", type=Path, help="only write the report again from this tfb.json")
    args = parser.parse_args(argv)
    if args.render:
        write(json.loads(args.render.read_text()), args.out)
        return 0
    why = run.cannot_measure()
    if why:
        print(why, file=sys.stderr)
        return 2
    rounds = args.rounds or 3
    seconds = args.seconds or (1 if args.quick else 4)
    warmup = 1
    connections = [int(c) for c in args.connections.split(",")] if args.connections else list(CONNECTIONS)
    wanted = args.servers.split(",") if args.servers else LABELS
    for label in wanted:
        if label not in LABELS:
            parser.error(f"unknown server {label!r} (known: {', '.join(LABELS)})")
    labels = []
    for label in wanted:
        reason = unavailable(label)
        if reason:
            print(f"skipping {label}: {reason}", file=sys.stderr)
        else:
            labels.append(label)
    tests = [t for t in TEST_TYPES if not args.only or args.only in t.name]
    started = time.monotonic()
    databases = Databases()
    try:
        checks = check_all(labels, databases)
        kinds = {t.kind for t in tests}
        labels_for = {kind: [label for label in labels if not checks[label].get(kind)] for kind in kinds}
        for label in labels:
            for kind in sorted(kinds):
                for problem in checks[label].get(kind, [])[:3]:
                    print(f"FAIL {label} {kind}: {problem} (not measured on it)", file=sys.stderr)
        plan = [(test, c) for test in tests for c in connections]
        results = measure(plan, labels_for, rounds, seconds, warmup, databases)
    finally:
        databases.remove()
    # The command line as given (make bench TFB=1 runs bench/run.py --tfb).
    script = Path(sys.argv[0]).resolve()
    script_shown = script.relative_to(run.ROOT).as_posix() if run.ROOT in script.parents else str(script)
    shown = " ".join([servers.PYTHON, script_shown, *sys.argv[1:]])
    document = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "machine": run.machine(),
            "command": shown,
            "rounds": rounds,
            "seconds": seconds,
            "warmup": warmup,
            "connections": connections,
            "versions": run.versions(),
            "minutes": round((time.monotonic() - started) / 60, 1),
        },
        "scenarios": {scenario_name(t, c): [t.name, c] for t, c in plan},
        "checks": checks,
        "results": {name: {label: [vars(s) for s in runs] for label, runs in samples.items()} for name, samples in results.items()},
    }
    write(document, args.out)
    print(f"written to {args.out} (tfb.md, tfb.json, tfb.png) in {document['meta']['minutes']} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
