"""``alerting:`` and ``remote_write:`` sections."""

from __future__ import annotations

from yaml.nodes import Node

from omtsdb.config.model import (
    AlertingConfig,
    AlertmanagerConfig,
    QueueConfig,
    RemoteWriteConfig,
)
from omtsdb.config.sections import (
    HTTP_CLIENT_KEYS,
    SD_KEYS,
    check_static_targets,
    check_url,
    duration,
    file_sd_configs,
    http_client,
    refuse_other_sd,
    relabel_configs,
    static_configs,
    unsupported,
)
from omtsdb.config.units import go_quote
from omtsdb.config.yamlnode import Struct, YamlError, as_seq, as_str, as_str_map, is_null

_AM_KEYS = (
    *HTTP_CLIENT_KEYS,
    *SD_KEYS,
    "sigv4",
    "scheme",
    "path_prefix",
    "timeout",
    "api_version",
    "relabel_configs",
    "alert_relabel_configs",
)


def alerting(node: Node | None, base: str) -> AlertingConfig:
    s = Struct(node, "config.AlertingConfig", ("alert_relabel_configs", "alertmanagers"))
    rules = relabel_configs(s.get("alert_relabel_configs"), "empty or null alert relabeling rule")
    ams = tuple(
        _alertmanager(item, base) for item in s.seq("alertmanagers", "config.AlertmanagerConfigs")
    )
    return AlertingConfig(alert_relabel_configs=rules, alertmanagers=ams)


def _alertmanager(node: Node, base: str) -> AlertmanagerConfig:
    where = "alerting.alertmanagers"
    s = Struct(node, "config.AlertmanagerConfig", _AM_KEYS)
    if s.has("sigv4") and not is_null(s.get("sigv4")):
        raise unsupported("sigv4", where)
    refuse_other_sd(s, where)
    api_version = s.string("api_version", "v2")
    if api_version != "v2":
        raise YamlError(
            f"expected Alertmanager api version to be one of [v2] but got {api_version}"
        )
    http = http_client(s, base, where)
    statics = static_configs(s.get("static_configs"))
    rules = relabel_configs(
        s.get("relabel_configs"), "empty or null Alertmanager target relabeling rule"
    )
    if not rules:
        check_static_targets(statics)
    alert_rules = relabel_configs(
        s.get("alert_relabel_configs"), "empty or null Alertmanager alert relabeling rule"
    )
    scheme = s.string("scheme", "http")
    if scheme not in ("http", "https"):
        raise YamlError(
            f'scheme must be "http" or "https" for an Alertmanager, got {go_quote(scheme)}'
        )
    return AlertmanagerConfig(
        scheme=scheme,
        path_prefix=s.string("path_prefix", "/") or "/",
        timeout_ms=duration(s, "timeout", 10_000),
        api_version=api_version,
        http=http,
        static_configs=statics,
        file_sd_configs=file_sd_configs(s.get("file_sd_configs"), base),
        relabel_configs=rules,
        alert_relabel_configs=alert_rules,
    )


# --- remote write --------------------------------------------------------------------------

_RW_KEYS = (
    "url",
    "remote_timeout",
    "headers",
    "write_relabel_configs",
    "name",
    "send_exemplars",
    "send_native_histograms",
    "round_robin_dns",
    "protobuf_message",
    *HTTP_CLIENT_KEYS,
    "queue_config",
    "metadata_config",
    "sigv4",
    "azuread",
    "google_iam",
)
_PROTO_MESSAGES = ("prometheus.WriteRequest", "io.prometheus.write.v2.Request")
RESERVED_HEADERS = frozenset(
    (
        "host",
        "content-encoding",
        "content-length",
        "content-type",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "www-authenticate",
        "accept-encoding",
        "x-prometheus-remote-write-version",
        "x-prometheus-remote-read-version",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    )
)


