"""Decoders for the shared pieces of a Prometheus config: HTTP client settings, relabel rules,
service discovery (static and file), and the small URL/label checks they need.

Every decoder takes a YAML node and raises :class:`~omtsdb.config.yamlnode.YamlError` with
Prometheus's message; ``omtsdb.config.load`` adds the file name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from yaml.nodes import Node

from omtsdb.config.model import (
    Authorization,
    BasicAuth,
    FileSDConfig,
    HTTPClientConfig,
    RelabelConfig,
    StaticConfig,
    TLSConfig,
)
from omtsdb.config.relabel import (
    ACTIONS,
    DEFAULT_REGEX,
    DEFAULT_REPLACEMENT,
    DEFAULT_SEPARATOR,
    validate_relabel_config,
)
from omtsdb.config.units import go_quote, parse_duration_ms
from omtsdb.config.yamlnode import (
    Struct,
    YamlError,
    as_seq,
    as_str,
    as_str_map,
    is_null,
)
from omtsdb.model.labels import Labels, is_valid_label_name

# Keys of Prometheus's inlined ``config.HTTPClientConfig``.
HTTP_CLIENT_KEYS = (
    "basic_auth",
    "authorization",
    "oauth2",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "follow_redirects",
    "enable_http2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "http_headers",
)
_HTTP_UNSUPPORTED = ("oauth2", "proxy_connect_header", "http_headers")

# Service discovery mechanisms Prometheus knows (``<name>_sd_configs``); omtsdb has static and
# file only. A non-empty list of any other is refused with a clear message.
SD_NAMES = (
    "azure",
    "consul",
    "digitalocean",
    "dns",
    "docker",
    "dockerswarm",
    "ec2",
    "eureka",
    "gce",
    "hetzner",
    "http",
    "ionos",
    "kubernetes",
    "kuma",
    "lightsail",
    "linode",
    "marathon",
    "nerve",
    "nomad",
    "openstack",
    "ovhcloud",
    "puppetdb",
    "scaleway",
    "serverset",
    "stackit",
    "triton",
    "uyuni",
    "vultr",
)
SD_KEYS = ("static_configs", "file_sd_configs", *(f"{n}_sd_configs" for n in SD_NAMES))

_TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
_FILE_SD_NAME = re.compile(r"^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$")


def unsupported(what: str, where: str) -> YamlError:
    return YamlError(f"{what} is not supported by omtsdb ({where})")


def join_dir(base: str, path: str) -> str:
    """Prometheus's ``config.JoinDir``: relative paths are taken from the config's folder."""
    if not base or not path or os.path.isabs(path):
        return path
    return os.path.join(base, path)


# --- HTTP client ---------------------------------------------------------------------------


def http_client(s: Struct, base: str, where: str, *, remote: bool = False) -> HTTPClientConfig:
    """The inlined HTTP client keys of ``s`` (a scrape, Alertmanager or remote-write config)."""
    for key in _HTTP_UNSUPPORTED:
        if s.has(key) and not is_null(s.get(key)):
            raise unsupported(key, where)
    basic = _basic_auth(s.get("basic_auth"), base) if s.has("basic_auth") else None
    if s.has("basic_auth") and is_null(s.get("basic_auth")):
        basic = None
    authz_node = s.get("authorization")
    authz = None if is_null(authz_node) else _authorization(authz_node, base)
    bearer = s.string("bearer_token")
    bearer_file = s.string("bearer_token_file")
    if bearer and bearer_file:
        raise YamlError("at most one of bearer_token & bearer_token_file must be configured")
    if basic is not None and (bearer or bearer_file):
        raise YamlError(
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
        )
    if authz is not None:
        if bearer or bearer_file:
            raise YamlError("authorization is not compatible with bearer_token & bearer_token_file")
        if authz.type.lower() == "basic":
            raise YamlError('authorization type cannot be set to "basic", use "basic_auth" instead')
        if basic is not None:
            raise YamlError("at most one of basic_auth, oauth2 & authorization must be configured")
    elif bearer:
        authz = Authorization(type="Bearer", credentials=bearer)
    elif bearer_file:
        authz = Authorization(type="Bearer", credentials_file=join_dir(base, bearer_file))
    proxy_url = s.string("proxy_url")
    if proxy_url:
        check_url(proxy_url)
    no_proxy = s.string("no_proxy")
    from_env = s.boolean("proxy_from_environment")
    if from_env and proxy_url:
        raise YamlError("if proxy_from_environment is configured, proxy_url must not be configured")
    if from_env and no_proxy:
        raise YamlError("if proxy_from_environment is configured, no_proxy must not be configured")
    if no_proxy and not s.has("proxy_url"):
        raise YamlError("if no_proxy is configured, proxy_url must also be configured")
    return HTTPClientConfig(
        basic_auth=basic,
        authorization=authz,
        tls_config=tls_config(s.get("tls_config"), base),
        follow_redirects=s.boolean("follow_redirects", True),
        enable_http2=s.boolean("enable_http2", not remote),
        proxy_url=proxy_url,
        no_proxy=no_proxy,
        proxy_from_environment=from_env,
    )


def _refuse_refs(s: Struct, keys: Iterable[str]) -> None:
    for key in keys:
        if s.string(key):
            raise unsupported(key, f"{s.type_name}; secret references need a secret manager")


def _basic_auth(node: Node | None, base: str) -> BasicAuth:
    keys = ("username", "username_file", "username_ref", "password", "password_file")
    s = Struct(node, "config.BasicAuth", (*keys, "password_ref"))
    _refuse_refs(s, ("username_ref", "password_ref"))
    if s.string("username") and s.string("username_file"):
        raise YamlError(
            "at most one of basic_auth username, username_file & username_ref must be configured"
        )
    if s.string("password") and s.string("password_file"):
        raise YamlError(
            "at most one of basic_auth password, password_file & password_ref must be configured"
        )
    return BasicAuth(
        username=s.string("username"),
        password=s.string("password"),
        password_file=join_dir(base, s.string("password_file")),
        username_file=join_dir(base, s.string("username_file")),
    )


def _authorization(node: Node | None, base: str) -> Authorization:
    s = Struct(
        node, "config.Authorization", ("type", "credentials", "credentials_file", "credentials_ref")
    )
    _refuse_refs(s, ("credentials_ref",))
    if s.string("credentials") and s.string("credentials_file"):
        raise YamlError(
            "at most one of authorization credentials & credentials_file must be configured"
        )
    return Authorization(
        type=s.string("type").strip() or "Bearer",
        credentials=s.string("credentials"),
        credentials_file=join_dir(base, s.string("credentials_file")),
    )


def tls_config(node: Node | None, base: str) -> TLSConfig:
    keys = ("ca", "cert", "key", "ca_file", "cert_file", "key_file", "ca_ref", "cert_ref")
    more = ("key_ref", "server_name", "insecure_skip_verify", "min_version", "max_version")
    s = Struct(node, "config.TLSConfig", (*keys, *more))
    _refuse_refs(s, ("ca_ref", "cert_ref", "key_ref"))
    for key in ("min_version", "max_version"):
        v = s.string(key)
        if v and v not in _TLS_VERSIONS:
            raise YamlError(f"unknown TLS version: {v}")
    if s.string("ca") and s.string("ca_file"):
        raise YamlError("at most one of ca, ca_file & ca_ref must be configured")
    if s.string("cert") and s.string("cert_file"):
        raise YamlError("at most one of cert, cert_file & cert_ref must be configured")
    if s.string("key") and s.string("key_file"):
        raise YamlError("at most one of key and key_file must be configured")
    has_cert = bool(s.string("cert") or s.string("cert_file"))
    has_key = bool(s.string("key") or s.string("key_file"))
    if has_cert and not has_key:
        raise YamlError(
            "exactly one of key or key_file must be configured when a client certificate is "
            "configured"
        )
    if has_key and not has_cert:
        raise YamlError(
            "exactly one of cert or cert_file must be configured when a client key is configured"
        )
    return TLSConfig(
        ca_file=join_dir(base, s.string("ca_file")),
        cert_file=join_dir(base, s.string("cert_file")),
        key_file=join_dir(base, s.string("key_file")),
        server_name=s.string("server_name"),
        insecure_skip_verify=s.boolean("insecure_skip_verify"),
        ca=s.string("ca"),
        cert=s.string("cert"),
        key=s.string("key"),
        min_version=s.string("min_version"),
        max_version=s.string("max_version"),
    )


# --- relabeling ----------------------------------------------------------------------------

_RELABEL_KEYS = (
    "source_labels",
    "separator",
    "regex",
    "modulus",
    "target_label",
    "replacement",
    "action",
)


def relabel_configs(node: Node | None, null_message: str) -> tuple[RelabelConfig, ...]:
    out = []
    for item in as_seq(node, "[]*relabel.Config"):
        if is_null(item):
            raise YamlError(null_message)
        out.append(relabel_config(item))
    return tuple(out)


def relabel_config(node: Node) -> RelabelConfig:
    s = Struct(node, "relabel.Config", _RELABEL_KEYS)
    sources = []
    for item in s.seq("source_labels", "model.LabelNames"):
        name = as_str(item)
        if not is_valid_label_name(name):
            raise YamlError(f"{go_quote(name)} is not a valid label name")
        sources.append(name)
    action = s.string("action", "replace")
    if s.has("action") and not is_null(s.get("action")):
        action = action.lower()
        if action not in ACTIONS:
            raise YamlError(f"unknown relabel action {go_quote(s.string('action'))}")
    # ``regex: null`` leaves Go's zero Regexp, which Prometheus turns into the empty regex.
    regex = s.string("regex", DEFAULT_REGEX)
    cfg = RelabelConfig(
        source_labels=tuple(sources),
        separator=s.string("separator", DEFAULT_SEPARATOR),
        regex=regex,
        modulus=s.unsigned("modulus", 0, "uint64"),
        target_label=s.string("target_label"),
        replacement=s.string("replacement", DEFAULT_REPLACEMENT),
        action=action,
    )
    try:
        validate_relabel_config(
            cfg,
            regex_set=s.has("regex"),
            source_labels_set=s.has("source_labels") and not is_null(s.get("source_labels")),
        )
    except ValueError as e:
        raise YamlError(str(e)) from None
    return cfg


# --- service discovery ---------------------------------------------------------------------


def label_set(node: Node | None) -> Labels:
    """A ``model.LabelSet``: names must be valid, values are strings."""
    pairs = []
    for name, v in as_str_map(node, "model.LabelSet").items():
        if not is_valid_label_name(name):
            raise YamlError(f"{go_quote(name)} is not a valid label name")
        pairs.append((name, as_str(v)))
    return Labels(pairs)


def static_configs(node: Node | None) -> tuple[StaticConfig, ...]:
    out = []
    group_type = (
        'struct { Targets []string "yaml:\\"targets\\""; '
        'Labels model.LabelSet "yaml:\\"labels\\"" }'
    )
    for item in as_seq(node, "discovery.StaticConfig"):
        if is_null(item):
            raise YamlError("empty or null section in static_configs")
        s = Struct(item, group_type, ("targets", "labels"))
        out.append(StaticConfig(targets=s.str_list("targets"), labels=label_set(s.get("labels"))))
    return tuple(out)


def file_sd_configs(node: Node | None, base: str) -> tuple[FileSDConfig, ...]:
    out = []
    for item in as_seq(node, "[]*file.SDConfig"):
        if is_null(item):
            raise YamlError("empty or null section in file_sd_configs")
        s = Struct(item, "file.SDConfig", ("files", "refresh_interval"))
        files = s.str_list("files")
        if not files:
            raise YamlError("file service discovery config must contain at least one path name")
        for name in files:
            if not _FILE_SD_NAME.match(name):
                raise YamlError(f"path name {go_quote(name)} is not valid for file discovery")
        refresh = duration(s, "refresh_interval") or 300_000
        out.append(
            FileSDConfig(files=tuple(join_dir(base, f) for f in files), refresh_interval_ms=refresh)
        )
    return tuple(out)


def refuse_other_sd(s: Struct, where: str) -> None:
    for key in SD_KEYS[2:]:
        if s.has(key) and as_seq(s.get(key), "discovery.Configs"):
            raise unsupported(key, f"{where}; use static_configs or file_sd_configs")


def check_static_targets(groups: Iterable[StaticConfig]) -> None:
    """Prometheus refuses URLs as static targets unless relabeling may fix them."""
    for g in groups:
        for t in g.targets:
            if "/" in t:
                raise YamlError(f"{go_quote(t)} is not a valid hostname")


# --- small values --------------------------------------------------------------------------


def duration(s: Struct, key: str, default: int = 0) -> int:
    """A ``model.Duration`` field in milliseconds (null is 0, as in Go)."""
    if not s.has(key):
        return default
    node = s.get(key)
    if is_null(node):
        return 0
    try:
        return parse_duration_ms(as_str(node))
    except ValueError as e:
        raise YamlError(str(e)) from None


_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


def check_url(raw: str) -> None:
    """The errors of Go's ``url.Parse`` that a config can trigger (``parse "u": why``)."""

    def fail(why: str) -> YamlError:
        return YamlError(f"parse {go_quote(raw)}: {why}")

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise fail("net/url: invalid control character in URL")
    rest = raw.split("#", 1)[0]
    scheme = ""
    for i, c in enumerate(rest):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-.") and i > 0:
            continue
        if c == ":":
            if i == 0:
                raise fail("missing protocol scheme")
            scheme, rest = rest[:i], rest[i + 1 :]
        break
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        if scheme:
            return  # opaque URL such as mailto:x
        if ":" in rest.split("/", 1)[0]:
            raise fail("first path segment in URL cannot contain colon")
    if rest.startswith("//"):
        authority, _, rest = rest[2:].partition("/")
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            port = host[host.find("]") + 1 :] if "]" in host else ""
            if "]" not in host:
                raise fail("missing ']' in host")
        else:
            port = host[host.find(":") :] if ":" in host else ""
        if port and (port[0] != ":" or not port[1:].isdigit()) and port != ":":
            raise fail(f"invalid port {go_quote(port)} after host")
        m = _ESCAPE.search(host)
        if m is not None:
            raise fail(f"invalid URL escape {go_quote(host[m.start() : m.start() + 3])}")
    m = _ESCAPE.search(rest)
    if m is not None:
        raise fail(f"invalid URL escape {go_quote(rest[m.start() : m.start() + 3])}")
