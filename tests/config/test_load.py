"""Loader: defaults, inheritance from global, values, paths, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omtsdb.config import (
    DEFAULT_SCRAPE_PROTOCOLS,
    Authorization,
    Config,
    ConfigError,
    GlobalConfig,
    QueueConfig,
    load_config,
    parse_config,
)
from omtsdb.config.units import expand_env, format_duration_ms, parse_duration_ms, parse_size
from omtsdb.errors import BadDataError
from omtsdb.model.labels import Labels


def test_empty_file_is_all_defaults() -> None:
    for text in ("", "\n# comment\n", "global:\n", "global: {}\n"):
        cfg = parse_config(text)
        assert cfg == Config()
        assert cfg.global_ == GlobalConfig()
        assert cfg.global_.scrape_interval_ms == 60_000
        assert cfg.global_.scrape_timeout_ms == 10_000
        assert cfg.global_.evaluation_interval_ms == 60_000
        assert cfg.source == text


def test_scrape_config_defaults() -> None:
    (sc,) = parse_config("scrape_configs:\n- job_name: j\n").scrape_configs
    assert sc.job_name == "j"
    assert (sc.scrape_interval_ms, sc.scrape_timeout_ms) == (60_000, 10_000)
    assert sc.metrics_path == "/metrics"
    assert sc.scheme == "http"
    assert sc.honor_timestamps is True
    assert sc.honor_labels is False
    assert sc.enable_compression is True
    assert sc.scrape_protocols == DEFAULT_SCRAPE_PROTOCOLS
    assert sc.http.follow_redirects and sc.http.enable_http2
    assert sc.http.basic_auth is None and sc.http.authorization is None
    assert sc.metric_name_validation_scheme == "utf8"
    assert sc.metric_name_escaping_scheme == "allow-utf-8"


def test_inheritance_from_global() -> None:
    cfg = parse_config(
        """
global:
  scrape_interval: 15s
  scrape_timeout: 12s
  scrape_protocols: [PrometheusText0.0.4]
  sample_limit: 100
  label_limit: 30
  label_name_length_limit: 200
  label_value_length_limit: 300
  target_limit: 5
  body_size_limit: 1MB
  keep_dropped_targets: 7
scrape_configs:
- job_name: inherit
- job_name: short
  scrape_interval: 5s
- job_name: own
  scrape_interval: 1m
  scrape_timeout: 30s
  sample_limit: 9
  scrape_protocols: [OpenMetricsText1.0.0]
  body_size_limit: 2KiB
"""
    )
    inherit, short, own = cfg.scrape_configs
    assert (inherit.scrape_interval_ms, inherit.scrape_timeout_ms) == (15_000, 12_000)
    assert inherit.scrape_protocols == ("PrometheusText0.0.4",)
    assert (inherit.sample_limit, inherit.label_limit, inherit.target_limit) == (100, 30, 5)
    assert (inherit.label_name_length_limit, inherit.label_value_length_limit) == (200, 300)
    assert inherit.body_size_limit == 1 << 20
    assert inherit.keep_dropped_targets == 7
    # the timeout defaults to min(global timeout, own interval)
    assert (short.scrape_interval_ms, short.scrape_timeout_ms) == (5_000, 5_000)
    assert (own.scrape_interval_ms, own.scrape_timeout_ms) == (60_000, 30_000)
    assert own.sample_limit == 9 and own.label_limit == 30
    assert own.scrape_protocols == ("OpenMetricsText1.0.0",)
    assert own.body_size_limit == 2048


def test_global_timeout_follows_short_interval() -> None:
    g = parse_config("global: {scrape_interval: 5s}\n").global_
    assert (g.scrape_interval_ms, g.scrape_timeout_ms) == (5_000, 5_000)


def test_explicit_null_is_go_zero_value() -> None:
    (sc,) = parse_config(
        "scrape_configs:\n- job_name: j\n  honor_timestamps:\n  scrape_interval: null\n"
    ).scrape_configs
    assert sc.honor_timestamps is False  # yaml.v2 sets the zero value, not the default
    assert sc.scrape_interval_ms == 60_000  # 0 means "inherit"


def test_values() -> None:
    cfg = parse_config(
        """
