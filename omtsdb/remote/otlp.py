"""OTLP/HTTP metrics (``ExportMetricsServiceRequest``) translated as Prometheus 3 does by
default (``UnderscoreEscapingWithSuffixes``): names get unit and type suffixes, attribute names
are escaped to underscores, ``service.name``/``service.namespace`` give ``job`` and
``service.instance.id`` gives ``instance``, the other resource attributes go to ``target_info``.
Gauges, sums and classic histograms and summaries are supported; exponential histograms and
delta temporality are not (skipped and reported).

Every data point's ``start_time_unix_nano`` becomes the start timestamp (ST, in ms; 0 when
unset) of each sample made from it, as Prometheus's translator passes it to its appender: for
gauges too, and for all of a histogram's or summary's series; ``target_info`` has none."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from omtsdb.errors import BadDataError
from omtsdb.model.exposition.floats import format_go_g
from omtsdb.model.labels import Labels
from omtsdb.model.samples import STALE_NAN
from omtsdb.remote.protoload import load

_PB = load("otlp_metrics.proto")
CUMULATIVE = 2
NO_RECORDED_VALUE = 1

_UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_INVALID_LABEL_CHAR = re.compile(r"[^A-Za-z0-9_]")
_PROMOTED = ("service.name", "service.namespace", "service.instance.id")


@dataclass(slots=True)
class Translated:
    # labels, timestamp (ms), value, start timestamp (ms, 0 = unknown)
    samples: list[tuple[Labels, int, float, int]] = field(default_factory=list)
    metadata: list[tuple[str, str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _unit_tokens(unit: str) -> list[str]:
    if not unit or "{" in unit:
        unit = re.sub(r"\{[^}]*\}", "", unit)
    main, _, per = unit.partition("/")
    out: list[str] = []
    main = main.strip()
    if main:
        m = _UNITS.get(main, main)
        out.extend(t for t in _NON_ALNUM.split(m) if t)
    per = per.strip()
    if per:
        p = _PER_UNITS.get(per, per)
        toks = [t for t in _NON_ALNUM.split(p) if t]
        if toks:
            out.append("per")
            out.extend(toks)
    return out


def metric_name(name: str, unit: str, kind: str) -> str:
    """Prometheus 3 normalisation of an OTLP metric name. ``kind``: counter, gauge, other."""
    tokens = [t for t in _NON_ALNUM.split(name) if t]
    for t in _unit_tokens(unit):
        if t not in tokens:
            tokens.append(t)
    if kind == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if kind == "gauge" and unit == "1":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    if out and out[0].isdigit():
        out = "_" + out
    return out


def label_name(key: str) -> str:
    out = _INVALID_LABEL_CHAR.sub("_", key)
    if out and out[0].isdigit():
        out = "key_" + out
    elif out.startswith("_") and not out.startswith("__"):
        out = "key" + out
    return out


def _value_str(v: Any) -> str:
    kind = v.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return str(v.string_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return format_go_g(v.double_value)
    if kind == "bytes_value":
        return bytes(v.bytes_value).hex()
    if kind == "array_value":
        return json.dumps([_value_str(x) for x in v.array_value.values])
    return json.dumps({kv.key: _value_str(kv.value) for kv in v.kvlist_value.values})


def _attrs(kvs: Iterable[Any]) -> dict[str, str]:
    """Escaped label name -> value; colliding names join their values with ';' in key order."""
    merged: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for kv in kvs:
        merged[label_name(kv.key)].append((kv.key, _value_str(kv.value)))
    return {n: ";".join(v for _, v in sorted(vals)) for n, vals in merged.items()}


def _ms(nanos: int) -> int:
    return int(nanos) // 1_000_000


def decode_request(body: bytes, json_encoded: bool = False) -> Any:
    """An ``ExportMetricsServiceRequest`` from OTLP/HTTP protobuf or OTLP/HTTP JSON."""
    if json_encoded:
        return _decode_json(body)
    try:
        return _PB["ExportMetricsServiceRequest"].FromString(body)
    except DecodeError as e:
        raise BadDataError(f"decoding OTLP metrics request: {e}") from None


def _drop_exemplars(node: Any) -> Any:
    # exemplars carry hex trace/span ids (base64 in protobuf's JSON mapping) and are not stored
    if isinstance(node, dict):
        return {k: _drop_exemplars(v) for k, v in node.items() if k != "exemplars"}
    if isinstance(node, list):
        return [_drop_exemplars(v) for v in node]
    return node


def _decode_json(body: bytes) -> Any:
    try:
        doc = json.loads(body)
        msg = _PB["ExportMetricsServiceRequest"]()
        json_format.ParseDict(_drop_exemplars(doc), msg, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as e:
        raise BadDataError(f"decoding OTLP metrics request: {e}") from None
    return msg


def translate(req: Any) -> Translated:
    out = Translated()
    for rm in req.resource_metrics:
        res = {kv.key: _value_str(kv.value) for kv in rm.resource.attributes}
        base: dict[str, str] = {}
        name, ns = res.get("service.name", ""), res.get("service.namespace", "")
        if name:
            base["job"] = f"{ns}/{name}" if ns else name
        if res.get("service.instance.id"):
            base["instance"] = res["service.instance.id"]
        latest = None
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                t = _metric(m, base, out)
                if t is not None and (latest is None or t > latest):
                    latest = t
        info = {k: v for k, v in _attrs(rm.resource.attributes).items()}
        for k in _PROMOTED:
            info.pop(label_name(k), None)
        if info and latest is not None and base:
            lb = Labels({**info, **base, "__name__": "target_info"})
            out.samples.append((lb, latest, 1.0, 0))
            out.metadata.append(("target_info", "gauge", "Target metadata", ""))
    return out


def _point_labels(base: dict[str, str], dp: Any, name: str, **extra: str) -> Labels:
    return Labels({**_attrs(dp.attributes), **base, **extra, "__name__": name})


def _metric(m: Any, base: dict[str, str], out: Translated) -> int | None:
    kind = m.WhichOneof("data")
    latest: int | None = None

    def add(lb: Labels, t: int, v: float, dp: Any) -> None:
        nonlocal latest
        v = STALE_NAN if dp.flags & NO_RECORDED_VALUE else v
        out.samples.append((lb, t, v, _ms(dp.start_time_unix_nano)))
        latest = t if latest is None or t > latest else latest

    if kind == "gauge" or kind == "sum":
        data = m.gauge if kind == "gauge" else m.sum
        counter = kind == "sum" and m.sum.is_monotonic
        if kind == "sum" and m.sum.aggregation_temporality != CUMULATIVE:
            out.skipped.append(f"{m.name}: only cumulative sums are supported")
            return None
        name = metric_name(m.name, m.unit, "counter" if counter else "gauge")
        out.metadata.append((name, "counter" if counter else "gauge", m.description, m.unit))
        for dp in data.data_points:
            v = float(dp.as_int) if dp.WhichOneof("value") == "as_int" else dp.as_double
            add(_point_labels(base, dp, name), _ms(dp.time_unix_nano), v, dp)
    elif kind == "histogram":
        if m.histogram.aggregation_temporality != CUMULATIVE:
            out.skipped.append(f"{m.name}: only cumulative histograms are supported")
            return None
        name = metric_name(m.name, m.unit, "other")
        out.metadata.append((name, "histogram", m.description, m.unit))
        for dp in m.histogram.data_points:
            t = _ms(dp.time_unix_nano)
            cum = 0
            bounds = list(dp.explicit_bounds)
            counts = list(dp.bucket_counts)
            for i, bound in enumerate(bounds):
                cum += counts[i] if i < len(counts) else 0
                le = format_go_g(bound)
                add(_point_labels(base, dp, name + "_bucket", le=le), t, float(cum), dp)
            add(_point_labels(base, dp, name + "_bucket", le="+Inf"), t, float(dp.count), dp)
            if dp.HasField("sum"):
                add(_point_labels(base, dp, name + "_sum"), t, dp.sum, dp)
            add(_point_labels(base, dp, name + "_count"), t, float(dp.count), dp)
    elif kind == "summary":
        name = metric_name(m.name, m.unit, "other")
        out.metadata.append((name, "summary", m.description, m.unit))
        for dp in m.summary.data_points:
            t = _ms(dp.time_unix_nano)
            for q in dp.quantile_values:
                lb = _point_labels(base, dp, name, quantile=format_go_g(q.quantile))
                add(lb, t, q.value, dp)
            add(_point_labels(base, dp, name + "_sum"), t, dp.sum, dp)
            add(_point_labels(base, dp, name + "_count"), t, float(dp.count), dp)
    else:
        out.skipped.append(f"{m.name}: {kind or 'empty'} metrics are not supported")
    return latest
