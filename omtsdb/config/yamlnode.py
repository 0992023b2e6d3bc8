"""YAML decoding the way Prometheus's (``gopkg.in/yaml.v2``, strict mode) does it.

PyYAML's safe loader only *composes* the document into nodes here (no object is constructed
from tags), so that we keep line numbers and the original scalar text. Scalars are resolved with
yaml.v2's rules (``y``/``n`` are booleans, a number given where a string is expected keeps its
text, ``null`` leaves a field at Go's zero value) and errors read like yaml.v2's::

    yaml: unmarshal errors:
      line 3: field foo not found in type config.ScrapeConfig
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"))
_FALSE = frozenset(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"))
_SPECIAL_FLOATS = {
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}
_GO_INT = re.compile(r"^[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_YAML_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")

MAX_UINT64 = (1 << 64) - 1
MAX_INT64 = (1 << 63) - 1


class YamlError(Exception):
    """A decoding error; the loader prefixes the file. ``line`` is 1-based, 0 when unknown."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message


def unmarshal_error(node: Node | None, what: str) -> YamlError:
    line = line_of(node)
    return YamlError(f"yaml: unmarshal errors:\n  line {line}: {what}", line)


def line_of(node: Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def compose(text: str) -> Node | None:
    """The document's root node (``None`` for an empty document). Raises YamlError."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = e.problem or e.context or "invalid YAML"
        raise YamlError(f"yaml: line {line}: {problem}", line) from None
    except yaml.YAMLError as e:
        raise YamlError(f"yaml: {e}") from None


def is_null(node: Node | None) -> bool:
    return node is None or (
        isinstance(node, ScalarNode) and node.style is None and node.value in _NULLS
    )


def resolve(node: ScalarNode) -> tuple[str, object]:
    """yaml.v2's implicit resolution of a scalar: (short tag, value)."""
    v = node.value
    if node.style is not None:  # quoted or block scalar
        return "!!str", v
    if v in _NULLS:
        return "!!null", None
    if v in _TRUE:
        return "!!bool", True
    if v in _FALSE:
        return "!!bool", False
    if v in _SPECIAL_FLOATS:
        return "!!float", _SPECIAL_FLOATS[v]
    plain = v.replace("_", "")
    if plain and (plain[0].isdigit() or plain[0] in "+-."):
        if _GO_INT.match(plain):
            return "!!int", _go_int(plain)
        if _YAML_FLOAT.match(plain):
            return "!!float", float(plain)
    return "!!str", v


def _go_int(s: str) -> int:
    sign = -1 if s[0] == "-" else 1
    body = s.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        return sign * int(body, 8)
    return sign * int(body, 0)


def _tag_of(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "!!seq"
    if isinstance(node, MappingNode):
        return "!!map"
    assert isinstance(node, ScalarNode)
    return resolve(node)[0]


def type_error(node: Node, go_type: str) -> YamlError:
    tag = _tag_of(node)
    if isinstance(node, ScalarNode):
        return unmarshal_error(node, f"cannot unmarshal {tag} `{node.value}` into {go_type}")
    return unmarshal_error(node, f"cannot unmarshal {tag} into {go_type}")


# --- scalars -------------------------------------------------------------------------------


def as_str(node: Node | None) -> str:
    """A Go ``string``: any scalar keeps its text; null is ``""``."""
    if is_null(node):
        return ""
    assert node is not None
    if not isinstance(node, ScalarNode):
        raise type_error(node, "string")
    return str(node.value)


def as_bool(node: Node | None) -> bool:
    if is_null(node):
        return False
    assert node is not None
    if isinstance(node, ScalarNode):
        tag, v = resolve(node)
        if tag == "!!bool":
            return bool(v)
    raise type_error(node, "bool")


def as_int(node: Node | None, go_type: str = "int", *, unsigned: bool = False) -> int:
    """A Go integer (``int``, ``uint``, ``uint64``); floats are truncated as yaml.v2 does."""
    if is_null(node):
        return 0
    assert node is not None
    if isinstance(node, ScalarNode):
        tag, v = resolve(node)
        lo = 0 if unsigned else -(1 << 63)
        hi = MAX_UINT64 if unsigned else MAX_INT64
        if tag == "!!int" and isinstance(v, int) and lo <= v <= hi:
            return v
        if tag == "!!float" and isinstance(v, float) and math.isfinite(v) and lo <= v <= hi:
            return int(v)
    raise type_error(node, go_type)


def as_float(node: Node | None) -> float:
    if is_null(node):
        return 0.0
    assert node is not None
    if isinstance(node, ScalarNode):
        tag, v = resolve(node)
        if tag in ("!!int", "!!float") and isinstance(v, int | float):
            return float(v)
    raise type_error(node, "float64")


# --- collections ---------------------------------------------------------------------------


def as_seq(node: Node | None, go_type: str) -> list[Node]:
    """Items of a sequence (null is an empty list)."""
    if is_null(node):
        return []
    assert node is not None
    if not isinstance(node, SequenceNode):
        raise type_error(node, go_type)
    return list(node.value)


def as_str_list(node: Node | None) -> tuple[str, ...]:
    return tuple(as_str(item) for item in as_seq(node, "[]string"))


def map_pairs(node: MappingNode) -> Iterator[tuple[ScalarNode | Node, Node]]:
    """Key/value nodes with ``<<`` merges applied (explicit keys win, as in yaml.v2)."""
    merged: list[tuple[Node, Node]] = []
    own: list[tuple[Node, Node]] = []
    for k, v in node.value:
        if k.tag == _MERGE_TAG:
            sources = v.value if isinstance(v, SequenceNode) else [v]
            for src in sources:
                if not isinstance(src, MappingNode):
                    raise unmarshal_error(src, "map merge requires map or sequence of maps")
                merged.extend(map_pairs(src))
        else:
            own.append((k, v))
    if merged:
        own_keys = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        yield from ((k, v) for k, v in merged if k.value not in own_keys)
    yield from own


def as_str_map(node: Node | None, go_type: str = "map[string]string") -> dict[str, Node]:
    """A Go map with string keys: key text to value node (duplicates are an error)."""
    if is_null(node):
        return {}
    assert node is not None
    if not isinstance(node, MappingNode):
        raise type_error(node, go_type)
    out: dict[str, Node] = {}
    for k, v in map_pairs(node):
        key = as_str(k)
        if key in out:
            raise unmarshal_error(k, f'key "{key}" already set in map')
        out[key] = v
    return out


def as_str_str_map(node: Node | None) -> dict[str, str]:
    return {k: as_str(v) for k, v in as_str_map(node).items()}


class Struct:
    """A mapping decoded into a Go struct: unknown and duplicate keys are errors.

    ``Struct(node, "config.ScrapeConfig", known)``; ``get(key)`` is the value node or ``None``;
    ``has(key)`` tells whether the key was written (even as ``null``).
    """

    __slots__ = ("_fields", "node", "type_name")

    def __init__(self, node: Node | None, type_name: str, known: Iterable[str]) -> None:
        self.node = node
        self.type_name = type_name
        self._fields: dict[str, tuple[Node, Node]] = {}
        if is_null(node):
            return
        assert node is not None
        if not isinstance(node, MappingNode):
            raise type_error(node, type_name)
        allowed = frozenset(known)
        for k, v in map_pairs(node):
            name = k.value if isinstance(k, ScalarNode) else ""
            if name not in allowed:
                shown = name if isinstance(k, ScalarNode) else "?"
                raise unmarshal_error(k, f"field {shown} not found in type {type_name}")
            if name in self._fields and k is not self._fields[name][0]:
                raise unmarshal_error(k, f"field {name} already set in type {type_name}")
            self._fields[name] = (k, v)

    def has(self, key: str) -> bool:
        return key in self._fields

    def get(self, key: str) -> Node | None:
        kv = self._fields.get(key)
        return kv[1] if kv is not None else None

    def names(self) -> list[str]:
        return list(self._fields)

    def key_node(self, key: str) -> Node | None:
        kv = self._fields.get(key)
        return kv[0] if kv is not None else None

    # Typed accessors: the default applies only when the key is absent; an explicit null
    # yields Go's zero value, as yaml.v2 does.

    def string(self, key: str, default: str = "") -> str:
        return as_str(self.get(key)) if self.has(key) else default

    def boolean(self, key: str, default: bool = False) -> bool:
        return as_bool(self.get(key)) if self.has(key) else default

    def integer(self, key: str, default: int = 0, go_type: str = "int") -> int:
        return as_int(self.get(key), go_type) if self.has(key) else default

    def unsigned(self, key: str, default: int = 0, go_type: str = "uint") -> int:
        return as_int(self.get(key), go_type, unsigned=True) if self.has(key) else default

    def number(self, key: str, default: float = 0.0) -> float:
        return as_float(self.get(key)) if self.has(key) else default

    def str_list(self, key: str) -> tuple[str, ...]:
        return as_str_list(self.get(key))

    def seq(self, key: str, go_type: str) -> list[Node]:
        return as_seq(self.get(key), go_type)
