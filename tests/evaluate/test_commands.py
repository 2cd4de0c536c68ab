"""`unidual eval` on a saved slim checkpoint and tiny image/video folders."""

from __future__ import annotations

import json

import torch

from unidual.cli import main as cli
from unidual.evaluate import metrics as M
from unidual.evaluate.datasets import build_test_datasets, source_specs
from unidual.evaluate.evaluator import evaluate_sources


def test_eval_cli_writes_reports(tiny_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli(["eval", str(tiny_run["run"]), "--json", "--out", str(out)]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == {"shapes", "moves"}
    assert {"clip@1", "video@1", "video@5"} <= set(table["moves"])
    assert {"top1", "top5"} <= set(table["shapes"])
    assert table["shapes"]["examples"] == 6 and table["moves"]["examples"] == 4
    assert table["moves"]["video@5"] == 100.0  # 2 classes: the label is always in the top 5
    for key in ("shapes", "moves"):
        assert (out / f"{key}_confusion.png").stat().st_size > 0
        rows = (out / f"{key}_confusion.csv").read_text().splitlines()
        assert len(rows) == 1 + (3 if key == "shapes" else 2)
    assert json.loads((out / "metrics.json").read_text()) == table


def test_eval_metrics_match_manual_average(tiny_run):
    """video@1 is the argmax of softmax probabilities averaged over the clips, recomputed by hand."""
    from unidual.checkpoint import load_model

    model, payload = load_model(tiny_run["checkpoint"])
    specs = source_specs(payload, {"moves": str(tiny_run["videos"])}, clips=3)
    ds = build_test_datasets(payload, specs)["moves"]
    assert ds.classes == ["left", "right"]
    res = evaluate_sources(model, {"moves": ds}, {"moves": "video"}, batch_size=4)["moves"]
    with torch.no_grad():
        probs, singles = [], []
        for i in range(len(ds)):
            views = ds[i]["input"]
            assert views.shape[0] == 3  # three clips, one crop
            p = model(views)["moves"].softmax(-1)
            probs.append(p.mean(0))
            singles.append(p[1])  # the middle clip
    torch.testing.assert_close(res.scores, torch.stack(probs))
    torch.testing.assert_close(res.single_view, torch.stack(singles))
    labels = torch.tensor(ds.labels)
    assert res.metrics()["video@1"] == M.topk_accuracy(torch.stack(probs), labels, (1,))[1]


def test_three_crop_and_clips_flags(tiny_run):
    from unidual.checkpoint import load_checkpoint

    payload = load_checkpoint(tiny_run["checkpoint"])
    specs = source_specs(payload, clips=2, three_crop=True)
    ds = build_test_datasets(payload, {"moves": specs["moves"]})["moves"]
    assert ds[0]["input"].shape[0] == 6  # 2 clips x 3 crops


def test_eval_unknown_source_is_a_clear_error(tiny_run, capsys):
    assert cli(["eval", str(tiny_run["checkpoint"]), "--data", "nope=/tmp"]) == 2
    assert "no source 'nope'" in capsys.readouterr().err


def test_data_override_uses_class_folders_and_rejects_unknown_classes(tiny_run, tmp_path, capsys):
    import shutil

    classes_only = tmp_path / "moves_flat"
    shutil.copytree(tiny_run["videos"] / "test", classes_only)  # <class>/ folders directly, no test/
    assert cli(["eval", str(tiny_run["checkpoint"]), "--data", f"moves={classes_only}", "--json", "--clips", "1"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == ["moves"] and table["moves"]["examples"] == 4
    shutil.copytree(classes_only / "left", classes_only / "jump")  # a class the run never saw
    assert cli(["eval", str(tiny_run["checkpoint"]), "--data", f"moves={classes_only}"]) == 2
    assert "'jump' is not in the label map" in capsys.readouterr().err


def test_eval_folder_passes_over_non_media_files_with_one_note(tiny_run, tmp_path, capsys):
    import shutil

    flat = tmp_path / "moves_flat"
    shutil.copytree(tiny_run["videos"] / "test", flat)
    (flat / "README.md").write_text("how these clips were made")
    (flat / "left" / "Thumbs.db").write_bytes(b"\x00")
    assert cli(["eval", str(tiny_run["checkpoint"]), "--data", f"moves={flat}", "--json", "--clips", "1"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["moves"]["examples"] == 4
    notes = [line for line in captured.err.splitlines() if "passed over" in line]
    assert len(notes) == 1 and "passed over 2 file(s)" in notes[0] and "README.md" in notes[0]
