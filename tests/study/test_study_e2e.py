"""``unidual study`` end to end on tiny generated data: tables, N/A layout, finetuning links, interruption
and resume, finished runs kept, the generated doc section."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal

import pytest
import torch
from helpers.tinystudy import write_tiny_study

from unidual import cli
from unidual.study.runner import RESULT_FILE, TIME_FILE
from unidual.train.trainer import Trainer

pytestmark = pytest.mark.slow
DOC = (
    "# Results\n\nhand-written intro\n\n<!-- study:tiny:begin -->\nrun pending\n<!-- study:tiny:end -->\n\n"
    "## Reading\nmine\n"
)


def run(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue()


def mtimes(root):
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.name in ("last.pt", RESULT_FILE)
    }


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: a second OpenMP thread only adds barrier waits (and, on a busy machine, long stalls)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def study(tmp_path_factory, photos, one_thread):
    root = tmp_path_factory.mktemp("study")
    path = write_tiny_study(root, photos)
    doc = root / "results.md"
    doc.write_text(DOC)
    argv = ["study", str(path), "--doc", str(doc)]
    out = root / "out" / "seed0"

    # session 1: Ctrl-C arrives during UniDual-Aux's 3rd update (after the two other runs finished)
    original = Trainer._update

    def interrupting(self):
        original(self)
        if self.run_dir.name == "unidual_aux" and self.global_step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "_update", interrupting)
        first = run(argv)
    interrupted = {
        "step": torch.load(out / "unidual_aux" / "last.pt", weights_only=True)["train_state"]["global_step"],
        "result": (out / "unidual_aux" / RESULT_FILE).exists(),
        "seconds": json.loads((out / "unidual_aux" / TIME_FILE).read_text())["train_seconds"],
        "mtimes": mtimes(root / "out"),
    }
    second = run(argv)  # session 2: resume
    after_second = mtimes(root / "out")
    third = run(argv)  # session 3: everything finished
    return {
        "root": root,
        "path": path,
        "doc": doc,
        "out": out,
        "first": first,
        "second": second,
        "third": third,
        "interrupted": interrupted,
        "after_second": after_second,
        "argv": argv,
    }


def test_interrupted_then_resumed(study):
    code, err = study["first"]
    assert code == 130 and "rerun the same command" in err
    assert study["interrupted"]["step"] == 3 and not study["interrupted"]["result"]
    code, err = study["second"]
    assert code == 0, err
    assert "resuming from" in err and "unidual_aux" in err
    final = torch.load(study["out"] / "unidual_aux" / "last.pt", weights_only=True)["train_state"]
    assert final["global_step"] == 8  # 2 epochs x 16 examples / batch 4: continued, not restarted
    steps = [json.loads(line)["step"] for line in (study["out"] / "unidual_aux" / "metrics.jsonl").open()]
    assert steps == sorted(steps) and steps[-1] == 8
    total = json.loads((study["out"] / "unidual_aux" / TIME_FILE).read_text())["train_seconds"]
    assert total > study["interrupted"]["seconds"]  # both sessions counted


def test_finished_runs_are_not_retrained(study):
    before = study["interrupted"]["mtimes"]
    after = study["after_second"]
    for run_id in ("r2d", "r2plus1d_ft"):  # finished in session 1
        for name in ("last.pt", RESULT_FILE):
            key = f"seed0/{run_id}/{name}"
            assert after[key] == before[key], key
    code, err = study["third"]
    assert code == 0 and err.count("already finished") == 3
    assert mtimes(study["root"] / "out") == after


def test_table_files_rows_columns_and_na(study):
    root = study["root"] / "out"
    md = (root / "table.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| Use"))
    assert header == (
        "| Use of other modality | Model | Vid clip@1 (%) | Vid video@1 (%) | Img top-1 (%) | Img top-5 (%) |"
    )
    cells = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in md
        if line.startswith("| ") and line != header
    ]
    rows = {c[1]: c[2:] for c in cells}
    assert list(rows) == ["R2D", "R(2+1)D-finetuned", "UniDual-Aux", "*chance*"]
    assert rows["R2D"][:2] == ["N/A", "N/A"] and "N/A" not in rows["R2D"][2:]
    assert rows["R(2+1)D-finetuned"][2:] == ["N/A", "N/A"] and "N/A" not in rows["R(2+1)D-finetuned"][:2]
    assert all(0.0 <= float(v) <= 100.0 for v in rows["UniDual-Aux"])
    assert rows["*chance*"] == ["25.0", "25.0", "50.0", "100.0"]
    table = list(csv.DictReader((root / "table.csv").open()))
    assert [r["model"] for r in table] == ["R2D", "R(2+1)D-finetuned", "UniDual-Aux", "chance"]
    assert table[0]["vid video@1 n"] == "0" and table[0]["img top1 n"] == "1"
    assert float(table[2]["vid video@1 median"]) == float(rows["UniDual-Aux"][1])
    assert (root / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    long = list(csv.DictReader((root / "runs.csv").open()))
    assert {(r["id"], r["source"]) for r in long} == {
        ("r2d", "img"),
        ("r2plus1d_ft", "vid"),
        ("unidual_aux", "vid"),
        ("unidual_aux", "img"),
    }


def test_results_record_evaluation_and_pretraining(study):
    out = study["out"]
    ft = json.loads((out / "r2plus1d_ft" / RESULT_FILE).read_text())
    assert ft["pretrained"] == str(out / "r2d" / "last.pt")
    assert ft["config"]["finetune"] == {
        "checkpoint": str(out / "r2d" / "last.pt"),
        "convert": "inflate",
        "inflate_mode": "center",
    }
    aux = json.loads((out / "unidual_aux" / RESULT_FILE).read_text())
    assert aux["eval"]["clips"] == 2 and aux["metrics"]["vid"]["examples"] == 4  # every test video
    assert aux["metrics"]["img"]["examples"] == 8 and aux["classes"] == {"vid": 4, "img": 2}


def test_doc_section_generated(study):
    text = study["doc"].read_text()
    assert text.startswith("# Results\n\nhand-written intro\n\n<!-- study:tiny:begin -->")
    assert text.endswith("<!-- study:tiny:end -->\n\n## Reading\nmine\n")
    section = text.split("<!-- study:tiny:begin -->")[1].split("<!-- study:tiny:end -->")[0]
    assert "run pending" not in section and "| UniDual-Aux |" in section
    assert f"`unidual study {study['path']} --doc {study['doc']}`" in section
    assert "torch " + torch.__version__ in section and "Wall time" in section
    assert "(1 thread) (3 runs)" in section.split("- Runs trained on: ")[1].splitlines()[0]


def test_results_record_the_training_machine(study):
    """Resumed on the same machine: one entry, with the training process's thread count (the fixture's 1)."""
    aux = json.loads((study["out"] / "unidual_aux" / RESULT_FILE).read_text())
    assert len(aux["train_machines"]) == 1
    assert aux["train_machines"][0]["threads"] == 1 and aux["train_machines"][0]["torch"] == torch.__version__
    recorded = json.loads((study["out"] / "unidual_aux" / TIME_FILE).read_text())
    assert recorded["machines"] == aux["train_machines"]


def test_study_parts_scores_the_label_parts_and_the_training_epochs(study):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code, err = run(["study-parts", str(study["path"]), "--source", "vid", "--epochs"])
    assert code == 0, err
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("| UniDual-Aux | 0 |"))
    video, cls, motion = (float(c) for c in row.strip("|").split("|")[2:5])
    assert 0 <= video <= min(cls, motion) and max(cls, motion) <= 100  # a right label has both parts right
    assert row.strip("|").split("|")[5].strip() == ("yes" if motion - 50.0 <= 5 else "no")  # 2 motions: chance 50
    assert "Collapsed: the test motion part within 5 points of chance (50.0 %)" in text
    assert "| UniDual-Aux |" in text.split("collapsed runs")[1] and " of 1 |" in text.split("collapsed runs")[1]
    medians = next(line for line in text.split("collapsed runs")[1].splitlines() if line.startswith("| UniDual-Aux |"))
    *_, train_clip, train_motion, _ = medians.strip("|").split("|")
    epochs = [line for line in text.splitlines() if line.startswith("| UniDual-Aux | 0 | ")][1:]
    clip, cls_row, motion_row = (line.strip("|").split("|")[3:] for line in epochs)
    assert float(train_clip) == float(clip[-1]) and train_motion.strip() == "-"  # last epoch; parts not logged
    assert len(clip) == 2 and all(0 <= float(c) <= 100 for c in clip)  # two epochs, logged without parts
    assert [c.strip() for c in cls_row] == ["-", "-"] and [c.strip() for c in motion_row] == ["-", "-"]


def test_study_parts_reevaluates_only_new_or_retrained_runs(study, monkeypatch):
    from unidual.study import commands

    def parts():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code, err = run(["study-parts", str(study["path"]), "--source", "vid"])
        assert code == 0, err
        return out.getvalue()

    first = parts()
    calls = []
    real = commands.evaluate_run_sources
    monkeypatch.setattr(commands, "evaluate_run_sources", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    assert parts() == first and calls == []  # every run's parts kept beside its checkpoint
    last = next(p for p in (study["root"] / "out").rglob("last.pt") if p.parent.name == "unidual_aux")
    before = last.stat()
    try:
        os.utime(last, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # as if retrained
        assert parts() == first and calls == [last.parent]  # only that run evaluated again, same weights
    finally:
        os.utime(last, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_changed_config_is_refused_and_dry_run_shows_status(study):
    code, err = run([*study["argv"][:2], "optim.lr=0.2"])
    assert code == 2 and "different config" in err and "optim.lr" in err
    err_out = io.StringIO()
    with contextlib.redirect_stdout(err_out):
        code, _ = run([*study["argv"][:2], "--dry-run"])
    assert code == 0 and err_out.getvalue().count(": done,") == 3


def test_calibrate_counts_each_runs_updates(study, tmp_path):
    code, err = run([*study["argv"][:2], "--calibrate", "2", "--out", str(tmp_path / "cal")])
    assert code == 0, err
    rows = {
        line.split()[0]: line.split()[1:]
        for line in err.splitlines()
        if line.split()[:1] in (["r2d"], ["r2plus1d_ft"], ["unidual_aux"])
    }
    # updates of the full schedule: 2 epochs x epoch_size / batch 4 (8 for the single-source runs, 16 joint)
    assert {k: int(v[0]) for k, v in rows.items()} == {"r2d": 4, "r2plus1d_ft": 4, "unidual_aux": 8}
    assert all(float(v[1]) > 0 for v in rows.values())
    assert not (tmp_path / "cal").exists()  # measured in a temporary directory, nothing left behind


def test_changed_evaluation_reevaluates_without_retraining(study):
    """Runs last (it changes the results): a new evaluation setting re-evaluates, never retrains."""
    before = mtimes(study["root"] / "out")
    code, err = run([*study["argv"][:2], "--eval-limit", "2"])
    assert code == 0 and err.count("evaluating again") == 3 and "resuming" not in err
    after = mtimes(study["root"] / "out")
    assert all(after[k] == v for k, v in before.items() if k.endswith("last.pt"))
    aux = json.loads((study["out"] / "unidual_aux" / RESULT_FILE).read_text())
    assert aux["eval"]["limit"] == 2 and aux["metrics"]["vid"]["examples"] == 2
