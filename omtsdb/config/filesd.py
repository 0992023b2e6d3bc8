"""File-based service discovery: read the target-group files of a ``file_sd_configs`` entry.

A file (``.json``, ``.yml``, ``.yaml``) holds a list of ``{targets: [...], labels: {...}}``.
Every group gets ``__meta_filepath`` (the file's path) and the source ``<path>:<index>``, as in
Prometheus. Watching and refreshing is the caller's job (the scrape manager polls): when a file
is bad, :func:`read_file_sd` still returns nothing for it but raises :class:`FileSDError` whose
``groups`` hold what the good files gave, so the caller can keep the bad file's previous groups.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from omtsdb.config.errors import ConfigError
from omtsdb.config.model import FileSDConfig
from omtsdb.config.sections import join_dir, label_set
from omtsdb.config.units import go_quote
from omtsdb.config.yamlnode import Struct, YamlError, as_seq, compose, is_null
from omtsdb.model.labels import Labels, is_valid_label_name

FILEPATH_LABEL = "__meta_filepath"
_GROUP_TYPE = (
    'struct { Targets []string "yaml:\\"targets\\""; Labels model.LabelSet "yaml:\\"labels\\"" }'
)


@dataclass(frozen=True)
class TargetGroup:
    """Targets (``host:port`` addresses) sharing labels; ``source`` identifies the group."""

    targets: tuple[str, ...]
    labels: Labels
    source: str


class FileSDError(ConfigError):
    """Some files could not be read. ``failed`` maps each bad file to its error; ``groups`` are
    the groups of the files that were read fine, in file order."""

    def __init__(
        self, message: str, *, failed: dict[str, str], groups: list[TargetGroup], path: str
    ) -> None:
        super().__init__(message, path=path)
        self.failed = failed
        self.groups = groups


def list_files(cfg: FileSDConfig, base_dir: str = "") -> list[str]:
    """Files matching the config's globs now, each once, in pattern then name order."""
    paths: list[str] = []
    known: set[str] = set()
    for pattern in cfg.files:
        for p in sorted(glob.glob(join_dir(base_dir, pattern), include_hidden=True)):
            if p not in known and os.path.isfile(p):
                known.add(p)
                paths.append(p)
    return paths


def read_file_sd(cfg: FileSDConfig, base_dir: str = "") -> list[TargetGroup]:
    """All groups of all files matching ``cfg.files`` (relative globs taken from ``base_dir``;
    the loader has already made them absolute). Raises FileSDError if any file is bad."""
    groups: list[TargetGroup] = []
    failed: dict[str, str] = {}
    for path in list_files(cfg, base_dir):
        try:
            groups.extend(read_target_file(path))
        except ConfigError as e:
            failed[path] = e.message
    if failed:
        first = next(iter(failed))
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise FileSDError(failed[first] + more, failed=failed, groups=groups, path=first)
    return groups


def read_target_file(path: str) -> list[TargetGroup]:
    """The groups of one file. Raises ConfigError (message starting with the path)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if ext == ".json":
            raw = _json_groups(text)
        elif ext in (".yml", ".yaml"):
            raw = _yaml_groups(text)
        else:
            raise ValueError(f"unhandled file extension {go_quote(ext)}")
    except (OSError, UnicodeDecodeError, ValueError, YamlError) as e:
        raise ConfigError(f"{path}: {e}", path=path) from None
    out = []
    for i, (targets, labels) in enumerate(raw):
        out.append(TargetGroup(targets, labels.set(FILEPATH_LABEL, path), f"{path}:{i}"))
    return out


def _json_groups(text: str) -> list[tuple[tuple[str, ...], Labels]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(
            f"json: cannot unmarshal {_json_kind(data)} into Go value of type []*targetgroup.Group"
        )
    out = []
    for item in data:
        if item is None:
            raise ValueError("nil target group item found")
        if not isinstance(item, dict):
            raise ValueError(
                f"json: cannot unmarshal {_json_kind(item)} into Go value of type targetgroup.Group"
            )
        for key in item:
            if key not in ("targets", "labels"):
                raise ValueError(f"json: unknown field {json.dumps(key)}")
        targets = item.get("targets")
        if targets is None:
            targets = []
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ValueError("json: cannot unmarshal targets: expected a list of strings")
        labels = item.get("labels")
        if labels is None:
            labels = {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError("json: cannot unmarshal labels: expected an object of strings")
        for name in labels:
            if not is_valid_label_name(name):
                raise ValueError(f"{go_quote(name)} is not a valid label name")
        out.append((tuple(targets), Labels(labels)))
    return out


def _json_kind(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    return "array"


def _yaml_groups(text: str) -> list[tuple[tuple[str, ...], Labels]]:
    out = []
    for node in as_seq(compose(text), "[]*targetgroup.Group"):
        if is_null(node):
            raise ValueError("nil target group item found")
        s = Struct(node, _GROUP_TYPE, ("targets", "labels"))
        out.append((s.str_list("targets"), label_set(s.get("labels"))))
    return out
