"""Every user-facing command ends with one line and a non-zero status on an ``--out`` that cannot be
used and on Ctrl-C -- never a traceback (issue 28, item 16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.hostile import ctrl_c_after, many_links
from helpers.tinystudy import make_photos, write_tiny_study

from unidual.cli import main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _video(tiny_run) -> str:
    return str(next(Path(tiny_run["videos"]).rglob("*.mp4")))


OUT_CASES = {
    "eval --out FILE": lambda r, t: ["eval", str(r["checkpoint"]), "--out", str(t / "file")],
    "export --out DIR": lambda r, t: ["export", str(r["checkpoint"]), "--pathway", "image", "--out", str(t / "dir")],
    "data prepare SRC FILE": lambda r, t: ["data", "prepare", str(r["videos"]), str(t / "file"), "--short-side", "16"],
    "data make-default FILE": lambda r, t: ["data", "make-default", str(t / "file")],
    "visualize --out DIR": lambda r, t: ["visualize", str(r["checkpoint"]), _video(r), "--out", str(t / "dir")],
    "study --out FILE": lambda r, t: ["study", str(_tiny_study(t)), "--out", str(t / "file")],
}


def _tiny_study(tmp: Path) -> Path:
    return write_tiny_study(tmp / "study", make_photos(tmp / "photos"))


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_an_out_that_is_an_existing_file_or_folder_gets_one_line(case, tiny_run, tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "dir").mkdir()
    code = main(OUT_CASES[case](tiny_run, tmp_path))
    text = capsys.readouterr().err
    err = [line for line in text.splitlines() if line.startswith(("unidual", "error"))]  # not progress lines
    assert code == 2, text
    assert len(err) == 1 and "Traceback" not in text and ("file" in err[0] or "dir" in err[0]), text
    assert (tmp_path / "file").read_text() == "keep me" and not list((tmp_path / "dir").iterdir())


def test_visualize_reports_the_file_it_wrote(tiny_run, tmp_path, capsys):
    assert main(["visualize", str(tiny_run["checkpoint"]), _video(tiny_run), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig.png").is_file() and capsys.readouterr().out.rstrip().endswith(f"-> {tmp_path}/fig.png")


def _many(tiny_run, tmp: Path, count: int = 2000) -> Path:
    return many_links(Path(_video(tiny_run)), tmp / "many", count)


SIGINT_CASES = {
    "eval": lambda r, t: ["eval", str(r["checkpoint"]), "--data", f"moves={_many(r, t)}"],
    "predict": lambda r, t: ["predict", str(r["checkpoint"]), str(_many(r, t))],
    "data prepare": lambda r, t: ["data", "prepare", str(_many(r, t)), str(t / "out"), "--short-side", "16"],
    "data make-default": lambda r, t: ["data", "make-default", str(t / "made")],
    "visualize": lambda r, t: ["visualize", str(r["checkpoint"]), _video(r), "--out", str(t / "fig.png")],
    "export": lambda r, t: ["export", str(r["checkpoint"]), "--pathway", "video", "--out", str(t / "m.onnx")],
}


@pytest.mark.parametrize("case", list(SIGINT_CASES))
def test_ctrl_c_gives_one_line_and_status_130(case, tiny_run, tmp_path):
    argv = SIGINT_CASES[case](tiny_run, tmp_path)
    # long commands: well inside their work; short ones: while they import torch (inside the catch too)
    code, err = ctrl_c_after(argv, 4.0 if case in ("eval", "predict", "data prepare") else 1.0, ENV)
    if code == 0:
        pytest.skip(f"{case} finished on this machine before the signal")
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) <= 1 and "Traceback" not in err, err  # none: the signal ended it while it exited
    assert not lines or "interrupted" in lines[0], err
