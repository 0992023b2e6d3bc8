"""Sections omtsdb accepts but does not act on: ``storage``, ``tracing``, ``otlp``, ``runtime``.

They are checked as Prometheus checks them (unknown keys and bad values are still errors), so a
config valid for Prometheus stays valid here and a broken one is not silently taken.
``storage`` is kept in :class:`~omtsdb.config.model.StorageConfig`; the others are dropped.
"""

from __future__ import annotations

from yaml.nodes import Node

from omtsdb.config.model import StorageConfig
from omtsdb.config.outbound import RESERVED_HEADERS
from omtsdb.config.sections import duration, tls_config
from omtsdb.config.units import go_quote
from omtsdb.config.yamlnode import Struct, YamlError, as_str, as_str_map

_OTLP_STRATEGIES = (
    "UnderscoreEscapingWithSuffixes",
    "NoUTF8EscapingWithSuffixes",
    "NoTranslation",
)


def storage(node: Node | None) -> StorageConfig:
    s = Struct(node, "config.StorageConfig", ("tsdb", "exemplars"))
    tsdb = Struct(s.get("tsdb"), "config.TSDBConfig", ("out_of_order_time_window",))
    ex = Struct(s.get("exemplars"), "config.ExemplarsConfig", ("max_exemplars",))
    default = StorageConfig()
    return StorageConfig(
        out_of_order_time_window_ms=duration(tsdb, "out_of_order_time_window"),
        max_exemplars=ex.integer("max_exemplars", default.max_exemplars, "int64"),
    )


def tracing(node: Node | None, base: str) -> None:
    keys = (
        "client_type",
        "endpoint",
        "sampling_fraction",
        "insecure",
        "tls_config",
        "headers",
        "compression",
        "timeout",
    )
    s = Struct(node, "config.TracingConfig", keys)
    client = s.string("client_type", "grpc")
    if client not in ("http", "grpc"):
        raise YamlError(f"expected tracing client type to be to be http or grpc, but got {client}")
    s.number("sampling_fraction")
    s.boolean("insecure")
    tls_config(s.get("tls_config"), base)
    duration(s, "timeout")
    for h, v in as_str_map(s.get("headers")).items():
        as_str(v)
        if h.lower() == "authorization":
            raise YamlError("custom authorization header configuration is not yet supported")
        if h.lower() in RESERVED_HEADERS:
            raise YamlError(f"{h} is a reserved header. It must not be changed")
    if not s.string("endpoint"):
        raise YamlError("tracing endpoint must be set")
    compression = s.string("compression")
    if compression not in ("", "gzip"):
        raise YamlError(f"invalid compression type {compression} provided, valid options: gzip")


def otlp(node: Node | None) -> str:
    """Validate ``otlp:``; returns the translation strategy (checked later against the
    global validation scheme)."""
    keys = (
        "promote_all_resource_attributes",
        "promote_resource_attributes",
        "ignore_resource_attributes",
        "translation_strategy",
        "keep_identifying_resource_attributes",
        "convert_histograms_to_nhcb",
    )
    s = Struct(node, "config.OTLPConfig", keys)
    promote_all = s.boolean("promote_all_resource_attributes")
    promote = s.str_list("promote_resource_attributes")
    ignore = s.str_list("ignore_resource_attributes")
    s.boolean("keep_identifying_resource_attributes")
    s.boolean("convert_histograms_to_nhcb")
    if promote_all:
        if promote:
            raise YamlError(
                "'promote_all_resource_attributes' and 'promote_resource_attributes' cannot be "
                "configured simultaneously"
            )
        _attributes(ignore, "ignored", "ignore_resource_attributes")
    else:
        if ignore:
            raise YamlError(
                "'ignore_resource_attributes' cannot be configured unless "
                "'promote_all_resource_attributes' is true"
            )
        _attributes(promote, "promoted", "promote_resource_attributes")
    return s.string("translation_strategy", _OTLP_STRATEGIES[0])


def check_otlp_strategy(strategy: str, validation_scheme: str) -> None:
    if strategy in ("", _OTLP_STRATEGIES[0]):
        return
    if strategy in _OTLP_STRATEGIES:
        if validation_scheme == "legacy":
            raise YamlError(
                f"OTLP translation strategy {go_quote(strategy)} is not allowed when UTF8 is "
                "disabled"
            )
        return
    raise YamlError(f"unsupported OTLP translation strategy {go_quote(strategy)}")


def _attributes(attrs: tuple[str, ...], adjective: str, key: str) -> None:
    seen: set[str] = set()
    for a in attrs:
        a = a.strip()
        if not a:
            raise YamlError(f"invalid '{key}': empty {adjective} OTel resource attribute")
        if a in seen:
            raise YamlError(
                f"invalid '{key}': duplicated {adjective} OTel resource attribute {go_quote(a)}"
            )
        seen.add(a)


def runtime(node: Node | None) -> None:
    Struct(node, "config.RuntimeConfig", ("gogc",)).integer("gogc")
