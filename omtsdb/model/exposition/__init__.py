"""Prometheus text format 0.0.4 and OpenMetrics 1.0: parser and writers."""

from omtsdb.model.exposition.floats import (
    NORMAL_NAN,
    format_exact,
    format_go_f,
    format_go_g,
    format_ts_seconds,
    parse_float,
    parse_ts_seconds,
)
from omtsdb.model.exposition.parser import (
    NO_TS,
    Exposition,
    Format,
    MetricMeta,
    detect_format,
    group_by_series,
    parse,
)
from omtsdb.model.exposition.writer import (
    series_text,
    write_openmetrics,
    write_text_family,
)

__all__ = [
    "NORMAL_NAN",
    "NO_TS",
    "Exposition",
    "Format",
    "MetricMeta",
    "detect_format",
    "format_exact",
    "format_go_f",
    "format_go_g",
    "format_ts_seconds",
    "group_by_series",
    "parse",
    "parse_float",
    "parse_ts_seconds",
    "series_text",
    "write_openmetrics",
    "write_text_family",
]
