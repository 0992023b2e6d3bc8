"""The metrics omtsdb exposes on ``/metrics``.

Names follow Prometheus's own where omtsdb has the same thing (``prometheus_http_requests_total``,
``prometheus_tsdb_head_series``, ...); omtsdb-only metrics are prefixed ``omtsdb_``. Process
metrics read ``/proc/self`` (Linux) at scrape time; Python runtime metrics replace the Go ones.

Storage metrics are read from the TSDB's own counters at scrape time (``tsdb_collector``, through
the ``storage.status.TSDBStatus`` protocol), so the write path pays nothing per sample; WAL fsync
latencies come from a per-fsync hook (``WAL_FSYNC.observe``, set by the composition root).
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import time
from collections.abc import Iterable
from functools import cache

from omtsdb import __version__
from omtsdb.obs.registry import Collector, Counter, Family, Gauge, Histogram, Summary
from omtsdb.storage.status import TSDBStatus

# -- HTTP ---------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "prometheus_http_requests_total", "Counter of HTTP requests.", ("code", "handler")
)
HTTP_DURATION = Histogram(
    "prometheus_http_request_duration_seconds",
    "Histogram of latencies for HTTP requests.",
    ("handler",),
    buckets=(0.1, 0.2, 0.4, 1, 3, 8, 20, 60, 120),
)
HTTP_RESPONSE_SIZE = Histogram(
    "prometheus_http_response_size_bytes",
    "Histogram of response size for HTTP requests.",
    ("handler",),
    buckets=tuple(100 * 10**i for i in range(8)),
)

# -- query engine -------------------------------------------------------------------------------
ENGINE_QUERY_DURATION = Summary(
    "prometheus_engine_query_duration_seconds", "Query timings", ("slice",)
)
for _slice in ("inner_eval", "queue_time"):
    ENGINE_QUERY_DURATION.labels(_slice)
ENGINE_QUERIES = Gauge(
    "prometheus_engine_queries", "The current number of queries being executed or waiting."
)
ENGINE_QUERIES_MAX = Gauge(
    "prometheus_engine_queries_concurrent_max", "The max number of concurrent queries."
)

# -- federation, remote read/write --------------------------------------------------------------
FEDERATION_ERRORS = Counter(
    "prometheus_web_federation_errors_total",
    "Total number of errors that occurred while sending federation responses.",
)
FEDERATION_WARNINGS = Counter(
    "prometheus_web_federation_warnings_total",
    "Total number of warnings that occurred while sending federation responses.",
)
REMOTE_WRITE_REQUESTS = Counter(
    "omtsdb_remote_write_requests_total",
    "Remote write requests received, by the HTTP status code of the answer.",
    ("code",),
)
REMOTE_WRITE_SAMPLES = Counter(
    "omtsdb_remote_write_samples_total",
    "Samples, histogram samples and exemplars accepted by the remote write receiver.",
    ("type",),
)
for _t in ("float", "histogram", "exemplar"):
    REMOTE_WRITE_SAMPLES.labels(_t)
REMOTE_READ_QUERIES = Gauge(
    "prometheus_remote_read_handler_queries",
    "The current number of remote read queries that are either in execution or queued on the "
    "handler.",
)

# -- remote write to upstreams (omtsdb.remote.upstream) -----------------------------------------
_RW_LABELS = ("remote_name", "url")
UPSTREAM_SAMPLES = Counter(
    "prometheus_remote_storage_samples_total",
    "Total number of samples sent to remote storage.",
    _RW_LABELS,
)
UPSTREAM_FAILED = Counter(
    "prometheus_remote_storage_samples_failed_total",
    "Total number of samples which failed on send to remote storage, non-recoverable errors.",
    _RW_LABELS,
)
UPSTREAM_RETRIED = Counter(
    "prometheus_remote_storage_samples_retried_total",
    "Total number of samples which failed on send to remote storage but were retried because "
    "the send error was recoverable.",
    _RW_LABELS,
)
UPSTREAM_DROPPED = Counter(
    "prometheus_remote_storage_samples_dropped_total",
    "Total number of samples which were dropped after being read from the WAL before being "
    "sent via remote write, either via relabelling, due to being too old or unintentionally "
    "because of an unknown reference ID.",
    _RW_LABELS,
)

# -- scraping (omtsdb.scrape) --------------------------------------------------------------------
SCRAPES = Counter(
    "omtsdb_target_scrapes_total",
    "Scrapes made, by scrape pool and outcome (up or down).",
    ("scrape_job", "health"),
)
SCRAPE_SAMPLES = Counter(
    "omtsdb_target_scrape_samples_total",
    "Samples appended by scrapes, after metric relabeling, by scrape pool.",
    ("scrape_job",),
)

# -- storage ------------------------------------------------------------------------------------
WAL_FSYNC = Summary("prometheus_tsdb_wal_fsync_duration_seconds", "Duration of write log fsync.")


def _family(name: str, help_text: str, kind: str, value: float) -> Family:
    f = Family(name, help_text, kind)
    f.add(value)
    return f


def tsdb_collector(status: TSDBStatus) -> Collector:
    """Scrape-time metrics of the embedded TSDB, read through its status protocol."""

    def collect() -> list[Family]:
        head = status.head_status()
        store = status.storage_status()
        samples = Family(
            "prometheus_tsdb_head_samples_appended_total",
            "Total number of appended samples.",
            "counter",
        )
        samples.add(head.samples_appended, (("type", "float"),))
        samples.add(0, (("type", "histogram"),))
        mint, maxt = head.min_time, head.max_time  # I64_MAX / I64_MIN when empty
        out = [
            samples,
            _family(
                "prometheus_tsdb_head_series",
                "Total number of series in the head block.",
                "gauge",
                head.num_series,
            ),
            _family(
                "prometheus_tsdb_head_series_created_total",
                "Total number of series created in the head",
                "counter",
                head.series_created,
            ),
            _family(
                "prometheus_tsdb_head_series_removed_total",
                "Total number of series removed in the head",
                "counter",
                head.series_removed,
            ),
            _family(
                "prometheus_tsdb_head_min_time",
                "Minimum time bound of the head block. The unit is decided by the library "
                "consumer.",
                "gauge",
                mint,
            ),
            _family(
                "prometheus_tsdb_head_max_time",
                "Maximum timestamp of the head block. The unit is decided by the library consumer.",
                "gauge",
                maxt,
            ),
            _family(
                "prometheus_tsdb_head_min_time_seconds",
                "Minimum time bound of the head block.",
                "gauge",
                mint // 1000,
            ),
            _family(
                "prometheus_tsdb_head_max_time_seconds",
                "Maximum timestamp of the head block.",
                "gauge",
                maxt // 1000,
            ),
            _family(
                "prometheus_tsdb_blocks_loaded",
                "Number of currently loaded data blocks",
                "gauge",
                store.blocks_loaded,
            ),
            _family(
                "prometheus_tsdb_retention_limit_seconds",
                "Max age in seconds blocks should be kept in the TSDB.",
                "gauge",
                store.retention_ms / 1000,
            ),
            _family(
                "prometheus_tsdb_retention_limit_bytes",
                "Max number of bytes to be retained in the tsdb blocks, configured 0 means "
                "disabled",
                "gauge",
                store.retention_bytes,
            ),
        ]
        wal = status.wal_status()
        if wal is not None:
            out += [
                _family(
                    "prometheus_tsdb_wal_corruptions_total",
                    "Total number of WAL corruptions.",
                    "counter",
                    wal.corruptions,
                ),
                _family(
                    "prometheus_tsdb_wal_segment_current",
                    "Write log segment index that TSDB is currently writing to.",
                    "gauge",
                    wal.current_segment,
                ),
                _family(
                    "omtsdb_tsdb_wal_records_written_total",
                    "Records written to the write-ahead log.",
                    "counter",
                    wal.records,
                ),
                _family(
                    "omtsdb_tsdb_wal_written_bytes_total",
                    "Bytes written to the write-ahead log.",
                    "counter",
                    wal.bytes_written,
                ),
            ]
        return out

    return collect


# -- process, Python, build ---------------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@cache
def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


@cache
def _fallback_start() -> float:
    return time.time()


def process_families() -> list[Family]:
    out: list[Family] = []
    cpu: float
    start: float | None = None
    rss = vsize = None
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read().decode()
        rest = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(rest[11]) + int(rest[12])) / _TICKS
        boot = _boot_time()
        if boot is not None:
            start = boot + int(rest[19]) / _TICKS
        vsize, rss = int(rest[20]), int(rest[21]) * _PAGE
    except (OSError, IndexError, ValueError):
        t = os.times()
        cpu = t.user + t.system
    out.append(
        _family(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            cpu,
        )
    )
    out.append(
        _family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            start if start is not None else _fallback_start(),
        )
    )
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out.append(
        _family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", rss)
    )
    if vsize is not None:
        out.append(
            _family("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", vsize)
        )
    with contextlib.suppress(OSError):
        out.append(
            _family(
                "process_open_fds",
                "Number of open file descriptors.",
                "gauge",
                len(os.listdir("/proc/self/fd")),
            )
        )
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        out.append(
            _family("process_max_fds", "Maximum number of open file descriptors.", "gauge", soft)
        )
    return out


def python_families() -> list[Family]:
    v = platform.python_version_tuple()
    info = Family("python_info", "Python platform information", "gauge")
    info.add(
        1,
        (
            ("implementation", platform.python_implementation()),
            ("major", v[0]),
            ("minor", v[1]),
            ("patchlevel", v[2]),
            ("version", platform.python_version()),
        ),
    )
    collected = Family(
        "python_gc_objects_collected_total", "Objects collected during gc", "counter"
    )
    uncollectable = Family(
        "python_gc_objects_uncollectable_total",
        "Uncollectable objects found during GC",
        "counter",
    )
    collections = Family(
        "python_gc_collections_total",
        "Number of times this generation was collected",
        "counter",
    )
    for gen, st in enumerate(gc.get_stats()):
        lb = (("generation", str(gen)),)
        collected.add(st.get("collected", 0), lb)
        uncollectable.add(st.get("uncollectable", 0), lb)
        collections.add(st.get("collections", 0), lb)
    threads = _family("python_threads", "Number of live Python threads.", "gauge", _thread_count())
    return [info, collected, uncollectable, collections, threads]


def _thread_count() -> int:
    import threading

    return threading.active_count()


def build_families() -> list[Family]:
    f = Family(
        "omtsdb_build_info",
        "A metric with a constant '1' value labeled by the omtsdb version and the Python "
        "version it runs on.",
        "gauge",
    )
    f.add(1, (("pythonversion", platform.python_version()), ("version", __version__)))
    ready = _family(
        "prometheus_ready",
        "Whether Prometheus startup was fully completed and the server is ready for normal "
        "operation.",
        "gauge",
        1,
    )
    return [f, ready]


def runtime_families() -> Iterable[Family]:
    """Process, Python and build information (scrape-time)."""
    return [*process_families(), *python_families(), *build_families()]
