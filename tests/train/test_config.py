"""Config: YAML + overrides -> typed dataclasses; unknown keys and bad values are errors naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from unidual.train.config import ConfigError, TrainConfig, apply_override, dump_config, load_config
from unidual.yamlconfig import Checked, FieldError, checked, from_dict, positive, recheck, within

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
    with pytest.raises(ConfigError, match=r"no list item keyed 'flow' \(keys: \['img', 'vid'\]\)"):
        apply_override({"sources": [{"key": "img"}, {"key": "vid"}]}, "sources.flow.head=vid")


def test_override_addresses_a_source_by_its_key():
    """``sources.<key>.x`` reaches the source keyed so wherever it sits (study rows reorder and drop sources)."""
    raw = {"sources": [{"key": "vid"}, {"key": "img"}]}
    apply_override(raw, "sources.img.head=vid")
    apply_override(raw, "sources.0.loss_weight=2")
    assert raw["sources"] == [{"key": "vid", "loss_weight": 2}, {"key": "img", "head": "vid"}]


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


@dataclass
class Inner(Checked):
    rate: float = checked(0.5, within(0, 1))
    low: int = 0
    high: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low > self.high:
            raise FieldError("low", f"must be <= high={self.high}, got {self.low}")


@dataclass
class Outer(Checked):
    size: int = checked(1, positive)
    inner: list[Inner] = field(default_factory=list)


def test_checks_sit_beside_their_fields_and_errors_name_path_and_file():
    """The one validation style (unidual.yamlconfig): a field's check on the field, the path and file from from_dict."""
    assert from_dict(Outer, {"size": 2, "inner": [{"rate": 1.0}]}) == Outer(2, [Inner(1.0)])
    for raw, message in [
        ({"size": 0}, "f.yaml: size: must be > 0, got 0"),
        ({"inner": [{}, {"rate": 1.5}]}, "f.yaml: inner.1.rate: must be in [0, 1], got 1.5"),
        ({"inner": [{"low": 2}]}, "f.yaml: inner.0.low: must be <= high=1, got 2"),
    ]:
        with pytest.raises(ConfigError) as err:
            from_dict(Outer, raw, "f.yaml")
        assert str(err.value) == message
    with pytest.raises(FieldError, match="rate: must be in"):  # built in code: the same check
        Inner(rate=2.0)
    built = from_dict(Outer, {"inner": [{}]})
    built.inner[0].high = -1  # changed after building: recheck finds it
    with pytest.raises(ConfigError, match=r"^code: inner\.0\.low: must be <= high=-1, got 0$"):
        recheck(built, "code")


def test_validate_checks_a_config_changed_after_loading(tmp_path):
    from unidual.train.config import validate

    cfg = load_config(write(tmp_path, {"sources": SOURCES}))
    cfg.optim.lr = -1.0
    with pytest.raises(ConfigError, match=r"^changed: optim\.lr: must be > 0, got -1\.0$"):
        validate(cfg, "changed")
    cfg.optim.lr, cfg.data.weights = 0.1, {"nope": 1.0}
    with pytest.raises(ConfigError, match=r"data\.weights: no source named \['nope'\]"):
        validate(cfg, "changed")


@pytest.mark.parametrize(
    "override, message",
    [
        ("run.log_every=0", "run.log_every: must be >= 1, got 0"),
        ("schedule.warmup_epochs=50", "schedule.warmup_epochs: must be in [0, epochs=45], got 50"),
        ("finetune.convert=inflate", "finetune.convert: converts the weights of finetune.checkpoint, which is not set"),
        ("model.depth=7", "model.depth: must be one of [10, 18, 26, 34, 50, 101, 152], got 7"),
        ("run.device=gpu", "run.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("regime=joint", "regime: must be one of ['separate', 'finetune', 'multitask', 'unidual', 'unidual_aux']"),
    ],
)
def test_each_bad_value_is_one_line_naming_the_key(tmp_path, override, message):
    path = write(tmp_path, {"sources": SOURCES})
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)


def test_a_bare_off_in_yaml_is_the_choice_off(tmp_path):
    """YAML 1.1 reads ``amp: off`` as the boolean false; a choice that includes "off" takes it as that."""
    from helpers.tinydata import tiny_config

    src = [{"key": "v", "modality": "video", "format": "folder", "root": str(tmp_path)}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(src, regime="separate", model="r2plus1d")) + "")
    text = path.read_text().replace("run:\n", "run:\n  amp: off\n", 1)
    path.write_text(text)
    assert load_config(path).run.amp == "off"
    assert load_config(path, ["run.amp=off"]).run.amp == "off"
    assert load_config(path, ["run.amp=bf16"]).run.amp == "bf16"
