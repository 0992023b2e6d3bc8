"""Scrape throughput side by side with Prometheus 3.5.

    python -m bench.scrape [--targets 20] [--series 2000] [--seconds 30] [--interval 1s]

Serves ``--targets`` synthetic exporters on loopback (each a ``/metrics`` page of ``--series``
node_exporter-like series whose values change every scrape), points omtsdb
(``omtsdb serve --config.file``) and Prometheus at the same targets with the same scrape
configuration, lets both scrape for ``--seconds`` after a warm-up, and reports for each the
samples scraped (from its own ``scrape_samples_scraped``), the CPU seconds its process used
(utime+stime from /proc) and samples per CPU-second, plus the ratio omtsdb/Prometheus (> 1
means omtsdb scrapes more samples per CPU-second).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from aiohttp import web

from bench.ingest import BIN, ROOT, cpu_seconds, free_port, pool_labels, wait_ready


def page(series: int, k: int, rnd: int) -> bytes:
    """The exposition of target ``k`` at scrape round ``rnd`` (values move every round)."""
    lines = []
    fams: set[str] = set()
    for i, lb in enumerate(pool_labels(series)):
        name = lb["__name__"]
        if name not in fams:
            fams.add(name)
            lines.append(f"# HELP {name} {name} (bench).")
            lines.append(f"# TYPE {name} counter")
        rest = ",".join(f'{n}="{v}"' for n, v in lb.items() if n not in ("__name__", "job"))
        lines.append(f'{name}{{{rest},bench_target="{k}"}} {rnd * 10 + i % 97}.{i % 10}')
    return ("\n".join(lines) + "\n").encode()


class Exporters:
    def __init__(self, n: int, series: int) -> None:
        self.n, self.series = n, series
        self.ports = [free_port() for _ in range(n)]
        self.rounds = [0] * n
        self.cache: dict[tuple[int, int], bytes] = {}
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(30)

    def _body(self, k: int) -> bytes:
        # each request gets the next round, pages pre-rendered for 8 rounds and reused
        self.rounds[k] += 1
        key = (k, self.rounds[k] % 8)
        if key not in self.cache:
            self.cache[key] = page(self.series, k, key[1])
        return self.cache[key]

    def _run(self) -> None:
        import asyncio

        async def main() -> None:
            for k, port in enumerate(self.ports):

                async def handle(req: web.Request, k: int = k) -> web.Response:
                    return web.Response(
                        body=self._body(k),
                        headers={"Content-Type": "text/plain; version=0.0.4"},
                    )

                app = web.Application()
                app.router.add_get("/metrics", handle)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
            for k in range(self.n):  # pre-render
                for r in range(8):
                    self.cache[(k, r)] = page(self.series, k, r)
            self._ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())


def config(ports: list[int], interval: str) -> str:
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in ports)
    return (
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
        f"scrape_configs:\n  - job_name: bench\n    static_configs:\n"
        f"      - targets: [{targets}]\n"
    )


def scraped_total(port: int) -> float:
    q = urllib.parse.urlencode({"query": "sum(sum_over_time(scrape_samples_scraped[1h]))"})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{q}", timeout=30) as r:
        res = json.load(r)["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


def measure(name: str, args: list[str], port: int, seconds: float, warm: float) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", p)
        time.sleep(warm)
        s0, c0 = scraped_total(port), cpu_seconds(p.pid)
        time.sleep(seconds)
        s1, c1 = scraped_total(port), cpu_seconds(p.pid)
    finally:
        p.terminate()
        p.wait(30)
    samples, cpu = s1 - s0, c1 - c0
    return {"samples": samples, "cpu": cpu, "per_cpu_s": samples / cpu if cpu else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--interval", default="1s")
    args = ap.parse_args()
    ex = Exporters(args.targets, args.series)
    cfg_text = config(ex.ports, args.interval)
    print(
        f"{args.targets} targets x {args.series} series every {args.interval}, "
        f"{args.seconds:.0f} s measured"
    )
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "scrape.yml"
        cfg.write_text(cfg_text)
        po, pp = free_port(), free_port()
        ours = measure(
            "omtsdb",
            [
                sys.executable,
                "-m",
                "omtsdb",
                "serve",
                "--config.file",
                str(cfg),
                "--storage.tsdb.path",
                f"{d}/omtsdb",
                f"--web.listen-address=127.0.0.1:{po}",
                "--log.level=warning",
            ],
            po,
            args.seconds,
            5,
        )
        prom = measure(
            "prometheus",
            [
                str(BIN / "prometheus"),
                f"--config.file={cfg}",
                f"--storage.tsdb.path={d}/prom",
                f"--web.listen-address=127.0.0.1:{pp}",
            ],
            pp,
            args.seconds,
            5,
        )
    for name, r in (("omtsdb", ours), ("prometheus", prom)):
        print(
            f"{name:11s} {r['samples']:>12,.0f} samples  {r['cpu']:7.2f} CPU-s  "
            f"{r['per_cpu_s']:>12,.0f} samples/CPU-s"
        )
    if prom["per_cpu_s"]:
        print(
            f"ratio omtsdb/Prometheus (samples per CPU-second): "
            f"{ours['per_cpu_s'] / prom['per_cpu_s']:.2f}"
        )


if __name__ == "__main__":
    main()
