"""``python -m omtsdb.promql.promqltest PATH... [-v]``: run .test scripts, print per-file counts
and a closing ``N passed, M failed`` line (stable float evals; native-histogram and
experimental-syntax evals are counted apart)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omtsdb.promql.promqltest.runner import run_file, summarize


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m omtsdb.promql.promqltest")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    args = ap.parse_args(argv)
    files: list[Path] = []
    for p in map(Path, args.paths):
        files += sorted(p.glob("*.test")) if p.is_dir() else [p]
    reports = []
    for f in files:
        try:
            rep = run_file(f)
        except ValueError as e:
            print(f"{f.name}: cannot parse: {e}")
            continue
        reports.append(rep)
        print(
            f"{f.name}: {rep.count('pass')} passed, {rep.count('fail')} failed, "
            f"{rep.count('native')} native-histogram, {rep.count('experimental')} experimental"
        )
        if args.verbose:
            for o in rep.outcomes:
                if o.category != "pass":
                    print(f"  line {o.line} [{o.category}]: {o.reason}")
    c = summarize(reports)
    print(f"native-histogram: {c['native']}, experimental: {c['experimental']} (not in the total)")
    print(f"{c['pass']} passed, {c['fail']} failed")
    return 0 if c["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
