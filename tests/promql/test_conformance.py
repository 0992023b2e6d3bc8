"""Prometheus's PromQL test scripts (../shared/conformance) and our own, with a ratchet."""

from __future__ import annotations

from pathlib import Path

from omtsdb.promql.promqltest.runner import run_file, summarize
from tests.conftest import SHARED, require

HERE = Path(__file__).parent
RATCHET = HERE / "conformance_ratchet.txt"


def test_upstream_conformance_ratchet() -> None:
    d = SHARED / "conformance" / "promql-testdata"
    require(d.is_dir(), f"{d} is absent")
    reports = [run_file(f) for f in sorted(d.glob("*.test"))]
    c = summarize(reports)
    floor = int(RATCHET.read_text().split()[0])
    per_file = {Path(r.path).name: (r.count("pass"), r.count("fail")) for r in reports}
    assert c["pass"] >= floor, f"{c['pass']} passing evals < ratchet {floor}: {per_file}"


def test_own_scripts_all_pass() -> None:
    for f in sorted((HERE / "testdata").glob("*.test")):
        rep = run_file(f)
        bad = [o for o in rep.outcomes if o.category != "pass"]
        assert not bad, f"{f.name}: {bad}"
        assert rep.count("pass") > 0
