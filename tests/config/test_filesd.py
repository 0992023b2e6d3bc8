"""File-based service discovery files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omtsdb.config import (
    ConfigError,
    FileSDConfig,
    FileSDError,
    TargetGroup,
    parse_config,
    read_file_sd,
    read_target_file,
)
from omtsdb.model.labels import Labels


def test_json_and_yaml(tmp_path: Path) -> None:
    j = tmp_path / "a.json"
    j.write_text(
        json.dumps(
            [
                {"targets": ["a:1", "b:2"], "labels": {"env": "prod", "service.name": "x"}},
                {"targets": ["c:3"]},
                {"labels": {"only": "labels"}},
            ]
        )
    )
    y = tmp_path / "b.YML"
    y.write_text("- targets: [d:4]\n  labels: {team: core}\n- targets: []\n")
    assert read_target_file(str(j)) == [
        TargetGroup(
            ("a:1", "b:2"),
            Labels({"env": "prod", "service.name": "x", "__meta_filepath": str(j)}),
            f"{j}:0",
        ),
        TargetGroup(("c:3",), Labels({"__meta_filepath": str(j)}), f"{j}:1"),
        TargetGroup((), Labels({"only": "labels", "__meta_filepath": str(j)}), f"{j}:2"),
    ]
    assert read_target_file(str(y)) == [
        TargetGroup(("d:4",), Labels({"team": "core", "__meta_filepath": str(y)}), f"{y}:0"),
        TargetGroup((), Labels({"__meta_filepath": str(y)}), f"{y}:1"),
    ]


def test_empty_files(tmp_path: Path) -> None:
    for name, text in (("e.json", "[]"), ("n.json", "null"), ("e.yml", ""), ("n.yaml", "[]")):
        (tmp_path / name).write_text(text)
        assert read_target_file(str(tmp_path / name)) == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("x.json", "[{", "invalid JSON"),
        (
            "x.json",
            '{"targets": []}',
            "cannot unmarshal object into Go value of type []*targetgroup.Group",
        ),
        ("x.json", '[{"targets": ["a:1"], "foo": 1}]', 'json: unknown field "foo"'),
        ("x.json", "[null]", "nil target group item found"),
        ("x.json", '[{"targets": [1]}]', "expected a list of strings"),
        ("x.json", '[{"labels": {"": "x"}}]', '"" is not a valid label name'),
        ("x.json", '[{"labels": {"a": 1}}]', "expected an object of strings"),
        ("x.yml", "- targets: [a:1]\n  foo: 1\n", "line 2: field foo not found in type struct"),
        ("x.yml", "- targets: a:1\n", "cannot unmarshal !!str `a:1` into []string"),
        ("x.yml", "targets: [a]\n", "cannot unmarshal !!map into []*targetgroup.Group"),
        ("x.yml", "- null\n", "nil target group item found"),
        ("x.yml", "- labels: {'': x}\n", '"" is not a valid label name'),
        ("x.yml", "- [a\n", "yaml: line"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        read_target_file(str(p))
    assert str(ei.value).startswith(f"{p}: ")
    assert message in str(ei.value)
    assert ei.value.path == str(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        read_target_file(str(tmp_path / "gone.json"))


def test_globs_order_dedupe_and_base_dir(tmp_path: Path) -> None:
    d = tmp_path / "sd"
    d.mkdir()
    for name in ("b.json", "a.json", ".hidden.json", "c.yml"):
        (d / name).write_text(json.dumps([{"targets": [name.split(".")[-2] + ":1"]}]))
    (d / "dir.json").mkdir()  # directories are skipped
    cfg = FileSDConfig(files=("sd/*.json", "sd/a.json", "sd/*.yml", "sd/none*.json"))
    groups = read_file_sd(cfg, str(tmp_path))
    assert [g.targets for g in groups] == [("hidden:1",), ("a:1",), ("b:1",), ("c:1",)]
    assert groups[1].labels.get("__meta_filepath") == str(d / "a.json")
    assert read_file_sd(FileSDConfig(files=(str(d / "a.json"),)), "/elsewhere")[0].targets == (
        "a:1",
    )


def test_bad_file_keeps_the_good_ones(tmp_path: Path) -> None:
    (tmp_path / "1.json").write_text('[{"targets": ["a:1"]}]')
    (tmp_path / "2.json").write_text("[{")
    (tmp_path / "3.yml").write_text("- targets: [c:3]\n")
    (tmp_path / "4.yml").write_text("- foo: 1\n")
    cfg = FileSDConfig(files=(str(tmp_path / "*.json"), str(tmp_path / "*.yml")))
    with pytest.raises(FileSDError) as ei:
        read_file_sd(cfg)
    e = ei.value
    assert isinstance(e, ConfigError)
    assert set(e.failed) == {str(tmp_path / "2.json"), str(tmp_path / "4.yml")}
    assert [g.targets for g in e.groups] == [("a:1",), ("c:3",)]
    assert str(e).startswith(f"{tmp_path / '2.json'}: ") and str(e).endswith("(and 1 more)")


def test_with_loaded_config(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "t.yaml").write_text("- targets: [x:9]\n")
    main = tmp_path / "prometheus.yml"
    text = "scrape_configs:\n- job_name: j\n  file_sd_configs: [{files: [targets/*.yaml]}]\n"
    (sd,) = parse_config(text, str(main)).scrape_configs[0].file_sd_configs
    (g,) = read_file_sd(sd)
    assert g.targets == ("x:9",) and g.source == f"{tmp_path / 'targets' / 't.yaml'}:0"
