"""``omtsdb import`` / ``tsdb dump`` / ``tsdb analyze`` through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omtsdb.cli.main import main
from omtsdb.model import Labels
from omtsdb.model.exposition import parse, write_openmetrics
from omtsdb.model.samples import STALE_NAN

SPECIAL = [float("nan"), STALE_NAN, float("inf"), float("-inf"), -0.0, 5e-324, 0.1 + 0.2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omtsdb.cli.main", *args], capture_output=True, text=True
    )


def make_file(tmp: Path, n_series: int = 5, n: int = 300) -> tuple[Path, list]:  # type: ignore[type-arg]
    rng = np.random.default_rng(3)
    series = []
    for i in range(n_series):
        lb = Labels({"__name__": "m_total" if i % 2 else "g", "i": str(i), "ü": "x y"})
        ts = 1_600_000_000_000 + np.cumsum(rng.integers(1, 30_000, n))
        vs = np.round(rng.random(n) * 100, 3)
        vs[::37] = SPECIAL[i % len(SPECIAL)]
        series.append((lb, ts.astype(np.int64), vs))
    f = tmp / "in.om"
    f.write_text("".join(write_openmetrics(series)))
    return f, series


def test_import_dump_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f, series = make_file(tmp_path)
    data = tmp_path / "data"
    assert main(["import", str(f), "--storage.tsdb.path", str(data)]) == 0
    out = capsys.readouterr().out
    assert "imported 5 series, 1500 samples" in out
    assert main(["tsdb", "dump", str(data)]) == 0
    dumped = parse(capsys.readouterr().out)
    got = {
        lb: (dumped.ts[dumped.series_idx == k], dumped.vs[dumped.series_idx == k])
        for k, lb in enumerate(dumped.series)
    }
    assert set(got) == {s[0] for s in series}
    for lb, ts, vs in series:
        assert got[lb][0].tolist() == ts.tolist()
        assert got[lb][1].view(np.uint64).tolist() == vs.view(np.uint64).tolist()
    # --match and time bounds
    t_mid = int(series[0][1][150])
    assert main(["tsdb", "dump", str(data), "--match", 'g{i="0"}', "--min-time", str(t_mid)]) == 0
    part = parse(capsys.readouterr().out)
    assert part.series == [series[0][0]]
    assert part.ts.tolist() == series[0][1][150:].tolist()
    assert main(["tsdb", "analyze", str(data)]) == 0
    report = capsys.readouterr().out
    assert "Series: 5" in report and "Samples: 1500" in report


def test_bad_input_imports_nothing(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text('ok{a="1"} 1 1000\nok{a="2"} 2 1000\nbroken{a="1" 3 1000\n')
    data = tmp_path / "data"
    r = run("import", str(f), "--storage.tsdb.path", str(data))
    assert r.returncode == 1
    assert "line 3, column" in r.stderr
    assert "Traceback" not in r.stderr
    assert not data.exists() or main(["tsdb", "analyze", str(data)]) == 0
    r = run("tsdb", "dump", str(data)) if data.exists() else None
    assert r is None or r.stdout.strip() == "# EOF"


def test_import_stdin_and_missing_timestamp(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = subprocess.run(
        [sys.executable, "-m", "omtsdb.cli.main", "import", "-", "--storage.tsdb.path", str(data)],
        input="a 1 1000\nb 2\n",
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "no timestamp" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "omtsdb.cli.main", "import", "-", "--storage.tsdb.path", str(data)],
        input="a 1 1000\nb 2 2000\n",
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "imported 2 series, 2 samples" in r.stdout


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vals=st.lists(st.one_of(st.floats(), st.sampled_from(SPECIAL)), min_size=1, max_size=30))
def test_import_restart_dump_hypothesis(
    tmp_path_factory: pytest.TempPathFactory, vals: list[float]
) -> None:
    tmp = tmp_path_factory.mktemp("h")
    lb = Labels({"__name__": "h"})
    ts = np.arange(len(vals), dtype=np.int64) * 15_000 + 1
    vs = np.array(vals, np.float64)
    f = tmp / "h.om"
    f.write_text("".join(write_openmetrics([(lb, ts, vs)])))
    assert main(["import", str(f), "--storage.tsdb.path", str(tmp / "d")]) == 0
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["tsdb", "dump", str(tmp / "d")])
    e = parse(buf.getvalue())
    assert e.ts.tolist() == ts.tolist()
    assert e.vs.view(np.uint64).tolist() == vs.view(np.uint64).tolist()
