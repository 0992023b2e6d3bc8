"""Writers for the text format 0.0.4 and OpenMetrics text (with timestamps, for dumps)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from omtsdb.model.exposition.floats import format_exact, format_go_g, format_ts_seconds
from omtsdb.model.labels import METRIC_NAME, Labels, is_legacy_label_name, is_legacy_metric_name
from omtsdb.model.samples import F64, I64


def escape_value(s: str) -> str:
    if "\\" in s or '"' in s or "\n" in s:
        return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return s


def escape_help(s: str, openmetrics: bool = False) -> str:
    s = s.replace("\\", "\\\\").replace("\n", "\\n")
    return s.replace('"', '\\"') if openmetrics else s


def series_text(labels: Labels) -> str:
    """``name{a="1"}`` or, for a name that needs quoting, ``{"my.name", a="1"}``."""
    name = labels.get(METRIC_NAME)
    parts = []
    for n, v in labels:
        if n == METRIC_NAME:
            continue
        ln = n if is_legacy_label_name(n) else f'"{escape_value(n)}"'
        parts.append(f'{ln}="{escape_value(v)}"')
    if name and not is_legacy_metric_name(name):
        return "{" + ",".join([f'"{escape_value(name)}"', *parts]) + "}"
    return name + ("{" + ",".join(parts) + "}" if parts else "")


def write_openmetrics(
    series: Iterable[tuple[Labels, I64, F64]], *, exact: bool = True
) -> Iterator[str]:
    """OpenMetrics text with timestamps, one chunk of text per series, then ``# EOF``.

    ``exact`` writes NaN payloads other than Prometheus's NaN with the ``NaN:0x…`` extension,
    so that our parser gives every float64 back bit-for-bit; without it they print ``NaN``."""
    fmt = format_exact if exact else format_go_g
    for labels, ts, vs in series:
        prefix = series_text(labels) + " "
        vals = [fmt(v) for v in vs.tolist()]
        if not exact:
            vals = ["NaN" if v.startswith("NaN") else v for v in vals]
        tss = [format_ts_seconds(t) for t in ts.tolist()]
        yield "".join(f"{prefix}{v} {t}\n" for v, t in zip(vals, tss, strict=True))
    yield "# EOF\n"


def write_text_family(
    name: str,
    mtype: str,
    help_text: str,
    samples: Iterable[tuple[Labels, float, int | None]],
) -> str:
    """One metric family in text format 0.0.4 (``# HELP``, ``# TYPE``, samples)."""
    out = []
    if help_text:
        out.append(f"# HELP {name} {escape_help(help_text)}\n")
    if mtype:
        out.append(f"# TYPE {name} {mtype}\n")
    for labels, v, t in samples:
        line = f"{series_text(labels)} {format_go_g(v)}"
        if t is not None:
            line += f" {t}"
        out.append(line + "\n")
    return "".join(out)
