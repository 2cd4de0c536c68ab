"""Config: YAML + overrides -> typed dataclasses; unknown keys and bad values are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from unidual.train.config import ConfigError, TrainConfig, apply_override, dump_config, load_config

SOURCES = [
    {"key": "cifar", "modality": "image", "format": "folder", "root": "/x/img"},
    {"key": "motion", "modality": "video", "format": "folder", "root": "/x/vid"},
]


def write(tmp_path: Path, data: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_yaml_and_overrides_build_typed_config(tmp_path):
    path = write(
        tmp_path,
        {
            "regime": "unidual_aux",
            "sources": SOURCES,
            "model": {"name": "unidual_aux", "depth": 10, "width": 0.25},
            "optim": {"lr": 0.1},
        },
    )
    cfg = load_config(
        path,
        [
            "optim.lr=0.05",
            "schedule.kind=cosine",
            "aux.routing=random",
            "aux.p=0.25",
            "sources.1.root=/y",
            "model.options={maxpool: true}",
        ],
    )
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.lr == 0.05 and isinstance(cfg.optim.lr, float)
    assert cfg.model.depth == 10 and cfg.model.width == 0.25
    assert cfg.schedule.kind == "cosine"
    assert (cfg.aux.routing, cfg.aux.p) == ("random", 0.25)
    assert cfg.sources[1].root == "/y" and cfg.sources[1].clip.frames == 8  # typed SourceSpec
    assert cfg.model.options == {"maxpool": True}
    assert cfg.modalities == {"cifar": "image", "motion": "video"}


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = write(tmp_path, {"sources": SOURCES, "optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "optim.lrr" in str(err.value) and str(path) in str(err.value)


def test_unknown_key_on_command_line(tmp_path):
    path = write(tmp_path, {"sources": SOURCES})
    with pytest.raises(ConfigError, match="schedule.warmup"):
        load_config(path, ["schedule.warmup=3"])
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        load_config(path, ["bogus=1"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.batch_size=abc", "optim.batch_size"),
        ("optim.batch_size=0", "optim.batch_size"),
        ("schedule.kind=linear", "schedule.kind"),
        ("run.amp=yes", "run.amp"),
        ("aux.p=1.5", "aux.p"),
        ("model.name=r2d", "model.name"),
        ("data.weights={nope: 1}", "data.weights"),
    ],
)
def test_bad_values_name_the_key(tmp_path, override, key):
    path = write(tmp_path, {"sources": SOURCES})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path, [override])


def test_override_syntax_errors(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        apply_override({}, "optim.lr")
    with pytest.raises(ConfigError, match="out of range"):
        apply_override({"sources": [{}]}, "sources.3.root=x")


def test_regime_consistency(tmp_path):
    one = write(tmp_path, {"regime": "separate", "sources": SOURCES[:1], "model": {"name": "r2d"}})
    assert load_config(one).regime == "separate"
    with pytest.raises(ConfigError, match="exactly one source"):
        load_config(one, ["sources=" + yaml.safe_dump(SOURCES, default_flow_style=True).strip()])
    with pytest.raises(ConfigError, match="finetune.checkpoint"):
        load_config(one, ["regime=finetune"])
    with pytest.raises(ConfigError, match="image and one video"):
        load_config(one, ["regime=unidual", "model.name=unidual"])


def test_base_merge_and_resolved_dump_roundtrip(tmp_path):
    write(tmp_path, {"sources": SOURCES, "optim": {"lr": 0.01, "momentum": 0.8}}, "base.yaml")
    child = write(tmp_path, {"base": "base.yaml", "optim": {"lr": 0.02}}, "child.yaml")
    cfg = load_config(child)
    assert (cfg.optim.lr, cfg.optim.momentum) == (0.02, 0.8)
    dump_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


@pytest.mark.parametrize(
    "override, key",
    [
        ("sources.0.clip.frames=0", "sources.0.clip"),
        ("sources.0.format=zip", "sources.0"),
        ("sources.1.transform.protocl=A", "sources.1.transform.protocl"),
        ("sources.1.clip.fps=fast", "sources.1.clip.fps"),
    ],
)
def test_source_errors_name_the_file_and_the_key(tmp_path, override, key):
    path = write(tmp_path, {"sources": SOURCES})
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert str(path) in str(err.value) and key in str(err.value)


def test_a_source_without_root_is_a_missing_key(tmp_path):
    path = write(tmp_path, {"sources": [{"key": "cifar", "modality": "image", "format": "folder"}]})
    with pytest.raises(ConfigError, match=r"sources\.0: missing required key 'root'"):
        load_config(path)


def test_config_differences_compare_resolved_values_only():
    from unidual.yamlconfig import config_differences

    a = {"optim": {"lr": 0.1, "momentum": 0.9}, "sources": [{"root": "/a"}], "run": {"progress": True}}
    b = {
        "optim": {"lr": 0.1, "momentum": 0.8},
        "sources": ({"root": "/b"},),
        "run": {"progress": False},
        "new": {"key": 1},
    }
    assert config_differences(a, b, ignore={"run.progress"}) == [
        ("optim.momentum", 0.9, 0.8),
        ("sources.0.root", "/a", "/b"),
    ]
    assert config_differences(a, a) == []
