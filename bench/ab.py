"""Two trees of omtsdb through the same bench, interleaved: before and after a change in one run.

    python -m bench.ab /tmp/base-tree . -- bench.query --hosts 26 --runs 5
    python -m bench.ab /tmp/base-tree . --rounds 3 -- bench.ingest

Runs ``python -m <bench> <args>`` with ``PYTHONPATH`` (and the working directory) at each tree
in turn, ``--rounds`` times (A, B, A, B, ...), so that a change of machine load falls on both,
and prints each run's summary lines (those with "ratio", the comparison with Prometheus that
every bench prints) under the tree's name. Each tree runs its own copy of the bench.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: python -m bench.ab BEFORE AFTER [--rounds N] -- MODULE [ARGS]")
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("trees", nargs=2, help="the two source trees: before, after")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv[:cut])
    cmd = argv[cut + 1 :]
    if not cmd:
        ap.error("name the bench module after --")
    results: dict[str, list[str]] = {t: [] for t in args.trees}
    for r in range(args.rounds):
        for tree in args.trees:
            root = Path(tree).resolve()
            env = dict(os.environ, PYTHONPATH=str(root))
            out = subprocess.run(
                [sys.executable, "-m", *cmd], cwd=root, env=env, capture_output=True, text=True
            )
            lines = [ln for ln in out.stdout.splitlines() if "ratio" in ln.lower()]
            if out.returncode != 0:
                lines.append(f"exit {out.returncode}: {out.stderr.strip()[-300:]}")
            results[tree] += [f"round {r + 1}: {ln}" for ln in lines]
            print(f"[{tree} round {r + 1}]", *lines, sep="\n  ", flush=True)
    print()
    for tree, lines in results.items():
        print(tree)
        for ln in lines:
            print("  " + ln)


if __name__ == "__main__":
    main()
