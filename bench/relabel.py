"""Relabeling cost: a 10-label target through 3 rules (replace, keep, labeldrop).

python -m bench.relabel [--n 200000]
"""

from __future__ import annotations

import argparse
import time

from omtsdb.config.model import RelabelConfig
from omtsdb.config.relabel import compile_relabel
from omtsdb.model.labels import Labels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    labels = Labels({f"l{i}": f"v{i}" for i in range(8)} | {"__address__": "h:9100", "job": "node"})
    r = compile_relabel(
        (
            RelabelConfig(source_labels=("__address__",), target_label="instance"),
            RelabelConfig(source_labels=("job",), regex="node|api", action="keep"),
            RelabelConfig(regex="l[0-3]", action="labeldrop"),
        )
    )
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            r.process(labels)
        best = min(best, (time.perf_counter() - t0) / n)
    print(f"relabel, 10 labels x 3 rules: {best * 1e6:.2f} µs per label set")


if __name__ == "__main__":
    main()
