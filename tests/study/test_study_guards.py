"""A study refuses bad input before its first run, and never leaves half files or races another study.

Each test reproduces one defect of issue 28 (items 6, 7, 8, 9, 12 and the two seen in the code).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
import yaml
from helpers.tinystudy import write_tiny_study

from unidual import cli
from unidual.run import RunLock
from unidual.study.config import StudyError, load_study
from unidual.study.runner import RESULT_FILE
from unidual.study.table import PENDING, Row, Stat, Table, write_csv, write_runs_csv


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def edit(path, **changes):
    raw = yaml.safe_load(path.read_text())
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("bad", ["..", ".", "", "a/b", ".hidden"])
def test_model_ids_are_safe_folder_names(tmp_path, photos, bad):
    """Item 6: an id ``..`` put the run's files in the study folder itself."""
    path = write_tiny_study(tmp_path, photos, models=[{"id": bad, "row": "R2D", "config": "r2d.yaml"}])
    with pytest.raises(StudyError, match=r"models\.0\.id") as info:
        load_study(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_typo_in_a_column_source_is_refused_before_training(tmp_path, photos):
    """Item 8: ``motoin`` passed loading and --dry-run, then the study died after its first run."""
    path = write_tiny_study(tmp_path, photos, extra={"columns": [{"source": "vdi", "title": "Vid"}]})
    with pytest.raises(StudyError, match=r"columns\.0\.source: 'vdi' is not a source of any run") as info:
        load_study(path)
    assert "['img', 'vid']" in str(info.value)  # the valid ones
    code, out, err = run(["study", str(path), "--dry-run"])
    assert code == 2 and err.count("\n") == 1 and "'vdi'" in err and not out


def test_label_parts_on_a_row_without_motion_labels_is_refused_by_the_dry_run(tmp_path, photos):
    """A study-wide ``run.label_parts=true`` stopped an image-only row only at that row's start, after
    the data build and every run before it; ``--dry-run`` printed the plan as fine."""
    path = write_tiny_study(tmp_path, photos)
    assert run(["study", str(path), "--data-only"])[0] == 0
    code, out, err = run(["study", str(path), "run.label_parts=true", "--dry-run"])
    error = err.splitlines()[-1]  # after the "[study] data: built" log line: one line, no traceback
    assert code == 2 and not out and "Traceback" not in err
    assert "model 'r2d'" in error and "no source has '<class> <motion>'" in error and str(path) in error
    code, out, _ = run(["study", str(path), "run.label_parts=true", "--only", "unidual_aux", "--dry-run"])
    assert code == 0 and "unidual_aux" in out  # the video row has '<class> <motion>' labels: accepted


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"columns": [{"source": "vid", "metrics": ["top7"]}]}, r"columns\.0\.metrics"),
        ({"columns": [{"source": "img", "metrics": ["video@1"]}]}, r"columns\.0\.metrics"),  # not an image metric
        ({"comparisons": [{"a": "r2d", "b": "unidual_aux", "source": "img", "metric": "top7"}]}, r"comparisons\.0"),
        # mean_class@1 is a column metric, but has no per-example record to pair
        ({"comparisons": [{"a": "r2d", "b": "unidual_aux", "source": "img", "metric": "mean_class@1"}]}, "comp"),
    ],
)
def test_unknown_metrics_are_refused(tmp_path, photos, extra, key):
    """Item 12: ``top7`` was accepted; its column stayed "pending" with an invented chance value."""
    path = write_tiny_study(tmp_path, photos, extra=extra)
    with pytest.raises(StudyError, match=key) as info:
        load_study(path)
    assert "valid:" in str(info.value) and "top1" in str(info.value)


def test_a_second_study_on_the_same_output_is_refused(tmp_path, photos, one_thread):
    """Item 9: the second study died with an uncaught RunDirError traceback.

    Sessions lock the seeds they train: another seed of the same study may run beside (docs/results.md
    trains two seeds side by side, one per core).
    """
    path = write_tiny_study(tmp_path, photos)
    holder = RunLock(tmp_path / "out" / "seed0").acquire()  # the first study, training seed 0
    try:
        code, _, err = run(["study", str(path), "--seeds", "1", "0"])
        assert code == 2 and err.count("\n") == 1 and "seed0: in use by pid" in err
        assert not (tmp_path / "data").exists()  # refused before building anything
        assert not (tmp_path / "out" / "seed1" / ".lock").read_text()  # and its other seed let go
        code, _, err = run(["study", str(path), "--seeds", "1", "--only", "r2d"])
    finally:
        holder.release()
    assert code == 0, err
    assert (tmp_path / "out" / "seed1" / "r2d" / RESULT_FILE).is_file()


def test_a_busy_run_is_refused_in_one_line_and_its_records_kept(tmp_path, photos, one_thread):
    """A run held by another process (here: a `unidual train` on it): one line, and its metrics stay.

    The study used to delete a new run's metrics.jsonl before taking the run's lock.
    """
    path = write_tiny_study(tmp_path, photos)
    run_dir = tmp_path / "out" / "seed0" / "r2d"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    holder = RunLock(run_dir).acquire()
    try:
        code, _, err = run(["study", str(path)])
    finally:
        holder.release()
    assert code == 2 and "in use by pid" in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("unidual study:")] == [err.splitlines()[-1]]
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_only_runs_every_seed_of_the_named_rows(tmp_path, photos, one_thread):
    """Item 7: ``--only r2d`` stopped after seed 0 ("no finished run reports ['vid']")."""
    path = write_tiny_study(tmp_path, photos)
    code, out, err = run(["study", str(path), "--only", "r2d", "--seeds", "0", "1"])
    assert code == 0, err
    for seed in (0, 1):
        assert json.loads((tmp_path / "out" / f"seed{seed}" / "r2d" / RESULT_FILE).read_text())["seed"] == seed
    assert not (tmp_path / "out" / "seed0" / "unidual_aux").exists()
    rows = {line.split("|")[2].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "pending" in rows["UniDual-Aux"] and "N/A" in rows["R2D"]  # the other rows wait, the table is whole


def _table(cells: list) -> Table:
    return Table(
        columns=[("vid", "video@1")],
        headers=["Vid video@1 (%)"],
        rows=[Row("A", None, [Stat(50.0, 40.0, 60.0, 2)]), Row("B", None, cells)],
        chance=[25.0],
        has_groups=False,
    )


def test_tables_are_replaced_whole_or_not_at_all(tmp_path):
    """Seen in the code: tables were written in place, so a failure (or kill) mid-write left half a table."""
    path = tmp_path / "table.csv"
    write_csv(_table([PENDING]), path)
    before = path.read_text()
    broken = Stat("not a number", 0.0, 0.0, 1)  # type: ignore[arg-type]  # fails after the first rows are out
    with pytest.raises(ValueError):
        write_csv(_table([broken]), path)
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["table.csv"]

    runs = tmp_path / "runs.csv"
    good = {"seed": 0, "id": "a", "row": "A", "metrics": {"vid": {"video@1": 50.0}}}
    write_runs_csv([good], runs)
    before = runs.read_text()
    with pytest.raises(ValueError):
        write_runs_csv([good, {**good, "seed": 1, "metrics": {"vid": {"video@1": "x"}}}], runs)
    assert runs.read_text() == before
