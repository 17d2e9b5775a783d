"""The TechEmpower-style bench suite (bench/tfb.py, bench/tfb/): its
shared rules, and sufast's app of it passing the checks the suite runs
before measuring, served by the real server on a fresh database."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import tfb  # noqa: E402
import tfb_common  # noqa: E402  (bench/tfb/, put on sys.path by tfb)


def test_query_count_follows_tfb():
    cases = {None: 1, "": 1, "foo": 1, "0": 1, "-3": 1, "1": 1, "20": 20, "500": 500, "501": 500}
    assert {value: tfb_common.query_count(value) for value in cases} == cases


def test_fortunes_page_passes_the_check_and_a_wrong_one_does_not():
    page = tfb_common.fortunes_html(tfb_common.FORTUNES)
    assert tfb.fortune_problems(page.encode()) == []
    unsorted = tfb_common.FORTUNES_HEAD + "".join(
        tfb_common.FORTUNES_ROW.format(id, message) for id, message in [*tfb_common.FORTUNES, tfb_common.ADDITIONAL_FORTUNE]
    )
    assert tfb.fortune_problems((unsorted + tfb_common.FORTUNES_TAIL).encode())


def test_sufast_app_passes_the_checks(tmp_path, monkeypatch):
    db = str(tmp_path / "world.db")
    tfb_common.seed(db)
    monkeypatch.setenv("BENCH_DB", db)
    spec = importlib.util.spec_from_file_location("sufast_tfb", ROOT / "bench" / "tfb" / "sufast_tfb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    port = module.app.start(port=0)
    try:
        problems = tfb.check_server("sufast", port, db)
    finally:
        module.app.stop()
    assert {kind: found for kind, found in problems.items() if found} == {}
