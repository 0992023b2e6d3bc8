"""Remote-write ingest throughput side by side with Prometheus 3.5.

    python -m bench.ingest [--requests 600] [--series 500] [--pool 5000] [--conns 4]

Pre-builds snappy-compressed remote write 1.0 requests of ``--series`` series x 1 sample with
node_exporter-like labels (a pool of ``--pool`` series sent in rotation, the timestamp advancing
one scrape per round), starts omtsdb (``omtsdb serve``, WAL with fsync) and Prometheus
(``--web.enable-remote-write-receiver``) on loopback, sends each the same requests over
``--conns`` keep-alive connections, and reports samples/s over wall time and per CPU-second of
the server process (utime+stime from /proc), plus the ratios omtsdb/Prometheus. The first round
(series creation) is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from omtsdb.remote.build import snappy, write_request_v1

BIN = Path(os.environ.get("OMTSDB_PEER_BIN", "/opt/prom3/usr/bin"))
ROOT = Path(__file__).resolve().parent.parent
T0 = (int(time.time()) - 3600) * 1000
MODES = ("idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice")


def pool_labels(n: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    host = 0
    while len(out) < n:
        inst = {"instance": f"node-{host:03d}.dc1.example.com:9100", "job": "node"}
        for cpu in range(8):
            for mode in MODES:
                out.append(
                    {"__name__": "node_cpu_seconds_total", "cpu": str(cpu), "mode": mode, **inst}
                )
        for dev in ("sda", "sdb", "nvme0n1"):
            for m in (
                "node_disk_read_bytes_total",
                "node_disk_written_bytes_total",
                "node_disk_io_time_seconds_total",
            ):
                out.append({"__name__": m, "device": dev, **inst})
        for dev in ("eth0", "eth1", "lo"):
            for m in (
                "node_network_receive_bytes_total",
                "node_network_transmit_bytes_total",
                "node_network_receive_packets_total",
            ):
                out.append({"__name__": m, "device": dev, **inst})
        for m in (
            "node_load1",
            "node_load5",
            "node_load15",
            "node_memory_MemFree_bytes",
            "node_memory_MemAvailable_bytes",
            "node_memory_Cached_bytes",
        ):
            out.append({"__name__": m, **inst})
        for mp in ("/", "/var", "/home"):
            for m in ("node_filesystem_avail_bytes", "node_filesystem_size_bytes"):
                out.append(
                    {
                        "__name__": m,
                        "mountpoint": mp,
                        "fstype": "ext4",
                        "device": "/dev/sda1",
                        **inst,
                    }
                )
        host += 1
    return out[:n]


def build(nreq: int, per: int, pool: int) -> list[bytes]:
    labels = pool_labels(pool)
    slots = max(1, pool // per)
    reqs = []
    for k in range(nreq):
        rnd, slot = divmod(k, slots)
        t = T0 + rnd * 15_000
        chunk = labels[slot * per : (slot + 1) * per]
        series = [(lb, [(t, float((rnd * 7 + i) % 1000) * 1.5)]) for i, lb in enumerate(chunk)]
        reqs.append(snappy(write_request_v1(series)))
    return reqs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exited {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_all(port: int, reqs: list[bytes], conns: int, slots: int) -> None:
    """Request ``k`` carries slot ``k % slots``; each connection owns whole slots (as a
    Prometheus shard owns its series) so every series' samples arrive in order."""
    errors: list[str] = []

    def worker(w: int) -> None:
        mine = [b for k, b in enumerate(reqs) if (k % slots) % conns == w]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdr = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        }
        for body in mine:
            c.request("POST", "/api/v1/write", body, hdr)
            r = c.getresponse()
            data = r.read()
            if r.status != 204:
                errors.append(f"{r.status} {data[:200]!r}")
        c.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")


def measure(
    name: str,
    args: list[str],
    ready: str,
    port: int,
    warm: list[bytes],
    timed: list[bytes],
    conns: int,
    per: int,
) -> tuple[float, float]:
    p = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        wait_ready(ready, p)
        send_all(port, warm, conns, len(warm))
        c0, t0 = cpu_seconds(p.pid), time.perf_counter()
        send_all(port, timed, conns, len(warm))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(p.pid) - c0
    finally:
        p.terminate()
        p.wait(timeout=30)
    n = len(timed) * per
    print(
        f"{name:10s} {n} samples in {wall:.2f} s wall, {cpu:.2f} CPU-s: "
        f"{n / wall:,.0f} samples/s, {n / cpu:,.0f} samples/CPU-s"
    )
    return n / wall, n / cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--series", type=int, default=500)
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--conns", type=int, default=4)
    a = ap.parse_args()
    slots = max(1, a.pool // a.series)
    reqs = build(a.requests + slots, a.series, a.pool)
    warm, timed = reqs[:slots], reqs[slots:]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        op, pp = free_port(), free_port()
        o = measure(
            "omtsdb",
            [
                sys.executable,
                "-m",
                "omtsdb",
                "serve",
                "--storage.tsdb.path",
                str(tmp / "o"),
                f"--web.listen-address=127.0.0.1:{op}",
                "--log.level=warning",
            ],
            f"http://127.0.0.1:{op}/-/ready",
            op,
            warm,
            timed,
            a.conns,
            a.series,
        )
        cfg = tmp / "p.yml"
        cfg.write_text("global: {scrape_interval: 15s}\n")
        p = measure(
            "prometheus",
            [
                str(BIN / "prometheus"),
                "--config.file",
                str(cfg),
                "--storage.tsdb.path",
                str(tmp / "p"),
                f"--web.listen-address=127.0.0.1:{pp}",
                "--web.enable-remote-write-receiver",
                "--storage.tsdb.retention.time=100y",
                "--storage.tsdb.min-block-duration=2h",
            ],
            f"http://127.0.0.1:{pp}/-/ready",
            pp,
            warm,
            timed,
            a.conns,
            a.series,
        )
    print(f"ratio omtsdb/prometheus: wall {o[0] / p[0]:.2f}, per CPU-s {o[1] / p[1]:.2f}")


if __name__ == "__main__":
    main()
