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
from collections.abc import Callable, Sequence

from omtsdb.config.errors import ConfigError
from omtsdb.config.model import RelabelConfig
from omtsdb.config.regex import (
    Groups,
    Regex,
    RegexError,
    Template,
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


# A compiled rule: mutates the state, returns False when the label set is dropped.
_Rule = Callable[[_State], bool]


def _make_rule(cfg: RelabelConfig) -> _Rule:
    try:
        validate_relabel_config(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    rx: Regex = compile_regex(cfg.regex)
    act = cfg.action
    srcs = cfg.source_labels
    sep = cfg.separator
    target = cfg.target_label
    repl = cfg.replacement

    def value(d: dict[str, str]) -> str:
        if len(srcs) == 1:
            return d.get(srcs[0], "")
        return sep.join([d.get(n, "") for n in srcs])

    if act == "keep":
        return lambda st: rx.match(value(st.d))
    if act == "drop":
        return lambda st: not rx.match(value(st.d))
    if act == "keepequal":
        return lambda st: st.d.get(target, "") == value(st.d)
    if act == "dropequal":
        return lambda st: st.d.get(target, "") != value(st.d)
    if act in ("hashmod", "lowercase", "uppercase"):
        fn = {"hashmod": lambda v: _hashmod(v, cfg.modulus), "lowercase": go_lower}.get(
            act, go_upper
        )

        def set_fn(st: _State) -> bool:
            st.set(target, fn(value(st.d)))
            return True

        return set_fn
    rep_tpl = parse_template(repl, rx.group_names)
    replacement = _replacer(repl, rep_tpl)
    if act == "replace":
        return _make_replace(cfg, rx, value, replacement)
    if act == "labelmap":
        return _make_labelmap(rx, replacement)
    keep_matching = act == "labelkeep"  # labeldrop / labelkeep
    match = rx.match

    def filter_names(st: _State) -> bool:
        for name in [n for n in st.d if match(n) is not keep_matching]:
            st.delete(name)
        return True

    return filter_names


def _hashmod(value: str, modulus: int) -> str:
    digest = hashlib.md5(value.encode("utf-8")).digest()
    return str(int.from_bytes(digest[8:], "big") % modulus)


def _replacer(repl: str, tpl: Template) -> Callable[[Groups], str]:
    if "$" not in repl:
        return lambda groups: repl
    if len(tpl) == 1 and isinstance(tpl[0], int):
        i = tpl[0]
        return lambda groups: (groups[i] or "") if 0 <= i < len(groups) else ""
    return lambda groups: expand(tpl, groups)


def _make_replace(
    cfg: RelabelConfig,
    rx: Regex,
    value: Callable[[dict[str, str]], str],
    replacement: Callable[[Groups], str],
) -> _Rule:
    target = cfg.target_label
    const_target = "$" not in target
    const_repl = "$" not in cfg.replacement
    target_tpl = parse_template(target, rx.group_names)
    if cfg.regex == DEFAULT_REGEX and const_target and cfg.replacement == DEFAULT_REPLACEMENT:

        def copy(st: _State) -> bool:  # the common "copy a value" rule
            st.set(target, value(st.d))
            return True

        return copy
    # Prometheus's shortcut: an empty value with the default regex sets the literal replacement.
    fast_set = cfg.regex == DEFAULT_REGEX and const_target and const_repl
    groups_of = rx.groups

    def replace(st: _State) -> bool:
        val = value(st.d)
        if fast_set and val == "":
            st.set(target, cfg.replacement)
            return True
        groups = groups_of(val)
        if groups is None:
            return True
        name = target if const_target else expand(target_tpl, groups)
        if const_target or is_valid_label_name(name):
            st.set(name, replacement(groups))
        return True

    return replace


def _make_labelmap(rx: Regex, replacement: Callable[[Groups], str]) -> _Rule:
    groups_of = rx.groups

    def labelmap(st: _State) -> bool:
        for name, v in list(st.d.items()):
            groups = groups_of(name)
            if groups is not None:
                st.set(replacement(groups), v)
        return True

    return labelmap


class Relabeler:
    """A compiled list of relabel rules."""

    __slots__ = ("_rules", "configs")

    def __init__(self, cfgs: Sequence[RelabelConfig]) -> None:
        self.configs = tuple(cfgs)
        self._rules: tuple[_Rule, ...] = tuple(_compile_rule(c) for c in self.configs)

    def process(self, labels: Labels) -> Labels | None:
        if not self._rules:
            return labels
        flat = labels.flat
        it = iter(flat)
        st = _State(dict(zip(it, it, strict=False)))  # flat: name, value, name, ...
        for rule in self._rules:
            if not rule(st):
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
        rule = _make_rule(cfg)
        if len(_RULES) >= _CACHE_MAX:
            _RULES.clear()
        _RULES[cfg] = rule
    return rule


def compile_relabel(cfgs: Sequence[RelabelConfig]) -> Relabeler:
    """The compiled rules for ``cfgs``; a tuple (as in the loaded config) is cached by identity,
    other sequences may change and are compiled again (each rule is cached)."""
    if type(cfgs) is not tuple:
        return Relabeler(cfgs)
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
