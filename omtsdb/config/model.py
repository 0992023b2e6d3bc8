"""Prometheus configuration as frozen dataclasses (the subset omtsdb honours).

Durations are integer milliseconds; regexes are kept as their source text (anchored when used).
``omtsdb.config.load`` builds these from YAML with Prometheus's defaults and validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omtsdb.model.labels import Labels

DEFAULT_SCRAPE_PROTOCOLS: tuple[str, ...] = (
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
)


@dataclass(frozen=True)
class BasicAuth:
    username: str = ""
    password: str = ""
    password_file: str = ""
    username_file: str = ""


@dataclass(frozen=True)
class Authorization:
    type: str = "Bearer"
    credentials: str = ""
    credentials_file: str = ""


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False
    ca: str = ""  # inline PEM (exclusive with ca_file)
    cert: str = ""
    key: str = ""
    min_version: str = ""  # "TLS10" .. "TLS13", "" = Go's default
    max_version: str = ""


@dataclass(frozen=True)
class HTTPClientConfig:
    """Auth and transport for outgoing requests (scrapes, remote write, Alertmanager)."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None  # bearer_token/_file become this
    tls_config: TLSConfig = TLSConfig()
    follow_redirects: bool = True
    enable_http2: bool = True
    proxy_url: str = ""
    no_proxy: str = ""
    proxy_from_environment: bool = False


@dataclass(frozen=True)
class RelabelConfig:
    source_labels: tuple[str, ...] = ()
    separator: str = ";"
    regex: str = "(.*)"
    modulus: int = 0
    target_label: str = ""
    replacement: str = "$1"
    action: str = "replace"


@dataclass(frozen=True)
class StaticConfig:
    targets: tuple[str, ...] = ()
    labels: Labels = Labels()  # noqa: RUF009 (immutable)


@dataclass(frozen=True)
class FileSDConfig:
    files: tuple[str, ...] = ()
    refresh_interval_ms: int = 300_000


@dataclass(frozen=True)
class ScrapeConfig:
    job_name: str
    scrape_interval_ms: int = 60_000
    scrape_timeout_ms: int = 10_000
    scrape_protocols: tuple[str, ...] = DEFAULT_SCRAPE_PROTOCOLS
    fallback_scrape_protocol: str = ""
    honor_labels: bool = False
    honor_timestamps: bool = True
    track_timestamps_staleness: bool = False
    metrics_path: str = "/metrics"
    scheme: str = "http"
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()
    enable_compression: bool = True
    body_size_limit: int = 0  # bytes, 0 = none
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    target_limit: int = 0
    http: HTTPClientConfig = HTTPClientConfig()
    static_configs: tuple[StaticConfig, ...] = ()
    file_sd_configs: tuple[FileSDConfig, ...] = ()
    relabel_configs: tuple[RelabelConfig, ...] = ()
    metric_relabel_configs: tuple[RelabelConfig, ...] = ()
    keep_dropped_targets: int = 0
    native_histogram_bucket_limit: int = 0
    native_histogram_min_bucket_factor: float = 0.0
    always_scrape_classic_histograms: bool = False
    convert_classic_histograms_to_nhcb: bool = False
    metric_name_validation_scheme: str = "utf8"  # or "legacy"
    metric_name_escaping_scheme: str = "allow-utf-8"  # underscores, dots, values
    scrape_failure_log_file: str = ""


@dataclass(frozen=True)
class AlertmanagerConfig:
    scheme: str = "http"
    path_prefix: str = "/"
    timeout_ms: int = 10_000
    api_version: str = "v2"
    http: HTTPClientConfig = HTTPClientConfig()
    static_configs: tuple[StaticConfig, ...] = ()
    file_sd_configs: tuple[FileSDConfig, ...] = ()
    relabel_configs: tuple[RelabelConfig, ...] = ()
    alert_relabel_configs: tuple[RelabelConfig, ...] = ()  # per Alertmanager, after the global


@dataclass(frozen=True)
class AlertingConfig:
    alert_relabel_configs: tuple[RelabelConfig, ...] = ()
    alertmanagers: tuple[AlertmanagerConfig, ...] = ()


@dataclass(frozen=True)
class QueueConfig:
    capacity: int = 10_000
    max_shards: int = 50
    min_shards: int = 1
    max_samples_per_send: int = 2_000
    batch_send_deadline_ms: int = 5_000
    min_backoff_ms: int = 30
    max_backoff_ms: int = 5_000
    retry_on_http_429: bool = False
    sample_age_limit_ms: int = 0


@dataclass(frozen=True)
class RemoteWriteConfig:
    url: str
    name: str = ""
    remote_timeout_ms: int = 30_000
    headers: tuple[tuple[str, str], ...] = ()
    protobuf_message: str = "prometheus.WriteRequest"
    send_exemplars: bool = False
    send_native_histograms: bool = False
    write_relabel_configs: tuple[RelabelConfig, ...] = ()
    queue_config: QueueConfig = QueueConfig()
    send_metadata: bool = True
    http: HTTPClientConfig = HTTPClientConfig(enable_http2=False)  # Prometheus's remote default
    round_robin_dns: bool = False
    metadata_send_interval_ms: int = 60_000
    metadata_max_samples_per_send: int = 2_000


@dataclass(frozen=True)
class GlobalConfig:
    scrape_interval_ms: int = 60_000
    scrape_timeout_ms: int = 10_000
    evaluation_interval_ms: int = 60_000
    rule_query_offset_ms: int = 0
    external_labels: Labels = Labels()  # noqa: RUF009 (immutable)
    scrape_protocols: tuple[str, ...] = DEFAULT_SCRAPE_PROTOCOLS
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    target_limit: int = 0
    body_size_limit: int = 0
    keep_dropped_targets: int = 0
    query_log_file: str = ""
    scrape_failure_log_file: str = ""
    metric_name_validation_scheme: str = "utf8"
    metric_name_escaping_scheme: str = "allow-utf-8"
    always_scrape_classic_histograms: bool = False
    convert_classic_histograms_to_nhcb: bool = False


@dataclass(frozen=True)
class StorageConfig:
    """``storage:``; accepted and kept, not applied by omtsdb (see docs/config.md)."""

    out_of_order_time_window_ms: int = 0
    max_exemplars: int = 100_000


@dataclass(frozen=True)
class Config:
    global_: GlobalConfig = GlobalConfig()
    rule_files: tuple[str, ...] = ()  # globs, resolved relative to the config file's folder
    scrape_config_files: tuple[str, ...] = ()
    scrape_configs: tuple[ScrapeConfig, ...] = ()
    alerting: AlertingConfig = AlertingConfig()
    remote_write: tuple[RemoteWriteConfig, ...] = ()
    storage: StorageConfig = StorageConfig()
    source: str = field(default="", compare=False)  # YAML as given (for /api/v1/status/config)
    path: str = field(default="", compare=False)
