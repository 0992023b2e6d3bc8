"""WAL: record round trips, corruption repair, checkpoints, group commit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.model import Labels
from omtsdb.model.samples import STALE_NAN
from omtsdb.tsdb.wal import WAL, SamplesRecord, SeriesRecord
from omtsdb.tsdb.wal.records import HEADER_SIZE, encode, iter_records

label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([STALE_NAN, -0.0, 5e-324, float("nan")]),
)


def samples(n: int, base: int = 0) -> SamplesRecord:
    refs = np.arange(n, dtype=np.uint64) % 7
    ts = np.arange(n, dtype=np.int64) + base
    vs = np.arange(n, dtype=np.float64) * 0.5
    vs[::5] = STALE_NAN
    return SamplesRecord(refs, ts, vs)


def same(a: SeriesRecord | SamplesRecord, b: SeriesRecord | SamplesRecord) -> bool:
    if isinstance(a, SeriesRecord) and isinstance(b, SeriesRecord):
        return a.refs.tolist() == b.refs.tolist() and a.labels == b.labels
    if isinstance(a, SamplesRecord) and isinstance(b, SamplesRecord):
        return (
            a.refs.tolist() == b.refs.tolist()
            and a.ts.tolist() == b.ts.tolist()
            and a.vs.view(np.uint64).tolist() == b.vs.view(np.uint64).tolist()
        )
    return False


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.dictionaries(label_text.filter(bool), label_text, max_size=4), max_size=5),
    st.lists(
        st.tuples(st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**63 - 1), floats), max_size=20
    ),
)
def test_record_round_trip(series: list[dict[str, str]], smp: list[tuple[int, int, float]]) -> None:
    sr = SeriesRecord(np.arange(len(series), dtype=np.uint64), [Labels(d) for d in series])
    refs = np.array([s[0] for s in smp], np.uint64)
    ts = np.array([s[1] for s in smp], np.int64)
    vs = np.array([s[2] for s in smp], np.float64)
    sa = SamplesRecord(refs, ts, vs)
    recs, _end, err = iter_records(encode(sr) + encode(sa))
    assert err is None and len(recs) == 2
    assert same(recs[0], sr) and same(recs[1], sa)


def write_wal(d: Path, n: int = 5, **kw: object) -> list[SeriesRecord | SamplesRecord]:
    wal = WAL.open(d, fsync=False, **kw)  # type: ignore[arg-type]
    list(wal.replay())
    recs: list[SeriesRecord | SamplesRecord] = [
        SeriesRecord(np.arange(3, dtype=np.uint64), [Labels({"a": str(i)}) for i in range(3)])
    ]
    recs += [samples(10, base=i * 100) for i in range(n)]
    for r in recs:
        wal.log([r])
    wal.close()
    return recs


def replay(d: Path) -> tuple[list[SeriesRecord | SamplesRecord], WAL]:
    wal = WAL.open(d, fsync=False)
    got = list(wal.replay())
    return got, wal


def test_replay_all(tmp_path: Path) -> None:
    recs = write_wal(tmp_path)
    got, wal = replay(tmp_path)
    assert len(got) == len(recs) and all(same(a, b) for a, b in zip(got, recs, strict=True))
    assert wal.stats.corruptions_repaired == 0


def test_torn_tail_at_every_offset(tmp_path: Path) -> None:
    recs = write_wal(tmp_path / "src", n=2)
    seg = tmp_path / "src" / "00000000"
    data = seg.read_bytes()
    last_len = len(encode(recs[-1]))
    start = len(data) - last_len
    for cut in range(start, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "00000000").write_bytes(data[:cut])
        got, wal = replay(d)
        assert len(got) == len(recs) - 1
        assert all(same(a, b) for a, b in zip(got, recs, strict=False))
        assert wal.stats.corruptions_repaired == (1 if cut > start else 0)
        assert (d / "00000000").stat().st_size == start
        # the WAL keeps accepting writes after the repair, and they replay
        wal.log([recs[-1]])
        wal.close()
        got2, w2 = replay(d)
        assert len(got2) == len(recs)
        w2.close()


@pytest.mark.parametrize("where", ["last", "middle"])
def test_bit_flip(tmp_path: Path, where: str) -> None:
    recs = write_wal(tmp_path, n=4)
    seg = tmp_path / "00000000"
    data = bytearray(seg.read_bytes())
    sizes = [len(encode(r)) for r in recs]
    k = len(recs) - 1 if where == "last" else 2
    off = sum(sizes[:k]) + HEADER_SIZE + 5
    data[off] ^= 0x10
    seg.write_bytes(bytes(data))
    got, wal = replay(tmp_path)
    assert len(got) == k
    assert all(same(a, b) for a, b in zip(got, recs, strict=False))
    assert wal.stats.corruptions_repaired == 1


def test_zero_filled_page_and_later_segments(tmp_path: Path) -> None:
    recs = write_wal(tmp_path, n=3, segment_size=300)
    segs = sorted(p for p in tmp_path.iterdir() if p.name.isdigit())
    assert len(segs) >= 3
    # zero-fill the tail of the second segment: it and everything after is cut
    second = segs[1]
    good = second.read_bytes()
    second.write_bytes(good + b"\0" * 4096)
    got, wal = replay(tmp_path)
    assert wal.stats.corruptions_repaired == 1
    assert wal.stats.segments_removed == len(segs) - 2
    assert all(same(a, b) for a, b in zip(got, recs, strict=False))


def test_truncated_and_empty_segment(tmp_path: Path) -> None:
    recs = write_wal(tmp_path, n=3, segment_size=300)
    segs = sorted(p for p in tmp_path.iterdir() if p.name.isdigit())
    segs[-1].write_bytes(segs[-1].read_bytes()[:7])
    (tmp_path / f"{int(segs[-1].name) + 1:08d}").write_bytes(b"")
    got, wal = replay(tmp_path)
    assert len(got) >= 1 and all(same(a, b) for a, b in zip(got, recs, strict=False))
    assert wal.stats.corruptions_repaired == 1


def test_checkpoint_keeps_live_series_and_recent_samples(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path, fsync=False, segment_size=200)
    list(wal.replay())
    wal.log([SeriesRecord(np.array([0, 1], np.uint64), [Labels({"a": "0"}), Labels({"a": "1"})])])
    wal.log(
        [
            SamplesRecord(
                np.array([0, 1, 0, 1], np.uint64),
                np.array([1, 1, 50, 50]),
                np.array([1.0, 2.0, 3.0, 4.0]),
            )
        ]
    )
    upto = wal.cut_segment()
    wal.log([SamplesRecord(np.array([0], np.uint64), np.array([60]), np.array([5.0]))])
    wal.checkpoint(upto_segment=upto, keep_series=lambda r: r == 0, mint=10)
    wal.close()
    got, w2 = replay(tmp_path)
    series = [r for r in got if isinstance(r, SeriesRecord)]
    smp = [r for r in got if isinstance(r, SamplesRecord)]
    assert [lb for r in series for lb in r.labels] == [Labels({"a": "0"})]
    assert [(int(r.refs[i]), int(r.ts[i])) for r in smp for i in range(r.ts.size)] == [
        (0, 50),
        (0, 60),
    ]
    assert all(int(p.name) > upto for p in tmp_path.iterdir() if p.name.isdigit())
    w2.close()


def test_corrupt_checkpoint_does_not_block_start(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path, fsync=False)
    list(wal.replay())
    wal.log([samples(10)])
    upto = wal.cut_segment()
    wal.checkpoint(upto_segment=upto, keep_series=lambda r: r >= 0, mint=0)
    wal.close()
    cp = next(p for p in tmp_path.iterdir() if p.name.startswith("checkpoint."))
    f = cp / "00000000"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    _got, w2 = replay(tmp_path)
    assert w2.stats.corruptions_repaired == 1
    w2.close()


def test_group_commit_threads(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path, fsync=True)
    list(wal.replay())
    n_threads, per = 4, 50

    def work(k: int) -> None:
        for i in range(per):
            wal.log([samples(3, base=k * 10_000 + i * 10)])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wal.stats.fsyncs <= n_threads * per
    wal.close()
    got, w2 = replay(tmp_path)
    assert len(got) == n_threads * per
    bases = sorted(int(r.ts[0]) for r in got if isinstance(r, SamplesRecord))
    assert bases == sorted(k * 10_000 + i * 10 for k in range(n_threads) for i in range(per))
    w2.close()
