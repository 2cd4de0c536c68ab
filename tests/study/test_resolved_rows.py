"""The shipped studies train exactly what they trained before their rows were derived from the model table.

The fixture holds every run's resolved training config as main's row files (commit a79cc93) gave
it; ``helpers/resolved_rows.py`` wrote it there and resolves the runs now, the same way. Every key
of the fixture must resolve to the same value; keys added to the configs since, with
their defaults, are left out of the comparison.
"""

from __future__ import annotations

import json
from typing import Any

from helpers.resolved_rows import FIXTURE, resolved_rows

from unidual.study.runner import COSMETIC_KEYS

# The ablation's rows took the config file of the model they vary, so their run.name was that
# model's; a derived row is named by its id. run.name names `unidual train` runs only (a study
# names each run folder itself) and is a cosmetic key: finished runs are not retrained for it.
RENAMED = {
    "ablation/study.yaml": {
        "uda_bn_stats",
        "uda_bn_stats_precise",
        "uda_bn_per_pathway",
        "uda_terms",
        "uda_frame_half",
        "uda_deflate_init",
        "ud_bn_stats_precise",
    }
}


# Studies shipped after the fixture was written: nothing to compare them with.
ADDED_SINCE = [
    "collapse/study.yaml",
    "lr003/study.yaml",
    "schedule2x/study.yaml",
    "fewvideos_shared/study.yaml",
    "recipe/study.yaml",
    "recipe_fewvideos/study.yaml",
    "balance3/study.yaml",
]


def same_keys_as(value: Any, like: Any) -> Any:
    """``value`` with only the mapping keys ``like`` has, at every depth."""
    if isinstance(value, dict) and isinstance(like, dict):
        return {k: same_keys_as(value[k], like[k]) for k in like if k in value}
    if isinstance(value, list) and isinstance(like, list) and len(value) == len(like):
        return [same_keys_as(v, w) for v, w in zip(value, like)]
    return value


def test_every_shipped_study_run_resolves_as_before():
    before = json.loads(FIXTURE.read_text())
    now = resolved_rows()
    assert sorted(before) == [
        "ablation/study.yaml",
        "study/study.yaml",
        "study3/study.yaml",
        "study_default/study.yaml",
        "study_fewvideos/study.yaml",
    ]
    assert sorted(now) == sorted([*before, *ADDED_SINCE])  # none lost or renamed; new ones named here
    assert "run.name" in COSMETIC_KEYS
    for study, runs in before.items():
        assert sorted(now[study]) == sorted(runs), study
        for run_id, config in runs.items():
            if run_id in RENAMED.get(study, ()):
                assert now[study][run_id]["run"]["name"] == run_id
                config = {**config, "run": {**config["run"], "name": run_id}}
            assert same_keys_as(now[study][run_id], config) == config, f"{study} {run_id}"


def test_the_adopted_recipe_study_reuses_only_identical_runs():
    """recipe_fewvideos links its seeds 0-2 to the recipe study's runs of the same ids (its header): a
    linked run counts as done without a look at its config, so every shared row must resolve alike."""
    now = resolved_rows()
    linked, source = now["recipe_fewvideos/study.yaml"], now["recipe/study.yaml"]
    assert set(linked) == {"r2plus1d_randaug", "uda", "uda_ls", "uda_ls_randaug_video"}
    for run_id, config in linked.items():
        assert config == source[run_id], run_id
