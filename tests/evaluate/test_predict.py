"""`unidual predict`: modality detection, the right pathway and label map, bad files skipped."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from unidual.cli import main as cli
from unidual.evaluate.predict import detect_modality, load_views, predict, spec_for


def test_detects_modality_by_content_when_extension_is_unknown(tiny_run, tmp_path):
    image = next(tiny_run["images"].rglob("*.png"))
    video = next(tiny_run["videos"].rglob("*.mp4"))
    shutil.copy(image, tmp_path / "picture.bin")
    shutil.copy(video, tmp_path / "movie.bin")
    (tmp_path / "junk.bin").write_bytes(b"not media at all")
    assert detect_modality(tmp_path / "picture.bin") == "image"
    assert detect_modality(tmp_path / "movie.bin") == "video"
    with pytest.raises(Exception, match="junk.bin"):
        detect_modality(tmp_path / "junk.bin")


def test_predict_api_matches_model_and_label_map(tiny_run):
    from unidual.checkpoint import load_checkpoint

    image = sorted(tiny_run["images"].rglob("*.png"))[0]
    video = sorted(tiny_run["videos"].rglob("*.mp4"))[0]
    results = predict(tiny_run["checkpoint"], [image, video], topk=2)
    assert [r.modality for r in results] == ["image", "video"]
    assert list(results[0].top) == ["shapes"] and list(results[1].top) == ["moves"]  # aux heads dropped
    payload = load_checkpoint(tiny_run["checkpoint"])
    model = tiny_run["model"]
    with torch.no_grad():
        views = load_views(video, "video", spec_for(payload, "video"))
        assert views.shape[:3] == (3, 3, 4)  # 3 clips of 4 frames, as in the run's source spec
        probs = model(views, pathway="video")["moves"].softmax(-1).mean(0)
    names = [c for c, _ in results[1].top["moves"]]
    assert names == [["left", "right"][i] for i in probs.argsort(descending=True).tolist()]
    assert results[1].top["moves"][0][1] == pytest.approx(probs.max().item(), abs=1e-5)
    assert all(c in ["circle", "square", "stripe"] for c, _ in results[0].top["shapes"])


def test_predict_cli_folder_skips_bad_files(tiny_run, tmp_path, capsys):
    folder = tmp_path / "mixed"
    shutil.copytree(tiny_run["images"], folder / "images")
    shutil.copytree(tiny_run["videos"], folder / "videos")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    status = cli(["predict", str(tiny_run["checkpoint"]), str(folder), "--topk", "1", "--json", "--batch-size", "3"])
    captured = capsys.readouterr()
    assert status == 1  # one file failed
    rows = json.loads(captured.out)
    assert len(rows) == 11
    bad = [r for r in rows if r["error"]]
    assert [r["path"].endswith("broken.jpg") for r in bad] == [True]
    assert "broken.jpg" in captured.err
    good = [r for r in rows if not r["error"]]
    assert all(len(next(iter(r["top"].values()))) == 1 for r in good)
    # batching gives the same answer as one file at a time
    single = predict(tiny_run["checkpoint"], [good[0]["path"]], topk=1)[0]
    assert single.top[next(iter(single.top))][0][1] == pytest.approx(
        next(iter(good[0]["top"].values()))[0]["score"], abs=1e-5
    )


def test_predict_folder_passes_over_non_media_files_with_one_note(tiny_run, tmp_path, capsys):
    folder = tmp_path / "photos"
    shutil.copytree(tiny_run["images"] / "test" / "circle", folder)
    for name in ("README.md", ".DS_Store", "Thumbs.db"):
        (folder / name).write_text("not a picture")
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("nor this")
    status = cli(["predict", str(tiny_run["checkpoint"]), str(folder), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = json.loads(captured.out)
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == ["circle0.png", "circle1.png"]
    notes = [line for line in captured.err.splitlines() if "passed over" in line]
    assert len(notes) == 1 and "passed over 4 file(s)" in notes[0] and ".DS_Store" in notes[0]


def test_predict_named_unreadable_file_is_still_an_error(tiny_run, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# not media")
    status = cli(["predict", str(tiny_run["checkpoint"]), str(readme)])
    err = capsys.readouterr().err
    assert status == 1 and "README.md" in err and "passed over" not in err


def test_predict_folder_without_media_is_a_clear_error(tiny_run, tmp_path, capsys):
    (tmp_path / "README.md").write_text("# nothing here")
    assert cli(["predict", str(tiny_run["checkpoint"]), str(tmp_path)]) == 2
    assert "no image or video files in" in capsys.readouterr().err


def test_views_run_in_bounded_chunks_with_the_same_logits(tiny_run, monkeypatch):
    from unidual.checkpoint import load_checkpoint
    from unidual.evaluate import predict as predict_module

    video = sorted(tiny_run["videos"].rglob("*.mp4"))[0]
    views = load_views(video, "video", spec_for(load_checkpoint(tiny_run["checkpoint"]), "video"))
    model = tiny_run["model"]
    whole = predict_module.predict_views(model, views, "video")
    sizes = []
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x, **kw: sizes.append(len(x)) or real_forward(x, **kw))
    monkeypatch.setattr(predict_module, "FORWARD_PIXELS", views[0].numel() // 3)  # one view per pass
    chunked = predict_module.predict_views(model, views, "video")
    assert sizes == [1, 1, 1]
    assert all(torch.allclose(whole[k], chunked[k], atol=1e-5) for k in whole)