global:
  external_labels: {region: eu, "service.name": x}
scrape_configs:
- job_name: j
  params: {module: [http_2xx], target: [a, b]}
  scheme: https
  metrics_path: /probe
  honor_labels: yes
  track_timestamps_staleness: true
  fallback_scrape_protocol: PrometheusText0.0.4
  native_histogram_min_bucket_factor: 1.1
  static_configs:
  - targets: [a:1, b:2]
    labels: {env: prod, empty: ""}
  - targets: [c:3]
  file_sd_configs:
  - files: [/abs/*.json]
  - files: [/abs/x.yml]
    refresh_interval: 30s
  relabel_configs:
  - {source_labels: [a, b], separator: ",", regex: "x(.*)", target_label: t, replacement: "${1}y"}
  metric_relabel_configs:
  - {action: DROP, source_labels: [__name__], regex: "go_.*"}
"""
    )
    assert cfg.global_.external_labels == Labels({"region": "eu", "service.name": "x"})
    (sc,) = cfg.scrape_configs
    assert sc.params == (("module", ("http_2xx",)), ("target", ("a", "b")))
    assert (sc.scheme, sc.metrics_path, sc.honor_labels) == ("https", "/probe", True)
    assert sc.track_timestamps_staleness
    assert sc.fallback_scrape_protocol == "PrometheusText0.0.4"
    assert sc.native_histogram_min_bucket_factor == 1.1
    assert sc.static_configs[0].targets == ("a:1", "b:2")
    assert sc.static_configs[0].labels == Labels({"env": "prod"})
    assert sc.static_configs[1].labels == Labels()
    assert sc.file_sd_configs[0].files == ("/abs/*.json",)
    assert sc.file_sd_configs[0].refresh_interval_ms == 300_000
    assert sc.file_sd_configs[1].refresh_interval_ms == 30_000
    (r,) = sc.relabel_configs
    assert (r.source_labels, r.separator, r.regex) == (("a", "b"), ",", "x(.*)")
    assert (r.target_label, r.replacement, r.action) == ("t", "${1}y", "replace")
    assert sc.metric_relabel_configs[0].action == "drop"


def test_http_client_settings() -> None:
    a, b, c = parse_config(
        """
scrape_configs:
- job_name: a
  bearer_token: tok
- job_name: b
  bearer_token_file: tok.txt
  tls_config: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, server_name: s}
- job_name: c
  basic_auth: {username: u, password: p}
  authorization: null
  proxy_url: http://proxy:3128
  no_proxy: localhost
  follow_redirects: false
  enable_http2: false
""",
        "/etc/prom/prometheus.yml",
    ).scrape_configs
    assert a.http.authorization == Authorization(type="Bearer", credentials="tok")
    assert b.http.authorization == Authorization(credentials_file="/etc/prom/tok.txt")
    assert b.http.tls_config.ca_file == "/etc/prom/ca.pem"
    assert b.http.tls_config.key_file == "/etc/prom/k.pem"
    assert b.http.tls_config.server_name == "s"
    assert c.http.basic_auth is not None and c.http.basic_auth.password == "p"
    assert c.http.authorization is None
    assert (c.http.proxy_url, c.http.no_proxy) == ("http://proxy:3128", "localhost")
    assert not c.http.follow_redirects and not c.http.enable_http2


def test_alerting_and_remote_write() -> None:
    cfg = parse_config(
        """
alerting:
  alert_relabel_configs: [{action: labeldrop, regex: replica}]
  alertmanagers:
  - static_configs: [{targets: ["am:9093"]}]
  - scheme: https
    path_prefix: /am
    timeout: 3s
    file_sd_configs: [{files: [am.json]}]
remote_write:
- url: http://r/api/v1/write
- url: https://r2/write
  name: second
  remote_timeout: 5s
  headers: {X-B: b, X-A: a}
  protobuf_message: io.prometheus.write.v2.Request
  queue_config: {max_shards: 3, min_backoff: 100ms, retry_on_http_429: true}
  metadata_config: {send: false, send_interval: 2m}
  basic_auth: {username: u, password: p}
  enable_http2: true
"""
    )
    al = cfg.alerting
    assert al.alert_relabel_configs[0].action == "labeldrop"
    am1, am2 = al.alertmanagers
    assert (am1.scheme, am1.path_prefix, am1.timeout_ms, am1.api_version) == (
        "http",
        "/",
        10_000,
        "v2",
    )
    assert am1.static_configs[0].targets == ("am:9093",)
    assert (am2.scheme, am2.path_prefix, am2.timeout_ms) == ("https", "/am", 3_000)
    assert am2.file_sd_configs[0].files == ("am.json",)
    rw1, rw2 = cfg.remote_write
    assert rw1.remote_timeout_ms == 30_000
    assert rw1.queue_config == QueueConfig()
    assert rw1.http.enable_http2 is False  # Prometheus's remote-write default
    assert rw1.send_metadata and rw1.protobuf_message == "prometheus.WriteRequest"
    assert rw2.name == "second" and rw2.remote_timeout_ms == 5_000
    assert rw2.headers == (("X-A", "a"), ("X-B", "b"))
    assert rw2.protobuf_message == "io.prometheus.write.v2.Request"
    assert rw2.queue_config.max_shards == 3 and rw2.queue_config.min_backoff_ms == 100
    assert rw2.queue_config.capacity == 10_000 and rw2.queue_config.retry_on_http_429
    assert rw2.send_metadata is False and rw2.metadata_send_interval_ms == 120_000
    assert rw2.http.basic_auth is not None and rw2.http.enable_http2


def test_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "extra.yml").write_text(
        "scrape_configs:\n- job_name: extra\n  file_sd_configs: [{files: [t/*.json]}]\n"
        "  basic_auth: {username: u, password_file: pw}\n"
    )
    main = tmp_path / "prometheus.yml"
    main.write_text(
        "global: {scrape_interval: 10s}\n"
        "rule_files: [rules/*.yml, /abs/r.yml]\n"
        "scrape_config_files: [jobs/*.yml]\n"
        "scrape_configs:\n- job_name: main\n  file_sd_configs: [{files: [sd/a.json]}]\n"
    )
    cfg = load_config(main)
    assert cfg.path == str(main)
    assert cfg.rule_files == (str(tmp_path / "rules/*.yml"), "/abs/r.yml")
    assert cfg.scrape_config_files == (str(tmp_path / "jobs/*.yml"),)
    m, extra = cfg.scrape_configs
    assert m.file_sd_configs[0].files == (str(tmp_path / "sd/a.json"),)
    assert extra.job_name == "extra" and extra.scrape_interval_ms == 10_000
    assert extra.file_sd_configs[0].files == (str(tmp_path / "jobs/t/*.json"),)
    assert extra.http.basic_auth is not None
    assert extra.http.basic_auth.password_file == str(tmp_path / "jobs/pw")


def test_relative_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("p.yml").write_text("rule_files: [r.yml]\n")
    cfg = load_config("p.yml")
    assert cfg.rule_files == (str(tmp_path / "r.yml"),)
    assert cfg.path == "p.yml"
    assert parse_config("rule_files: [r.yml]\n").rule_files == ("r.yml",)


def test_errors_are_config_errors_with_the_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.yml"
    p.write_text("scrape_configs:\n- job_name: a\n  scrape_interval: 1x\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert isinstance(ei.value, BadDataError)
    assert ei.value.status == 400
    assert str(ei.value) == f'parsing YAML file {p}: unknown unit "x" in duration "1x"'
    assert ei.value.path == str(p)
    with pytest.raises(ConfigError, match=r'^unknown unit "x" in duration "1x"$'):
        parse_config(p.read_text())
    with pytest.raises(ConfigError, match="reading config file"):
        load_config(tmp_path / "missing.yml")


def test_unknown_key_names_key_line_and_type() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(
            "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: [x:1]\n"
            "  relabel_configs:\n  - source_labels: [a]\n    target: b\n",
            "p.yml",
        )
    assert str(ei.value) == (
        "parsing YAML file p.yml: yaml: unmarshal errors:\n"
        "  line 7: field target not found in type relabel.Config"
    )


def test_scrape_config_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("scrape_configs:\n- job_name: x\n  scrape_timeout: 2m\n")
    main = tmp_path / "p.yml"
    main.write_text("scrape_config_files: [a.yml]\n")
    with pytest.raises(ConfigError) as ei:
        load_config(main)
    assert str(ei.value) == (
        f'parsing YAML file {main}: "{tmp_path / "a.yml"}": scrape timeout greater than scrape '
        'interval for scrape config with job name "x"'
    )


def test_external_labels_expand_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMTSDB_TEST_REGION", "eu-1")
    monkeypatch.delenv("OMTSDB_TEST_NOPE", raising=False)
    g = parse_config(
        "global:\n  external_labels:\n    a: $OMTSDB_TEST_REGION\n    b: x-${OMTSDB_TEST_REGION}-y\n"
        "    c: $$lit\n    d: ${OMTSDB_TEST_NOPE}\n"
    ).global_
    assert g.external_labels == Labels({"a": "eu-1", "b": "x-eu-1-y", "c": "$lit"})


@pytest.mark.parametrize(
    ("text", "want"),
    [("$", "$"), ("a$", "a$"), ("${}", ""), ("${", ""), ("$ x", "$ x"), ("$$", "$"), ("${$}", "$")],
)
def test_expand_env_edge_cases(text: str, want: str) -> None:
    assert expand_env(text) == want


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1ms", 1),
        ("15s", 15_000),
        ("1m30s", 90_000),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
        ("1w", 604_800_000),
        ("1y", 31_536_000_000),
        ("1h0m0s", 3_600_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("", "empty duration string"),
        ("1", 'not a valid duration string: "1"'),
        ("1.5s", 'unknown unit "." in duration "1.5s"'),
        ("1s1m", 'not a valid duration string: "1s1m"'),
        ("1q", 'unknown unit "q" in duration "1q"'),
        ("-1s", 'not a valid duration string: "-1s"'),
        ("999999999y", "duration out of range"),
    ],
)
def test_bad_durations(text: str, msg: str) -> None:
    with pytest.raises(ValueError, match="^" + msg.replace(".", r"\.") + "$"):
        parse_duration_ms(text)


def test_format_duration() -> None:
    assert [format_duration_ms(x) for x in (0, 90_000, 3_600_001)] == ["0s", "1m30s", "1h1ms"]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1B", 1),
        ("10MB", 10 << 20),
        ("10MiB", 10 << 20),
        ("1.5KB", 1536),
        ("1GB512MB", 3 << 29),
        ("2TiB", 2 << 40),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "10", "10kB", "MB", "1XB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match=r"^units: "):
        parse_size(text)


def test_source_and_path_are_not_part_of_equality(tmp_path: Path) -> None:
    p = tmp_path / "x.yml"
    p.write_text("global: {scrape_interval: 30s}\n")
    a = load_config(p)
    b = parse_config("global:\n  scrape_interval: 30s\n")
    assert a == b and a.source != b.source and a.path == str(p) and b.path == ""
    assert os.path.isabs(a.path)


def test_status_config_yaml_hides_secrets() -> None:
    from omtsdb.config.redact import redacted_yaml

    text = (
        "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: hunter2}\n"
        "    authorization: {credentials: tok}\n"
        "remote_write:\n  - url: http://x/api/v1/write\n    bearer_token: abc\n"
    )
    out = redacted_yaml(text)
    assert "hunter2" not in out and "credentials: tok" not in out
    assert "abc" not in out and out.count("<secret>") == 3 and "username: u" in out
    assert redacted_yaml("") == "" and redacted_yaml("{bad") == ""