def remote_writes(node: Node | None, base: str) -> tuple[RemoteWriteConfig, ...]:
    out = []
    for item in as_seq(node, "[]*config.RemoteWriteConfig"):
        if is_null(item):
            raise YamlError("empty or null remote write config section")
        out.append(_remote_write(item, base))
    return tuple(out)


def check_remote_write_names(cfgs: tuple[RemoteWriteConfig, ...]) -> None:
    seen: set[str] = set()
    for c in cfgs:
        if c.name and c.name in seen:
            raise YamlError(f"found multiple remote write configs with job name {go_quote(c.name)}")
        seen.add(c.name)


def _remote_write(node: Node, base: str) -> RemoteWriteConfig:
    where = "remote_write"
    s = Struct(node, "config.RemoteWriteConfig", _RW_KEYS)
    for key in ("sigv4", "azuread", "google_iam"):
        if s.has(key) and not is_null(s.get(key)):
            raise unsupported(key, where)
    rules = relabel_configs(
        s.get("write_relabel_configs"), "empty or null relabeling rule in remote write config"
    )
    headers = {k: as_str(v) for k, v in as_str_map(s.get("headers")).items()}
    queue = _queue_config(s.get("queue_config"))
    md = Struct(
        s.get("metadata_config"),
        "config.MetadataConfig",
        ("send", "send_interval", "max_samples_per_send"),
    )
    url = s.string("url")
    if not s.has("url") or is_null(s.get("url")):
        raise YamlError("url for remote_write is empty")
    check_url(url)
    for h in headers:
        if h.lower() == "authorization":
            raise YamlError(
                "authorization header must be changed via the basic_auth, authorization, "
                "oauth2, or sigv4 parameter"
            )
        if h.lower() in RESERVED_HEADERS:
            raise YamlError(f"{h} is a reserved header. It must not be changed")
    proto = s.string("protobuf_message", _PROTO_MESSAGES[0])
    if proto not in _PROTO_MESSAGES:
        raise YamlError(
            f"invalid protobuf_message value: unknown remote write protobuf message {proto}, "
            f"supported: {', '.join(_PROTO_MESSAGES)}"
        )
    http = http_client(s, base, where, remote=True)  # refuses basic_auth with authorization
    return RemoteWriteConfig(
        url=url,
        name=s.string("name"),
        remote_timeout_ms=duration(s, "remote_timeout", 30_000),
        headers=tuple(sorted(headers.items())),
        protobuf_message=proto,
        send_exemplars=s.boolean("send_exemplars"),
        send_native_histograms=s.boolean("send_native_histograms"),
        write_relabel_configs=rules,
        queue_config=queue,
        send_metadata=md.boolean("send", True),
        http=http,
        round_robin_dns=s.boolean("round_robin_dns"),
        metadata_send_interval_ms=duration(md, "send_interval", 60_000),
        metadata_max_samples_per_send=md.integer("max_samples_per_send", 2_000),
    )


def _queue_config(node: Node | None) -> QueueConfig:
    keys = (
        "capacity",
        "max_shards",
        "min_shards",
        "max_samples_per_send",
        "batch_send_deadline",
        "min_backoff",
        "max_backoff",
        "retry_on_http_429",
        "sample_age_limit",
    )
    s = Struct(node, "config.QueueConfig", keys)
    d = QueueConfig()
    return QueueConfig(
        capacity=s.integer("capacity", d.capacity),
        max_shards=s.integer("max_shards", d.max_shards),
        min_shards=s.integer("min_shards", d.min_shards),
        max_samples_per_send=s.integer("max_samples_per_send", d.max_samples_per_send),
        batch_send_deadline_ms=duration(s, "batch_send_deadline", d.batch_send_deadline_ms),
        min_backoff_ms=duration(s, "min_backoff", d.min_backoff_ms),
        max_backoff_ms=duration(s, "max_backoff", d.max_backoff_ms),
        retry_on_http_429=s.boolean("retry_on_http_429"),
        sample_age_limit_ms=duration(s, "sample_age_limit"),
    )
