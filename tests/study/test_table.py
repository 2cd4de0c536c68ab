"""Aggregation over seeds, N/A / pending placement, Markdown and CSV layout (made-up numbers, no training)."""

from __future__ import annotations

import csv
import math

import pytest
from helpers.tinystudy import write_tiny_study

from unidual.study.config import load_study
from unidual.study.table import build_table, chance_level, summarize, to_markdown, write_csv

MODALITIES = {"vid": "video", "img": "image"}


def result(run_id, row, seed, metrics, report):
    return {
        "id": run_id,
        "row": row,
        "seed": seed,
        "metrics": metrics,
        "report": report,
        "classes": {"vid": 4, "img": 2},
    }


@pytest.fixture()
def study(tmp_path, photos):
    return load_study(write_tiny_study(tmp_path, photos))


def test_summarize_median_min_max():
    s = summarize([59.8, 62.0, 61.2])
    assert (s.median, s.min, s.max, s.n) == (61.2, 59.8, 62.0, 3)
    assert s.text() == "61.2 (59.8–62.0)"
    even = summarize([10.0, 20.0, 40.0, 30.0])
    assert (even.median, even.min, even.max) == (25.0, 10.0, 40.0)  # mean of the two middle values
    assert summarize([57.04]).text() == "57.0"  # one seed: no range
    with pytest.raises(ValueError):
        summarize([])


def test_chance_levels():
    assert chance_level("top1", 10) == 10.0 and chance_level("top5", 10) == 50.0
    assert chance_level("video@1", 30) == pytest.approx(100 / 30) and chance_level("top5", 2) == 100.0


def test_table_cells_na_and_pending(study):
    vid = lambda c, v: {"vid": {"clip@1": c, "video@1": v, "video@5": 99.0}}  # noqa: E731
    results = [
        result("r2d", "R2D", 0, {"img": {"top1": 70.0, "top5": 90.0}}, ["img"]),
        result("r2d", "R2D", 1, {"img": {"top1": 68.0, "top5": 89.0}}, ["img"]),
        result("r2d", "R2D", 2, {"img": {"top1": 71.0, "top5": 91.0}}, ["img"]),
        result(
            "unidual_aux", "UniDual-Aux", 0, {**vid(50.0, 60.0), "img": {"top1": 72.0, "top5": 92.0}}, ["vid", "img"]
        ),
    ]
    expected = {"R2D": {"img"}, "R(2+1)D-finetuned": {"vid"}, "UniDual-Aux": {"vid", "img"}}
    table = build_table(study, results, MODALITIES, expected)
    assert table.columns == [("vid", "clip@1"), ("vid", "video@1"), ("img", "top1"), ("img", "top5")]
    assert table.headers == ["Vid clip@1 (%)", "Vid video@1 (%)", "Img top-1 (%)", "Img top-5 (%)"]
    rows = {r.name: r for r in table.rows}
    assert [r.name for r in table.rows] == ["R2D", "R(2+1)D-finetuned", "UniDual-Aux"]  # study order
    r2d = rows["R2D"].cells
    assert r2d[0] is None and r2d[1] is None  # no video output: N/A
    assert (r2d[2].median, r2d[2].min, r2d[2].max, r2d[2].n) == (70.0, 68.0, 71.0, 3)
    ft = rows["R(2+1)D-finetuned"].cells
    assert ft[0].n == 0 and ft[2] is None  # its video columns are pending, its image columns N/A
    assert rows["UniDual-Aux"].cells[1].median == 60.0
    assert table.chance == [25.0, 25.0, 50.0, 100.0]

    md = to_markdown(table).splitlines()
    assert md[0] == (
        "| Use of other modality | Model | Vid clip@1 (%) | Vid video@1 (%) | Img top-1 (%) | Img top-5 (%) |"
    )
    assert md[2] == "| N/A | R2D | N/A | N/A | 70.0 (68.0–71.0) | 90.0 (89.0–91.0) |"
    assert md[3] == "| Pretrain | R(2+1)D-finetuned | pending | pending | N/A | N/A |"
    assert md[4] == "| Joint training | UniDual-Aux | 50.0 | 60.0 | 72.0 | 92.0 |"
    assert md[5].startswith("|  | *chance* | 25.0 | 25.0 | 50.0 | 100.0")


def test_report_hides_a_measured_source(study):
    """Table 2 leaves R(2+1)D-multitask's image column N/A although the model has an image head."""
    results = [
        result(
            "unidual_aux",
            "UniDual-Aux",
            0,
            {"vid": {"clip@1": 1.0, "video@1": 2.0}, "img": {"top1": 3.0, "top5": 4.0}},
            ["vid"],
        )
    ]
    cells = {r.name: r.cells for r in build_table(study, results, MODALITIES).rows}["UniDual-Aux"]
    assert cells[1].median == 2.0 and cells[2] is None and cells[3] is None


def test_shared_row_takes_each_column_from_its_own_run(tmp_path, photos):
    """Table 3: one 'R(2+1)D' row filled by two runs, one per dataset."""
    models = [
        {"id": "a", "row": "R(2+1)D", "config": "r2plus1d_finetuned.yaml", "report": ["vid"]},
        {"id": "b", "row": "R(2+1)D", "config": "r2d.yaml", "report": ["img"]},
    ]
    study = load_study(write_tiny_study(tmp_path, photos, models=models))
    results = [
        result("a", "R(2+1)D", 0, {"vid": {"clip@1": 5.0, "video@1": 6.0}}, ["vid"]),
        result("b", "R(2+1)D", 0, {"img": {"top1": 7.0, "top5": 8.0}}, ["img"]),
    ]
    table = build_table(study, results, MODALITIES)
    assert len(table.rows) == 1 and not table.has_groups
    assert [c.median for c in table.rows[0].cells] == [5.0, 6.0, 7.0, 8.0]
    assert to_markdown(table).splitlines()[0].startswith("| Model |")


def test_csv_has_median_min_max_columns(study, tmp_path):
    results = [
        result("r2d", "R2D", s, {"img": {"top1": v, "top5": 90.0}}, ["img"]) for s, v in enumerate((60.0, 64.0, 62.0))
    ]
    table = build_table(study, results, MODALITIES, {"R2D": {"img"}, "UniDual-Aux": {"vid", "img"}})
    path = tmp_path / "t.csv"
    write_csv(table, path)
    rows = list(csv.DictReader(path.open()))
    r2d = next(r for r in rows if r["model"] == "R2D")
    assert (r2d["img top1 median"], r2d["img top1 min"], r2d["img top1 max"], r2d["img top1 n"]) == (
        "62.00",
        "60.00",
        "64.00",
        "3",
    )
    assert r2d["vid clip@1 median"] == "" and r2d["vid clip@1 n"] == "0"  # N/A
    assert r2d["group"] == "N/A"
    assert [r["model"] for r in rows] == ["R2D", "R(2+1)D-finetuned", "UniDual-Aux", "chance"]
    assert math.isclose(float(rows[-1]["img top5 median"]), 100.0)
