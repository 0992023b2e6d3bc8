"""Building remote-write and remote-read requests (tests, benchmarks, tools)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from omtsdb.remote.protoload import load
from omtsdb.remote.wire import snappy_encode

_PB = load("prometheus.proto")
_V2 = load("write_v2.proto")

# labels and samples: (timestamp, value), or for 2.0 (timestamp, value, start timestamp)
SeriesSpec = tuple[Mapping[str, str], Sequence[tuple[int, float] | tuple[int, float, int]]]


def write_request_v1(
    series: Iterable[SeriesSpec], metadata: Iterable[tuple[str, int, str, str]] = ()
) -> bytes:
    """Serialized ``prometheus.WriteRequest`` (labels sorted, as senders must)."""
    wr = _PB["WriteRequest"]()
    for labels, samples in series:
        ts = wr.timeseries.add()
        for n in sorted(labels):
            ts.labels.add(name=n, value=labels[n])
        for t, v, *_ in samples:
            ts.samples.add(timestamp=t, value=v)
    for name, typ, help_, unit in metadata:
        wr.metadata.add(metric_family_name=name, type=typ, help=help_, unit=unit)
    return bytes(wr.SerializeToString())


def write_request_v2(
    series: Iterable[SeriesSpec], metadata: Mapping[str, tuple[int, str, str]] | None = None
) -> bytes:
    """Serialized ``io.prometheus.write.v2.Request`` with its symbols table; ``metadata`` maps
    a metric name to (type, help, unit) attached to its series."""
    req = _V2["Request"]()
    symbols: dict[str, int] = {"": 0}

    def ref(s: str) -> int:
        if s not in symbols:
            symbols[s] = len(symbols)
        return symbols[s]

    for labels, samples in series:
        ts = req.timeseries.add()
        for n in sorted(labels):
            ts.labels_refs.extend([ref(n), ref(labels[n])])
        for t, v, *st in samples:
            ts.samples.add(timestamp=t, value=v, start_timestamp=st[0] if st else 0)
        md = (metadata or {}).get(labels.get("__name__", ""))
        if md:
            ts.metadata.type = md[0]
            ts.metadata.help_ref = ref(md[1])
            ts.metadata.unit_ref = ref(md[2])
    req.symbols.extend(symbols)
    return bytes(req.SerializeToString())


def read_request(
    queries: Iterable[tuple[int, int, Sequence[tuple[int, str, str]]]],
    accepted: Sequence[int] = (),
) -> bytes:
    """Serialized ``ReadRequest``: queries of (start ms, end ms, [(type, name, value)])."""
    rr = _PB["ReadRequest"]()
    for start, end, matchers in queries:
        q = rr.queries.add(start_timestamp_ms=start, end_timestamp_ms=end)
        for typ, name, value in matchers:
            q.matchers.add(type=typ, name=name, value=value)
    rr.accepted_response_types.extend(accepted)
    return bytes(rr.SerializeToString())


def snappy(data: bytes) -> bytes:
    return snappy_encode(data)
