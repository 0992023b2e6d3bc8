"""Relabeling with every Prometheus 3 action, compiled once per rule list.

``relabel(labels, cfgs)`` returns the new label set, or ``None`` when a ``keep``/``drop``/
``keepequal``/``dropequal`` rule dropped it. Semantics follow Prometheus's ``relabel.Process``:
source values joined with the separator, regexes fully anchored (``^(?s:RE)$``), ``$1``/``${1}``/
``${name}`` expansion as Go's ``Regexp.Expand``, an empty result deletes the label, ``hashmod``
is the last 8 bytes (big-endian) of the MD5 of the value modulo ``modulus``.

For hot paths, ``compile_relabel(cfgs)`` returns a :class:`Relabeler` whose ``process`` skips the
per-call cache lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from omtsdb.config.errors import ConfigError
from omtsdb.config.model import RelabelConfig
from omtsdb.config.regex import (
    Groups,
    Regex,
    RegexError,
    compile_regex,
    expand,
    parse_template,
)
from omtsdb.config.units import go_quote
from omtsdb.model.labels import Labels, is_valid_label_name

ACTIONS = (
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
)
_NEEDS_TARGET = frozenset(
    ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal")
)
_NO_REPLACEMENT = frozenset(("lowercase", "uppercase", "keepequal", "dropequal"))
DEFAULT_REGEX = "(.*)"
DEFAULT_REPLACEMENT = "$1"
DEFAULT_SEPARATOR = ";"


# --- validation ----------------------------------------------------------------------------


def validate_relabel_config(
    cfg: RelabelConfig, *, regex_set: bool | None = None, source_labels_set: bool | None = None
) -> None:
    """Prometheus's ``relabel.Config.Validate``; raises ValueError with its message.

    ``regex_set``/``source_labels_set`` tell whether the YAML gave the key at all (Prometheus
    compares against the default *object*); without them the values are compared.
    """
    act = cfg.action
    if act == "":
        raise ValueError("relabel action cannot be empty")
    if act not in ACTIONS:
        raise ValueError(f"unknown relabel action {go_quote(act)}")
    if act == "hashmod" and cfg.modulus == 0:
        raise ValueError("relabel configuration for hashmod requires non-zero modulus")
    if act in _NEEDS_TARGET and cfg.target_label == "":
        raise ValueError(f"relabel configuration for {act} action requires 'target_label' value")
    if act in _NEEDS_TARGET and not is_valid_label_name(cfg.target_label):
        raise ValueError(f"{go_quote(cfg.target_label)} is invalid 'target_label' for {act} action")
    if act in _NO_REPLACEMENT and cfg.replacement != DEFAULT_REPLACEMENT:
        raise ValueError(f"'replacement' can not be set for {act} action")
    if act == "labelmap" and not is_valid_label_name(cfg.replacement):
        raise ValueError(f"{go_quote(cfg.replacement)} is invalid 'replacement' for {act} action")
    if act in ("keepequal", "dropequal"):
        regex_changed = regex_set if regex_set is not None else cfg.regex != DEFAULT_REGEX
        if (
            regex_changed
            or cfg.modulus != 0
            or cfg.separator != DEFAULT_SEPARATOR
            or cfg.replacement != DEFAULT_REPLACEMENT
        ):
            raise ValueError(
                f"{act} action requires only 'source_labels' and `target_label`, "
                "and no other fields"
            )
    if act in ("labeldrop", "labelkeep"):
        src_set = source_labels_set if source_labels_set is not None else bool(cfg.source_labels)
        if (
            src_set
            or cfg.target_label != ""
            or cfg.modulus != 0
            or cfg.separator != DEFAULT_SEPARATOR
            or cfg.replacement != DEFAULT_REPLACEMENT
        ):
            raise ValueError(f"{act} action requires only 'regex', and no other fields")
    for name in cfg.source_labels:
        if not is_valid_label_name(name):
            raise ValueError(f"{go_quote(name)} is not a valid label name")
    try:
        compile_regex(cfg.regex)
    except RegexError as e:
        raise ValueError(str(e)) from None


# --- processing ----------------------------------------------------------------------------


class _State:
    """Prometheus's ``labels.Builder``: the current labels plus which ones were (re)set.

    ``d`` keeps untouched input labels first (sorted) and set labels after them in the order
    they were first set, which is the order ``Builder.Range`` visits them (it matters when two
    ``labelmap`` results collide).
    """

    __slots__ = ("added", "d", "dirty")

    def __init__(self, d: dict[str, str]) -> None:
        self.d = d
        self.added: set[str] = set()
        self.dirty = False

    def set(self, name: str, value: str) -> None:
        self.dirty = True
        d = self.d
        if value == "":
            d.pop(name, None)
            self.added.discard(name)
        elif name in self.added:
            d[name] = value
        else:
            d.pop(name, None)
            d[name] = value
            self.added.add(name)

    def delete(self, name: str) -> None:
        if name in self.d:
            self.dirty = True
            del self.d[name]
            self.added.discard(name)


class _Rule:
    __slots__ = (
        "action",
        "fast_set",
        "modulus",
        "regex",
        "rep_const",
        "rep_tpl",
        "replacement",
        "separator",
        "sources",
        "target",
        "target_const",
        "target_tpl",
    )

    def __init__(self, cfg: RelabelConfig) -> None:
        try:
            validate_relabel_config(cfg)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.regex: Regex = compile_regex(cfg.regex)
        self.action = cfg.action
        self.sources = cfg.source_labels
        self.separator = cfg.separator
        self.modulus = cfg.modulus
        self.target = cfg.target_label
        self.replacement = cfg.replacement
        names = self.regex.group_names
        self.target_tpl = parse_template(cfg.target_label, names)
        self.rep_tpl = parse_template(cfg.replacement, names)
        self.target_const = "$" not in cfg.target_label
        self.rep_const = "$" not in cfg.replacement
        # Prometheus's shortcut: an empty value with the default regex sets the literal
        # replacement (same result as the general path, without matching).
        self.fast_set = cfg.regex == DEFAULT_REGEX and self.target_const and self.rep_const

    def value(self, d: dict[str, str]) -> str:
        srcs = self.sources
        if len(srcs) == 1:
            return d.get(srcs[0], "")
        return self.separator.join([d.get(n, "") for n in srcs])

    def apply(self, st: _State) -> bool:
        act = self.action
        d = st.d
        if act == "replace":
            val = self.value(d)
            if val == "" and self.fast_set:
                st.set(self.target, self.replacement)
                return True
            groups = self.regex.groups(val)
            if groups is None:
                return True
            target = self.target if self.target_const else expand(self.target_tpl, groups)
            if not is_valid_label_name(target):
                return True
            st.set(target, self._replacement(groups))
            return True
        if act == "keep":
            return self.regex.match(self.value(d))
        if act == "drop":
            return not self.regex.match(self.value(d))
        if act == "keepequal":
            return d.get(self.target, "") == self.value(d)
        if act == "dropequal":
            return d.get(self.target, "") != self.value(d)
        if act == "hashmod":
            digest = hashlib.md5(self.value(d).encode("utf-8")).digest()
            st.set(self.target, str(int.from_bytes(digest[8:], "big") % self.modulus))
            return True
        if act == "lowercase":
            st.set(self.target, go_lower(self.value(d)))
            return True
        if act == "uppercase":
            st.set(self.target, go_upper(self.value(d)))
            return True
        if act == "labelmap":
            for name, v in list(d.items()):
                groups = self.regex.groups(name)
                if groups is not None:
                    st.set(self._replacement(groups), v)
            return True
        if act == "labeldrop":
            match = self.regex.match
            for name in [n for n in d if match(n)]:
                st.delete(name)
            return True
        if act == "labelkeep":
            match = self.regex.match
            for name in [n for n in d if not match(n)]:
                st.delete(name)
            return True
        raise AssertionError(act)  # ACTIONS is checked in __init__

    def _replacement(self, groups: Groups) -> str:
        if self.rep_const:
            return self.replacement
        tpl = self.rep_tpl
        if len(tpl) == 1 and not isinstance(tpl[0], str):
            i = tpl[0]
            return (groups[i] or "") if 0 <= i < len(groups) else ""
        return expand(tpl, groups)


class Relabeler:
    """A compiled list of relabel rules."""

    __slots__ = ("_rules", "configs")

    def __init__(self, cfgs: Sequence[RelabelConfig]) -> None:
        self.configs = tuple(cfgs)
        self._rules = tuple(_compile_rule(c) for c in self.configs)

    def process(self, labels: Labels) -> Labels | None:
        if not self._rules:
            return labels
        flat = labels.flat
        st = _State(dict(zip(flat[0::2], flat[1::2], strict=True)))
        for rule in self._rules:
            if not rule.apply(st):
                return None
        if not st.dirty:
            return labels
        d = st.d
        out: list[str] = []
        for name in sorted(d):
            out.append(name)
            out.append(d[name])
        new = tuple(out)
        return labels if new == flat else Labels.from_flat(new)

    __call__ = process


_RULES: dict[RelabelConfig, _Rule] = {}
_LISTS: dict[int, tuple[Sequence[RelabelConfig], Relabeler]] = {}
_CACHE_MAX = 4096


def _compile_rule(cfg: RelabelConfig) -> _Rule:
    rule = _RULES.get(cfg)
    if rule is None:
        rule = _Rule(cfg)
        if len(_RULES) >= _CACHE_MAX:
            _RULES.clear()
        _RULES[cfg] = rule
    return rule


def compile_relabel(cfgs: Sequence[RelabelConfig]) -> Relabeler:
    """The compiled rules for ``cfgs`` (cached by identity of the sequence)."""
    hit = _LISTS.get(id(cfgs))
    if hit is not None and hit[0] is cfgs:
        return hit[1]
    r = Relabeler(cfgs)
    if len(_LISTS) >= _CACHE_MAX:
        _LISTS.clear()
    _LISTS[id(cfgs)] = (cfgs, r)
    return r


def relabel(labels: Labels, cfgs: Sequence[RelabelConfig]) -> Labels | None:
    """Apply ``cfgs`` in order; ``None`` when the label set is dropped."""
    if not cfgs:
        return labels
    return compile_relabel(cfgs).process(labels)


# --- Go's strings.ToLower / ToUpper (simple, per-character case mapping) --------------------


def go_lower(s: str) -> str:
    if s.isascii():
        return s.lower()
    return "".join(_simple(c, c.lower()) for c in s)


def go_upper(s: str) -> str:
    if s.isascii():
        return s.upper()
    return "".join(_simple(c, c.upper()) for c in s)


def _simple(c: str, mapped: str) -> str:
    if len(mapped) == 1:
        return mapped
    if c == "\u0130":  # İ: full mapping is "i̇", the simple one (Go's) is "i"
        return "i"
    return c  # no single-character mapping (ß, ligatures ...): Go leaves it
