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
        every = [Matcher(MatchType.RE, "__name__", ".+")]
        best_full = best_hour = float("inf")
        n = n_hour = 0
        for _ in range(args.runs):
            cold(b)
            t = time.perf_counter()
            n = sum(len(s) for s in b.select(every, mint, maxt))
            best_full = min(best_full, time.perf_counter() - t)
            cold(b)
            t = time.perf_counter()
            n_hour = sum(len(s) for s in b.select(every, maxt - 3_600_000, maxt))
            best_hour = min(best_hour, time.perf_counter() - t)
        # samples in the chunks that overlap the last hour: what the query had to decode
        ct = b.chunk_table
        hit = (ct["maxt"] >= maxt - 3_600_000) & (ct["mint"] <= maxt)
        decoded = int(ct["n"][hit].sum())
    print(
        f"{args.set}: {meta.num_series} series, {meta.num_samples} samples, "
        f"{meta.num_chunks} chunks ({meta.num_samples / meta.num_chunks:.0f} samples a chunk)"
    )
    print(f"full decode: {n / best_full / 1e6:.1f} M samples/s ({best_full:.3f} s)")
    print(
        f"last hour: {n_hour} samples returned, {decoded} decoded "
        f"({decoded / meta.num_samples:.1%} of the block) in {best_hour:.3f} s: "
        f"{decoded / best_hour / 1e6:.1f} M decoded samples/s"
    )


def cold(b: Block) -> None:
    """Forget every decoded chunk and shared timestamps: each run decodes from the bytes."""
    block_reader.CHUNK_CACHE.drop_block(b._key)
    b._ts_cache.clear()
    b._ts_concat.clear()


if __name__ == "__main__":
    main()
