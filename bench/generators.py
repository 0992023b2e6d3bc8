"""Deterministic benchmark data sets, as arrays or as OpenMetrics text with timestamps.

- ``fleet``: a node_exporter-like fleet: per-CPU mode counters, network byte counters with
  occasional resets, load/memory/temperature gauges with a daily pattern, a classic request
  latency histogram, jittered scrapes and missed scrapes.
- ``tsbs``: TSBS "cpu-only": ten ``cpu_*`` gauges per host with TSBS's host tags, each a bounded
  random walk.
- ``avalanche``: avalanche-like random integer gauges changing every scrape.

    python -m bench.generators fleet --hosts 10 --hours 6 > fleet.om
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from omtsdb.model.exposition import write_openmetrics
from omtsdb.model.labels import Labels

Series = tuple[Labels, np.ndarray, np.ndarray]  # type: ignore[type-arg]
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DAY_S = 86_400.0


def _grid(
    rng: np.random.Generator, n: int, interval_ms: int, jitter_ms: int, miss: float
) -> np.ndarray:  # type: ignore[type-arg]
    ts = T0 + np.arange(n, dtype=np.int64) * interval_ms
    if jitter_ms:
        ts = ts + rng.integers(-jitter_ms, jitter_ms + 1, n)
    if miss:
        ts = ts[rng.random(n) >= miss]
    return ts


def _daily(ts: np.ndarray, phase: float) -> np.ndarray:  # type: ignore[type-arg]
    t = ts / 1000.0
    return 0.5 + 0.5 * np.sin(2 * np.pi * (t / DAY_S + phase))


def fleet(
    hosts: int = 10, hours: float = 6, interval_s: int = 15, seed: int = 1
) -> Iterator[Series]:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / interval_s)
    step = interval_s * 1000
    les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
    for h in range(hosts):
        inst = {"instance": f"node-{h:03d}:9100", "job": "node"}
        ts = _grid(rng, n, step, 3, 0.002)
        m = ts.size
        phase = rng.random()
        busy = _daily(ts, phase)
        for cpu in range(4):
            for mode, share in (("user", 0.3), ("system", 0.1), ("iowait", 0.02), ("idle", 0.58)):
                rate = share * (busy if mode != "idle" else 1.5 - busy)
                inc = np.maximum(rate * interval_s + rng.normal(0, 0.05, m), 0)
                vs = np.round(np.cumsum(inc) + 1000 * rng.random(), 2)
                yield (
                    Labels(
                        {
                            "__name__": "node_cpu_seconds_total",
                            "cpu": str(cpu),
                            "mode": mode,
                            **inst,
                        }
                    ),
                    ts,
                    vs,
                )
        for dev in ("eth0", "lo"):
            for d in ("receive", "transmit"):
                inc = rng.integers(0, 200_000, m) * (busy + 0.1)
                vs = np.cumsum(np.floor(inc))
                if rng.random() < 0.3:  # a counter reset (reboot)
                    k = int(rng.integers(1, m))
                    vs[k:] -= vs[k - 1]
                yield (
                    Labels({"__name__": f"node_network_{d}_bytes_total", "device": dev, **inst}),
                    ts,
                    vs,
                )
        yield (
            Labels({"__name__": "node_load1", **inst}),
            ts,
            np.round(4 * busy + rng.random(m) * 0.2, 2),
        )
        mem = np.round((8e9 + 4e9 * busy) / 4096) * 4096
        yield Labels({"__name__": "node_memory_MemAvailable_bytes", **inst}), ts, mem
        temp = np.round(45 + 20 * busy + rng.normal(0, 0.3, m), 1)
        yield Labels({"__name__": "node_hwmon_temp_celsius", "sensor": "temp1", **inst}), ts, temp
        yield Labels({"__name__": "up", **inst}), ts, np.ones(m)
        reqs = rng.poisson(50 * (busy + 0.1) * interval_s)
        lat = rng.lognormal(-3, 1, int(reqs.sum()))
        owner = np.repeat(np.arange(m), reqs)
        bounds = [float(x) for x in les]
        for le, b in zip(les, bounds, strict=True):
            per = np.bincount(owner[lat <= b], minlength=m)
            yield (
                Labels({"__name__": "http_request_duration_seconds_bucket", "le": le, **inst}),
                ts,
                np.cumsum(per).astype(np.float64),
            )
        sums = np.bincount(owner, weights=lat, minlength=m)
        yield (
            Labels({"__name__": "http_request_duration_seconds_sum", **inst}),
            ts,
            np.round(np.cumsum(sums), 6),
        )
        yield (
            Labels({"__name__": "http_request_duration_seconds_count", **inst}),
            ts,
            np.cumsum(reqs).astype(np.float64),
        )


TSBS_FIELDS = (
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
)


def tsbs(
    hosts: int = 100, hours: float = 6, interval_s: int = 10, seed: int = 2
) -> Iterator[Series]:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / interval_s)
    ts = T0 + np.arange(n, dtype=np.int64) * interval_s * 1000
    regions = ("us-east-1", "us-west-1", "eu-central-1", "ap-southeast-2")
    for h in range(hosts):
        tags = {
            "hostname": f"host_{h}",
            "region": regions[h % len(regions)],
            "datacenter": f"{regions[h % len(regions)]}{'abc'[h % 3]}",
            "rack": str(h % 100),
            "os": ("Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10")[h % 3],
            "arch": ("x64", "x86")[h % 2],
            "team": ("SF", "NYC", "LON", "CHI")[h % 4],
            "service": str(h % 20),
            "service_version": str(h % 2),
            "service_environment": ("production", "staging", "test")[h % 3],
        }
        for f in TSBS_FIELDS:
            walk = np.clip(np.cumsum(rng.uniform(-1, 1, n)) + rng.uniform(0, 100), 0, 100)
            yield Labels({"__name__": f"cpu_{f}", **tags}), ts, np.floor(walk)


def avalanche(
    series: int = 1000, hours: float = 2, interval_s: int = 15, seed: int = 3
) -> Iterator[Series]:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / interval_s)
    ts = T0 + np.arange(n, dtype=np.int64) * interval_s * 1000
    for i in range(series):
        lb = Labels(
            {
                "__name__": f"avalanche_metric_mmmmm_0_{i % 10}",
                "cycle_id": "0",
                "series_id": str(i // 10),
                "label_key_kkkkk_0": "label_val_vvvvv_0",
            }
        )
        yield lb, ts, rng.integers(0, 100, n).astype(np.float64)


SETS = {"fleet": fleet, "tsbs": tsbs, "avalanche": avalanche}


def write(name: str, out: TextIO, **kw: float) -> tuple[int, int]:
    """Write a data set as OpenMetrics text; returns (series, samples)."""
    ns = nsamp = 0

    def counted() -> Iterator[Series]:
        nonlocal ns, nsamp
        for s in SETS[name](**kw):  # type: ignore[operator]
            ns += 1
            nsamp += s[1].size
            yield s

    for chunk in write_openmetrics(counted(), exact=False):
        out.write(chunk)
    return ns, nsamp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--hosts", type=int)
    ap.add_argument("--series", type=int)
    ap.add_argument("--hours", type=float)
    args = ap.parse_args()
    kw = {
        k: v
        for k, v in (("hosts", args.hosts), ("series", args.series), ("hours", args.hours))
        if v is not None
    }
    ns, nsamp = write(args.set, sys.stdout, **kw)
    print(f"{args.set}: {ns} series, {nsamp} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
