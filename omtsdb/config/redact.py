"""The configuration as ``/api/v1/status/config`` shows it: secrets replaced by ``<secret>``,
as Prometheus prints them."""

from __future__ import annotations

from typing import Any

import yaml

SECRET_KEYS = frozenset(
    {
        "password",
        "credentials",
        "bearer_token",
        "client_secret",
        "secret_key",
        "key",
        "api_key",
        "token",
        "sasl_password",
    }
)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("<secret>" if k in SECRET_KEYS and v not in (None, "") else _walk(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_walk(v) for v in node]
    return node


def redacted_yaml(source: str) -> str:
    """``source`` with every secret value replaced (comments and layout are not kept)."""
    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError:
        return ""
    if doc is None:
        return ""
    return str(yaml.safe_dump(_walk(doc), sort_keys=False, default_flow_style=False))
