"""Load a Prometheus 3.5 configuration file into :class:`~omtsdb.config.model.Config`.

``load_config(path)`` / ``parse_config(text, path="")``. Defaults, inheritance from ``global``
and validation follow Prometheus's ``config.Load`` and ``Config.GetScrapeConfigs`` (which also
reads ``scrape_config_files``); errors are :class:`ConfigError` with Prometheus's wording,
``parsing YAML file <path>: ...``. Relative file names in the config (rule files, file SD, TLS
and credential files) are resolved against the config file's folder, made absolute.
See docs/config.md for what is supported, accepted-but-ignored and refused.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from omtsdb.config.errors import ConfigError
from omtsdb.config.extra import check_otlp_strategy, otlp, runtime, storage, tracing
from omtsdb.config.model import (
    DEFAULT_SCRAPE_PROTOCOLS,
    AlertingConfig,
    Config,
    GlobalConfig,
    RemoteWriteConfig,
    ScrapeConfig,
    StorageConfig,
)
from omtsdb.config.outbound import alerting, check_remote_write_names, remote_writes
from omtsdb.config.sections import (
    HTTP_CLIENT_KEYS,
    SD_KEYS,
    check_static_targets,
    duration,
    file_sd_configs,
    http_client,
    join_dir,
    refuse_other_sd,
    relabel_configs,
    static_configs,
    unsupported,
)
from omtsdb.config.units import expand_env, go_quote, parse_size
from omtsdb.config.yamlnode import (
    Struct,
    YamlError,
    as_seq,
    as_str,
    as_str_map,
    compose,
    is_null,
)
from omtsdb.model.labels import Labels, is_valid_label_name

_TOP_KEYS = (
    "global",
    "runtime",
    "alerting",
    "rule_files",
    "scrape_config_files",
    "scrape_configs",
    "storage",
    "tracing",
    "remote_write",
    "remote_read",
    "otlp",
)
_LIMITS = (
    "sample_limit",
    "target_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "keep_dropped_targets",
)
_GLOBAL_KEYS = (
    "scrape_interval",
    "scrape_timeout",
    "scrape_protocols",
    "evaluation_interval",
    "rule_query_offset",
    "query_log_file",
    "scrape_failure_log_file",
    "external_labels",
    "body_size_limit",
    *_LIMITS,
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "convert_classic_histograms_to_nhcb",
    "always_scrape_classic_histograms",
)
_SCRAPE_KEYS = (
    "job_name",
    "honor_labels",
    "honor_timestamps",
    "track_timestamps_staleness",
    "params",
    "scrape_interval",
    "scrape_timeout",
    "scrape_protocols",
    "fallback_scrape_protocol",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "scrape_failure_log_file",
    "metrics_path",
    "scheme",
    "enable_compression",
    "body_size_limit",
    *_LIMITS,
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    *HTTP_CLIENT_KEYS,
    *SD_KEYS,
    "relabel_configs",
    "metric_relabel_configs",
)
_PROTOCOLS = (
    "OpenMetricsText0.0.1",
    "OpenMetricsText1.0.0",
    "PrometheusProto",
    "PrometheusText0.0.4",
    "PrometheusText1.0.0",
)
_ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values")
_RULE_PATH = re.compile(r"^[^*]*(\*[^/]*)?$")


def load_config(path: str | Path) -> Config:
    """Read and validate the configuration file at ``path``."""
    p = str(path)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"reading config file {p}: {e}", path=p) from None
    return parse_config(text, p)


def parse_config(text: str, path: str = "") -> Config:
    """Validate YAML ``text``; ``path`` names it in errors and anchors relative file names
    (without it they stay relative to the working directory)."""
    base = os.path.dirname(os.path.abspath(path)) if path else ""
    try:
        cfg = _Loader(base).config(compose(text))
    except YamlError as e:
        raise ConfigError(f"parsing YAML file {path}: {e}" if path else str(e), path=path) from None
    return replace(cfg, source=text, path=path)


def _limit(s: Struct, key: str) -> int:
    return s.unsigned(key, 0, "uint")


def _size(s: Struct, key: str) -> int:
    if not s.has(key) or is_null(s.get(key)):
        return 0
    try:
        return max(0, parse_size(as_str(s.get(key))))
    except ValueError as e:
        raise YamlError(str(e)) from None


def _protocols(s: Struct, key: str) -> tuple[str, ...] | None:
    """``None`` when not given (inherit); an empty tuple is an error later."""
    if not s.has(key) or is_null(s.get(key)):
        return None
    return tuple(as_str(n) for n in as_seq(s.get(key), "[]config.ScrapeProtocol"))


def _check_protocols(protos: tuple[str, ...], where: str) -> None:
    if not protos:
        raise YamlError(f"scrape_protocols cannot be empty {where}")
    seen: set[str] = set()
    for p in protos:
        if p.lower() in seen:
            raise YamlError(
                f"duplicated protocol in scrape_protocols, got [{' '.join(protos)}] {where}"
            )
        if p not in _PROTOCOLS:
            raise YamlError(f"scrape_protocols: {_unknown_protocol(p)} {where}")
        seen.add(p.lower())


def _unknown_protocol(p: str) -> str:
    return f"unknown scrape protocol {p}, supported: [{' '.join(_PROTOCOLS)}]"


class _Loader:
    def __init__(self, base: str) -> None:
        self.base = base

    def config(self, root: Node | None) -> Config:
        s = Struct(root, "config.Config", _TOP_KEYS)
        g = self.global_config(s.get("global"))
        decoded: list[dict[str, Any] | None] = []
        alert = AlertingConfig()
        rws: tuple[RemoteWriteConfig, ...] = ()
        store = StorageConfig()
        strategy = ""
        for key in s.names():  # document order, like yaml.v2
            node = s.get(key)
            if key == "scrape_configs":
                items = as_seq(node, "[]*config.ScrapeConfig")
                decoded = [None if is_null(n) else self.scrape_fields(n) for n in items]
            elif key == "alerting":
                alert = alerting(node, self.base)
            elif key == "remote_write":
                rws = remote_writes(node, self.base)
            elif key == "remote_read":
                if as_seq(node, "[]*config.RemoteReadConfig"):
                    raise unsupported("remote_read", "omtsdb answers queries from its own storage")
            elif key == "storage":
                store = storage(node)
            elif key == "tracing" and not is_null(node):
                tracing(node, self.base)
            elif key == "otlp" and not is_null(node):
                strategy = otlp(node)
            elif key == "runtime":
                runtime(node)
        rule_files = self.patterns(s, "rule_files", "rule file")
        scrape_files = self.patterns(s, "scrape_config_files", "scrape config file")
        scrapes: list[ScrapeConfig] = []
        jobs: dict[str, str] = {}
        for fields in decoded:
            if fields is None:
                raise YamlError("empty or null scrape config section")
            sc = self.validate_scrape(fields, g)
            if sc.job_name in jobs:
                raise YamlError(
                    f"found multiple scrape configs with job name {go_quote(sc.job_name)}"
                )
            jobs[sc.job_name] = "main config file"
            scrapes.append(sc)
        check_remote_write_names(rws)
        check_otlp_strategy(strategy, g.metric_name_validation_scheme)
        scrapes.extend(self.scrape_config_files(scrape_files, g, jobs))
        return Config(
            global_=g,
            rule_files=rule_files,
            scrape_config_files=scrape_files,
            scrape_configs=tuple(scrapes),
            alerting=alert,
            remote_write=rws,
            storage=store,
        )

    def patterns(self, s: Struct, key: str, what: str) -> tuple[str, ...]:
        out = []
        for p in s.str_list(key):
            if not _RULE_PATH.match(p):
                raise YamlError(f"invalid {what} path {go_quote(p)}")
            out.append(join_dir(self.base, p))
        return tuple(out)

    # --- global ---------------------------------------------------------------------------

    def global_config(self, node: Node | None) -> GlobalConfig:
        if is_null(node):
            return GlobalConfig()
        s = Struct(node, "config.GlobalConfig", _GLOBAL_KEYS)
        labels = []
        for name, v in as_str_map(s.get("external_labels"), "labels.Labels").items():
            value = as_str(v)
            if not is_valid_label_name(name):
                raise YamlError(f"{go_quote(name)} is not a valid label name")
            labels.append((name, expand_env(value)))
        interval = duration(s, "scrape_interval") or 60_000
        timeout = duration(s, "scrape_timeout")
        if timeout > interval:
            raise YamlError("global scrape timeout greater than scrape interval")
        if timeout == 0:
            timeout = min(10_000, interval)
        protocols = _protocols(s, "scrape_protocols")
        if protocols is None:
            protocols = DEFAULT_SCRAPE_PROTOCOLS
        _check_protocols(protocols, "for global config")
        validation = s.string("metric_name_validation_scheme") or "utf8"
        return GlobalConfig(
            scrape_interval_ms=interval,
            scrape_timeout_ms=timeout,
            evaluation_interval_ms=duration(s, "evaluation_interval") or 60_000,
            rule_query_offset_ms=duration(s, "rule_query_offset"),
            external_labels=Labels(labels),
            scrape_protocols=protocols,
            body_size_limit=_size(s, "body_size_limit"),
            **{k: _limit(s, k) for k in _LIMITS},
            query_log_file=join_dir(self.base, s.string("query_log_file")),
            scrape_failure_log_file=join_dir(self.base, s.string("scrape_failure_log_file")),
            # checked per scrape config (so only when there is one), as Prometheus does
            metric_name_validation_scheme=validation,
            metric_name_escaping_scheme=s.string("metric_name_escaping_scheme")
            or ("underscores" if validation == "legacy" else "allow-utf-8"),
            always_scrape_classic_histograms=s.boolean("always_scrape_classic_histograms"),
            convert_classic_histograms_to_nhcb=s.boolean("convert_classic_histograms_to_nhcb"),
        )

    # --- scrape configs -------------------------------------------------------------------

    def scrape_fields(self, node: Node, base: str | None = None) -> dict[str, Any]:
        """Decode one scrape config (Prometheus's UnmarshalYAML part), not yet validated
        against ``global``."""
        base = self.base if base is None else base
        s = Struct(node, "config.ScrapeConfig", _SCRAPE_KEYS)
        job = s.string("job_name")
        where = f"scrape config with job name {go_quote(job)}"
        refuse_other_sd(s, where)
        f: dict[str, Any] = {"job_name": job}
        f["honor_labels"] = s.boolean("honor_labels")
        f["honor_timestamps"] = s.boolean("honor_timestamps", True)
        f["track_timestamps_staleness"] = s.boolean("track_timestamps_staleness")
        params = []
        for k, v in as_str_map(s.get("params"), "url.Values").items():
            params.append((k, tuple(as_str(x) for x in as_seq(v, "[]string"))))
        f["params"] = tuple(params)
        f["scrape_interval_ms"] = duration(s, "scrape_interval")
        f["scrape_timeout_ms"] = duration(s, "scrape_timeout")
        f["scrape_protocols"] = _protocols(s, "scrape_protocols")
        f["fallback_scrape_protocol"] = s.string("fallback_scrape_protocol")
        for key in ("always_scrape_classic_histograms", "convert_classic_histograms_to_nhcb"):
            f[key] = s.boolean(key) if s.has(key) and not is_null(s.get(key)) else None
        f["scrape_failure_log_file"] = join_dir(base, s.string("scrape_failure_log_file"))
        f["metrics_path"] = s.string("metrics_path", "/metrics")
        f["scheme"] = s.string("scheme", "http")
        f["enable_compression"] = s.boolean("enable_compression", True)
        f["body_size_limit"] = _size(s, "body_size_limit")
        for key in _LIMITS:
            f[key] = _limit(s, key)
        f["native_histogram_bucket_limit"] = _limit(s, "native_histogram_bucket_limit")
        f["native_histogram_min_bucket_factor"] = s.number("native_histogram_min_bucket_factor")
        f["metric_name_validation_scheme"] = s.string("metric_name_validation_scheme")
        f["metric_name_escaping_scheme"] = s.string("metric_name_escaping_scheme")
        f["static_configs"] = static_configs(s.get("static_configs"))
        f["file_sd_configs"] = file_sd_configs(s.get("file_sd_configs"), base)
        f["relabel_configs"] = relabel_configs(
            s.get("relabel_configs"), "empty or null target relabeling rule in scrape config"
        )
        f["metric_relabel_configs"] = relabel_configs(
            s.get("metric_relabel_configs"), "empty or null metric relabeling rule in scrape config"
        )
        if not job:
            raise YamlError("job_name is empty")
        f["http"] = http_client(s, base, where)
        if not f["relabel_configs"]:
            check_static_targets(f["static_configs"])
        return f

    def validate_scrape(self, f: dict[str, Any], g: GlobalConfig) -> ScrapeConfig:
        """Prometheus's ``ScrapeConfig.Validate``: inherit from ``global`` and check."""
        job = f["job_name"]
        where = f"for scrape config with job name {go_quote(job)}"
        interval = f["scrape_interval_ms"] or g.scrape_interval_ms
        timeout = f["scrape_timeout_ms"]
        if timeout > interval:
            raise YamlError(
                f"scrape timeout greater than scrape interval for scrape config with job name "
                f"{go_quote(job)}"
            )
        if timeout == 0:
            timeout = min(g.scrape_timeout_ms, interval)
        f = dict(f, scrape_interval_ms=interval, scrape_timeout_ms=timeout)
        if f["body_size_limit"] == 0:
            f["body_size_limit"] = g.body_size_limit
        for key in _LIMITS:
            if f[key] == 0:
                f[key] = getattr(g, key)
        if not f["scrape_failure_log_file"]:
            f["scrape_failure_log_file"] = g.scrape_failure_log_file
        if f["scrape_protocols"] is None:
            f["scrape_protocols"] = g.scrape_protocols
        _check_protocols(f["scrape_protocols"], where)
        fallback = f["fallback_scrape_protocol"]
        if fallback and fallback not in _PROTOCOLS:
            raise YamlError(
                f"invalid fallback_scrape_protocol {where}: {_unknown_protocol(fallback)}"
            )
        f["metric_name_validation_scheme"], f["metric_name_escaping_scheme"] = _schemes(
            f["metric_name_validation_scheme"], f["metric_name_escaping_scheme"], g
        )
        for key in ("always_scrape_classic_histograms", "convert_classic_histograms_to_nhcb"):
            if f[key] is None:
                f[key] = getattr(g, key)
        if f["scheme"] not in ("http", "https"):  # omtsdb: checked here, not per target
            raise YamlError(
                f'scheme must be "http" or "https", got {go_quote(f["scheme"])} {where}'
            )
        return ScrapeConfig(**f)

    def scrape_config_files(
        self, patterns: tuple[str, ...], g: GlobalConfig, jobs: dict[str, str]
    ) -> list[ScrapeConfig]:
        """``GetScrapeConfigs``: each file holds ``scrape_configs:`` only; job names are unique
        across all files; relative paths are taken from the including file's folder."""
        out: list[ScrapeConfig] = []
        for pattern in patterns:
            for filename in sorted(glob.glob(pattern, include_hidden=True)):
                path = os.path.abspath(filename)
                try:
                    text = Path(filename).read_text(encoding="utf-8")
                    root = compose(text)
                    s = Struct(root, "config.ScrapeConfigs", ("scrape_configs",))
                    for node in s.seq("scrape_configs", "[]*config.ScrapeConfig"):
                        if is_null(node):
                            raise YamlError("empty or null scrape config section")
                        fields = self.scrape_fields(node, os.path.dirname(path))
                        sc = self.validate_scrape(fields, g)
                        if sc.job_name in jobs:
                            raise YamlError(
                                f"found multiple scrape configs with job name "
                                f"{go_quote(sc.job_name)}, first found in {jobs[sc.job_name]}"
                            )
                        jobs[sc.job_name] = go_quote(path)
                        out.append(sc)
                except (OSError, UnicodeDecodeError) as e:
                    raise YamlError(f"{go_quote(path)}: {e}") from None
                except YamlError as e:
                    raise YamlError(f"{go_quote(path)}: {e}") from None
        return out


def _schemes(validation: str, escaping: str, g: GlobalConfig) -> tuple[str, str]:
    g_validation = g.metric_name_validation_scheme
    if g_validation not in ("legacy", "utf8"):
        raise YamlError(
            "unknown global name validation method specified, must be either 'legacy' or "
            f"'utf8', got {g_validation}"
        )
    if not validation:
        validation = g_validation
    elif validation not in ("legacy", "utf8"):
        raise YamlError(
            "unknown scrape config name validation method specified, must be either 'legacy' "
            f"or 'utf8', got {validation}"
        )
    g_escaping = g.metric_name_escaping_scheme
    if g_escaping not in _ESCAPINGS:
        raise YamlError(
            "unknown global name escaping method specified, must be one of 'allow-utf-8', "
            f"'underscores', 'dots', or 'values', got {g_escaping}"
        )
    escaping = escaping or g_escaping
    if escaping == "allow-utf-8" and validation != "utf8":
        raise YamlError("utf8 metric names requested but validation scheme is not set to UTF8")
    if escaping not in _ESCAPINGS:
        raise YamlError(
            "unknown scrape config name escaping method specified, must be one of "
            f"'allow-utf-8', 'underscores', 'dots', or 'values', got {escaping}"
        )
    return validation, escaping
