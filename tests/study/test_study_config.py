"""Study files: validation errors name the key; dependency order; the shipped studies resolve."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.tinystudy import write_tiny_study

from unidual.study.config import StudyError, load_study
from unidual.study.runner import Task, plan, resolve_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "cpu"


def edit(path: Path, **changes) -> Path:
    raw = yaml.safe_load(path.read_text())
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_dependency_order_and_only(tmp_path, photos):
    models = [
        {"id": "ft", "row": "FT", "config": "r2plus1d_finetuned.yaml", "pretrained": "pre"},
        {"id": "joint", "row": "J", "config": "unidual_aux.yaml"},
        {"id": "pre", "row": "P", "config": "r2d.yaml"},
    ]
    study = load_study(write_tiny_study(tmp_path, photos, models=models))
    assert [m.id for m in study.ordered()] == ["joint", "pre", "ft"]  # pretraining before finetuning
    assert [m.id for m in study.ordered(["ft"])] == ["pre", "ft"]  # --only pulls in the dependency
    tasks = plan(study, tmp_path / "out", [3, 4], ["ft"])
    assert [(t.seed, t.model.id) for t in tasks] == [(3, "pre"), (3, "ft"), (4, "pre"), (4, "ft")]
    assert tasks[1].pretrained_dir == tmp_path / "out" / "seed3" / "pre"
    with pytest.raises(StudyError, match="no such model id"):
        study.ordered(["nope"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": 1}, "unknown key"),
        ({"name": "has space"}, "name"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"models": [{"id": "x", "row": "X", "config": "missing.yaml"}]}, "training config not found"),
        ({"models": [{"id": "x", "row": "X", "config": "r2d.yaml", "pretrained": "y"}]}, "not a model id"),
        ({"models": [{"id": "x", "row": "X", "config": "r2d.yaml", "pretrained": "x"}]}, "cycle"),
        ({"models": [{"id": "x", "row": "X", "config": "r2d.yaml", "report": ["other"]}]}, "not table columns"),
        ({"eval": {"clips": 0}}, "eval.clips"),
    ],
)
def test_bad_study_files_name_the_problem(tmp_path, photos, change, message):
    path = edit(write_tiny_study(tmp_path, photos), **change)
    with pytest.raises(StudyError, match=message) as info:
        load_study(path)
    assert str(path) in str(info.value)


def test_finetune_needs_a_pretrained_run(tmp_path, photos):
    from unidual.train.config import ConfigError

    models = [{"id": "ft", "row": "FT", "config": "r2plus1d_finetuned.yaml"}]
    study = load_study(write_tiny_study(tmp_path, photos, models=models, extra={"columns": [{"source": "vid"}]}))
    task = Task(0, study.models[0], tmp_path / "out" / "seed0" / "ft", None)
    with pytest.raises(ConfigError, match="pretrained"):
        resolve_config(study, task, None)


TABLE2_ROWS = [
    "R2D",
    "R(2+1)D",
    "R2D-finetuned",
    "R(2+1)D-finetuned",
    "R2D-multitask",
    "R(2+1)D-multitask",
    "R2D-LSTM-multitask",
    "UniDual",
    "UniDual-Aux",
]


# recipe: depth, width, batch, epochs, examples per source and epoch, clip frames, clip stride
@pytest.mark.parametrize(
    "folder, rows, recipe",
    [
        ("study", TABLE2_ROWS, (10, 0.25, 32, 9, 2500, 8, 2)),
        ("study3", ["R2D", "R(2+1)D", "UniDual-Aux"], (10, 0.25, 32, 9, 2500, 8, 2)),
        ("study_default", TABLE2_ROWS, (10, 0.25, 16, 15, 640, 8, 1)),
        ("study_fewvideos", ["R(2+1)D", "R(2+1)D-multitask", "UniDual", "UniDual-Aux"], (10, 0.25, 32, 9, 2500, 8, 2)),
        ("ablation", None, (10, 0.25, 32, 9, 2500, 8, 2)),
    ],
)
def test_shipped_studies_resolve(tmp_path, folder, rows, recipe):
    """Every run of the shipped studies resolves (seed, finetune link) with the same budget recipe."""
    depth, width, batch, epochs, per_source, frames, stride = recipe
    study = load_study(CONFIGS / folder / "study.yaml")
    if rows is not None:
        assert list(dict.fromkeys(m.row for m in study.models)) == rows
    tasks = plan(study, tmp_path, [0])  # seed 0: every row runs it
    configs = {t.model.id: resolve_config(study, t, None) for t in tasks}
    for task in tasks:
        cfg = configs[task.model.id]
        assert cfg.run.seed == 0
        assert (cfg.model.depth, cfg.model.width, cfg.optim.batch_size, cfg.schedule.epochs) == (
            depth,
            width,
            batch,
            epochs,
        )
        assert cfg.data.epoch_size == per_source * len(cfg.sources)  # joint epochs: one share per source
        for src in cfg.sources:
            if src.modality == "video":
                assert (src.clip.frames, src.clip.stride) == (frames, stride)
        if task.pretrained_dir is not None:
            assert cfg.finetune.checkpoint == str(tmp_path / "seed0" / task.model.pretrained / "last.pt")
    if rows == TABLE2_ROWS:
        assert configs["r2d_finetuned"].finetune.convert == "deflate"
        assert configs["r2plus1d_finetuned"].finetune.convert == "inflate"
        assert [t.model.id for t in plan(study, tmp_path, [4])] == [  # 5 seeds for the compared rows only
            "r2d",
            "r2plus1d",
            "r2d_multitask",
            "r2plus1d_multitask",
            "unidual",
            "unidual_aux",
        ]
        order = [m.id for m in study.ordered()]
        assert order.index("r2plus1d") < order.index("r2d_finetuned") and order.index("r2d") < order.index(
            "r2plus1d_finetuned"
        )


def test_table2_studies_share_their_rows_through_base(tmp_path):
    main = load_study(CONFIGS / "study/study.yaml")
    default = load_study(CONFIGS / "study_default/study.yaml")
    assert [m.id for m in main.models] == [m.id for m in default.models] and len(main.models) == 9
    assert main.models[0].model == "r2d" and main.models[0].config is None  # rows name models of the table
    assert (
        main.train_config == CONFIGS / "study/base.yaml" and default.train_config == CONFIGS / "study_default/base.yaml"
    )
    assert (main.eval.clips, default.eval.clips) == (10, 1)  # a study's own keys win over the base
    child = tmp_path / "child.yaml"
    child.write_text(
        f"base: {CONFIGS / 'table2-study.yaml'}\nname: x\neval: {{clips: 0}}\ncolumns: [{{source: motion}}]\n"
    )
    with pytest.raises(StudyError, match=r"eval\.clips"):
        load_study(child)


def test_alias_bomb_and_binary_study_files_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    )
    with pytest.raises(StudyError, match="alias bomb"):
        load_study(bomb)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(StudyError, match="not a text file"):
        load_study(binary)
