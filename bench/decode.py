"""Block decode speed: a full decode of every series, and one hour of every series.

python -m bench.decode [--set tsbs] [--hosts 100] [--hours 24]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import generators
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.tsdb.block import reader as block_reader
from omtsdb.tsdb.block.reader import Block
from omtsdb.tsdb.block.writer import write_block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="tsbs", choices=sorted(generators.SETS))
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    kw: dict[str, float] = {"hours": args.hours}
    kw["series" if args.set == "avalanche" else "hosts"] = args.hosts
    data = sorted(generators.SETS[args.set](**kw), key=lambda s: s[0].sort_key())  # type: ignore[operator]
    mint = min(int(s[1][0]) for s in data)
    maxt = max(int(s[1][-1]) for s in data)
    with tempfile.TemporaryDirectory() as tmp:
        meta = write_block(Path(tmp), data, min_time=mint, max_time=maxt + 1, fsync=False)
        assert meta is not None
        b = Block(Path(tmp) / meta.ulid)
        decoded = [0]
        real = block_reader.decode_chunk

        def counting(buf, base=None, ts=None):  # type: ignore[no-untyped-def]
            out = real(buf, base, ts)
            decoded[0] += out[0].size
            return out

        block_reader.decode_chunk = counting  # type: ignore[assignment]
        every = [Matcher(MatchType.RE, "__name__", ".+")]
        best_full = best_hour = float("inf")
        n_hour = 0
        for _ in range(args.runs):
            t = time.perf_counter()
            n = sum(len(s) for s in b.select(every, mint, maxt))
            best_full = min(best_full, time.perf_counter() - t)
            decoded[0] = 0
            t = time.perf_counter()
            n_hour = sum(len(s) for s in b.select(every, maxt - 3_600_000, maxt))
            best_hour = min(best_hour, time.perf_counter() - t)
        block_reader.decode_chunk = real
    print(
        f"{args.set}: {meta.num_series} series, {meta.num_samples} samples, "
        f"{meta.num_chunks} chunks ({meta.num_samples / meta.num_chunks:.0f} samples a chunk)"
    )
    print(f"full decode: {n / best_full / 1e6:.1f} M samples/s ({best_full:.3f} s)")
    print(
        f"last hour: {n_hour} samples returned, {decoded[0]} decoded "
        f"({decoded[0] / meta.num_samples:.1%} of the block) in {best_hour:.3f} s"
    )


if __name__ == "__main__":
    main()
