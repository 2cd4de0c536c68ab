"""Paired comparisons: differences with bootstrap CIs over seeds and test examples, verdicts from the CI."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import yaml
from helpers.tinystudy import write_tiny_study

from unidual import cli
from unidual.study.compare import paired_bootstrap
from unidual.study.config import StudyError, load_study
from unidual.study.runner import EXAMPLES_FILE


def test_bootstrap_interval_covers_the_difference_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    small_a, small_b = (rng.random((3, 200)) < 0.6).astype(float), (rng.random((3, 200)) < 0.5).astype(float)
    diff, low, high = paired_bootstrap(small_a, small_b)
    assert diff == pytest.approx(100 * (small_a.mean() - small_b.mean())) and low < diff < high
    big_a, big_b = (rng.random((5, 5000)) < 0.6).astype(float), (rng.random((5, 5000)) < 0.5).astype(float)
    _, blow, bhigh = paired_bootstrap(big_a, big_b)
    assert bhigh - blow < high - low and 5 < blow < 10 < bhigh < 15  # true difference: 10 points
    same = (rng.random((5, 2000)) < 0.5).astype(float)
    _, slow, shigh = paired_bootstrap(same, same.copy())
    assert slow == shigh == 0  # identical predictions: no difference at all
    with pytest.raises(ValueError):
        paired_bootstrap(small_a, big_b)


def test_comparisons_and_per_run_settings_are_checked(tmp_path, photos):
    extra = {"comparisons": [{"a": "unidual_aux", "b": "nope", "source": "vid", "metric": "video@1"}]}
    with pytest.raises(StudyError, match=r"comparisons\.0\.b"):
        load_study(write_tiny_study(tmp_path / "a", photos, extra=extra))
    models = [
        {"id": "r2d", "row": "R2D", "config": "r2d.yaml", "seeds": [0]},
        {"id": "ft", "row": "FT", "config": "r2plus1d_finetuned.yaml", "pretrained": "r2d", "seeds": [0, 1]},
    ]
    with pytest.raises(StudyError, match="pretraining run 'r2d' on every seed"):
        load_study(write_tiny_study(tmp_path / "b", photos, models=models))


@pytest.mark.slow
def test_study_writes_per_example_results_and_a_generated_comparison(tmp_path, photos):
    models = [
        {"id": "unidual_aux", "row": "UniDual-Aux", "config": "unidual_aux.yaml"},
        {
            "id": "unidual_aux_terms",
            "row": "UniDual-Aux (terms)",
            "config": "unidual_aux.yaml",
            "overrides": ["aux.normalize=terms"],
        },
        {"id": "one_seed", "row": "one seed", "config": "unidual_aux.yaml", "seeds": [1]},
    ]
    extra = {
        "seeds": [0, 1],
        "comparisons": [
            {"a": "unidual_aux", "b": "unidual_aux_terms", "source": "vid", "metric": "video@1", "claim": "norm"}
        ],
    }
    path = write_tiny_study(tmp_path, photos, models=models, extra=extra)
    doc = tmp_path / "doc.md"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["study", str(path), "--doc", str(doc)]) == 0, err.getvalue()
    out = tmp_path / "out"
    assert not (out / "seed0" / "one_seed").exists() and (out / "seed1" / "one_seed" / EXAMPLES_FILE).is_file()
    stored = yaml.safe_load((out / "seed0" / "unidual_aux_terms" / "config.yaml").read_text())
    assert stored["aux"]["normalize"] == "terms"  # the run's own override
    with np.load(out / "seed0" / "unidual_aux" / EXAMPLES_FILE) as data:
        assert set(data) >= {"vid/index", "vid/clip@1", "vid/video@1", "img/index", "img/top1"}
        assert len(data["vid/index"]) == 4
    text = doc.read_text()
    assert "| norm | UniDual-Aux | UniDual-Aux (terms) | vid video@1 |" in text
    assert text.count("| undecided |") == 1  # two seeds: the claim column says so, too
    assert "bootstrap resamples" in text and (out / "comparisons.csv").is_file()
    row = (out / "comparisons.csv").read_text().splitlines()[1].split(",")
    assert row[:4] == ["unidual_aux", "unidual_aux_terms", "vid", "video@1"] and row[5] == "0 1"


def test_verdicts_need_enough_seeds_and_follow_the_interval():
    from unidual.study.compare import MIN_SEEDS_FOR_VERDICT, PairedResult
    from unidual.study.config import Comparison

    c = Comparison("a", "b", "vid", "video@1")
    enough = list(range(MIN_SEEDS_FOR_VERDICT))
    assert PairedResult(c, [0], 100, 60, 40, 20, 15, 25, 1.0).verdict == "no verdict (1 seed)"
    assert PairedResult(c, enough, 100, 60, 40, 20, 15, 25, 1.0).verdict == "a > b"
    assert PairedResult(c, enough, 100, 40, 60, -20, -25, -15, 1.0).verdict == "a < b"
    assert PairedResult(c, enough, 100, 50, 49, 1, -2, 4, 1.0).verdict == "not separable"
    statuses = [
        PairedResult(c, seeds, 100, 50, 50, 0, low, high, 1.0).claim_status
        for seeds, low, high in ((enough, 15, 25), (enough, -25, -15), (enough, -2, 4), ([0, 1], 15, 25))
    ]
    assert statuses == ["holds", "reversed", "not reproduced at this scale", "undecided"]
