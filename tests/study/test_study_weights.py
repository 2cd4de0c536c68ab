"""A study row's ``weights:``: an EMA row is scored on its moving average, chosen before any result.

Without it the study scores what the checkpoint records as better at the trainer's own end-of-run
check, which a study runs on the test split: an EMA ablation would pick its weights on test data.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from helpers.evalsets import one_thread
from helpers.tinystudy import write_tiny_study

from unidual import cli
from unidual.evaluate import metrics as M
from unidual.study.config import load_study
from unidual.study.runner import RESULT_FILE, evaluate_run_sources


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue()


def test_an_ema_row_is_scored_on_its_moving_average(tmp_path, photos):
    rows = [
        {"id": "ema", "row": "EMA", "config": "r2d.yaml", "overrides": ["run.ema_decay=0.5"], "weights": "ema"},
        {"id": "raw", "row": "Raw", "config": "r2d.yaml", "overrides": ["run.ema_decay=0.5"], "weights": "raw"},
    ]
    path = write_tiny_study(tmp_path, photos, models=rows, extra={"columns": [{"source": "img", "title": "Img"}]})
    with one_thread():
        code, err = run(["study", str(path)])
    assert code == 0, err
    study = load_study(path)
    for run_id, weights in (("ema", "ema"), ("raw", "raw")):
        directory = study.out / "seed0" / run_id
        result = json.loads((directory / RESULT_FILE).read_text())
        assert result["eval"]["weights"] == f"last.pt ({weights})"
        scores = evaluate_run_sources(directory, ["img"], study.eval, weights=weights)[0]["img"].scores
        other = evaluate_run_sources(directory, ["img"], study.eval, weights="raw" if weights == "ema" else "ema")
        assert not torch.equal(scores, other[0]["img"].scores)  # the two weights differ: the choice is visible
        assert result["metrics"]["img"]["nll"] == pytest.approx(M.nll(scores, other[0]["img"].labels), rel=1e-6)
        assert result["metrics"]["img"]["nll"] != pytest.approx(M.nll(other[0]["img"].scores, other[0]["img"].labels))


def test_weights_ema_without_ema_is_refused_before_training(tmp_path, photos):
    rows = [{"id": "plain", "row": "Plain", "config": "r2d.yaml", "weights": "ema"}]
    path = write_tiny_study(tmp_path, photos, models=rows, extra={"columns": [{"source": "img", "title": "Img"}]})
    code, err = run(["study", str(path)])
    assert code == 2 and "weights: ema needs run.ema_decay > 0" in err and str(path) in err
    assert not (tmp_path / "out" / "seed0" / "plain").exists()
