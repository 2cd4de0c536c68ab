"""Issue 16: each failure a hostile but realistic user hit, reproduced, and what happens now.

Disk-full cases use a write wrapper that raises ENOSPC part-way (deterministic); one test
also fills a real tmpfs when the machine lets an unprivileged user mount one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.tinydata import tiny_config
from PIL import Image

from unidual import checkpoint as ckpt
from unidual import run as run_module
from unidual.cli import main as cli
from unidual.run import Run, RunLock
from unidual.train import trainer as T
from unidual.train.config import ConfigError, load_config

PROJECT = Path(__file__).resolve().parents[2]


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def strict_records(path: Path) -> list[dict]:
    """metrics.jsonl parsed as strict JSON (a bare NaN or a torn line fails)."""

    def no_constants(name: str):
        raise ValueError(f"non-JSON constant {name}")

    return [json.loads(line, parse_constant=no_constants) for line in path.read_text().splitlines()]


def one_line_error(err: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("unidual ")]
    assert len(lines) == 1, err


@pytest.fixture(scope="module")
def finished_run(tiny_sources, tmp_path_factory) -> Path:
    """A one-epoch run (log every update) to copy from."""
    out = tmp_path_factory.mktemp("finished") / "run"
    cfg = load_config(data=tiny_config(tiny_sources, schedule={"epochs": 1}, run={"log_every": 1}))
    T.train(cfg, run_dir=out)
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / Run.LOCK).unlink(missing_ok=True)
    return dst


class _Kill(BaseException):
    """Stands for SIGKILL inside one process: nothing after it runs, no handler saves."""


# --------------------------------------------------------------------------- 1. disk full in metrics.jsonl


class _FullDisk:
    """A text file whose write stores part of the data and then fails with ENOSPC, like a full disk."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, text: str) -> int:
        self.f.write(text[: len(text) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_torn_metrics_line_does_not_block_resume(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"type": "train", "step": 3, "lo')  # what a full disk leaves
    assert cli(["train", "--resume", str(run), "schedule.epochs=2"]) == 0
    assert "dropped 1 unreadable line" in capsys.readouterr().err
    steps = [r["step"] for r in strict_records(run / "metrics.jsonl") if r["type"] == "train"]
    assert steps == list(range(1, 9))


def test_disk_full_while_appending_metrics_stops_cleanly_and_resumes(tiny_sources, tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = load_config(data=tiny_config(tiny_sources, schedule={"epochs": 2}, run={"log_every": 1}))
    real_open = open
    calls = {"n": 0}

    def flaky_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            calls["n"] += 1
            if calls["n"] == 6:  # the sixth record: after the epoch-1 checkpoint
                return _FullDisk(f)
        return f

    monkeypatch.setattr(run_module, "open", flaky_open, raising=False)  # the Run object appends the records
    with pytest.raises(T.TrainingError, match="no space left on device.*--resume"):
        T.train(cfg, run_dir=out)
    records = strict_records(out / "metrics.jsonl")  # no half line left behind
    assert len(records) == 5
    monkeypatch.undo()
    T.train(cfg, run_dir=out, resume=True)
    steps = [r["step"] for r in strict_records(out / "metrics.jsonl") if r["type"] == "train"]
    assert steps == list(range(1, 9))


# --------------------------------------------------------------------------- 2. disk full while saving


def _enospc_save(obj, f, *args, **kwargs):
    f.write(b"x" * 1000)
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as exc:  # torch's writer reports the OSError wrapped in a RuntimeError
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from exc


def test_disk_full_while_saving_keeps_previous_checkpoint_and_says_so(finished_run, tmp_path, monkeypatch, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    before = (run / "last.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _enospc_save)
    with pytest.raises(ckpt.CheckpointWriteError) as info:
        ckpt.save_checkpoint(run / "last.pt", {"model": {}, "model_spec": {}})
    assert "no space left on device" in str(info.value) and "previous checkpoint is kept" in str(info.value)
    assert "\n" not in str(info.value)
    assert (run / "last.pt").read_bytes() == before and not ckpt.stale_temp_files(run)
    assert cli(["train", "--resume", str(run), "schedule.epochs=2"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert "no space left on device" in err
    monkeypatch.undo()
    assert ckpt.load_checkpoint(run / "last.pt")["train_state"]["global_step"] == 4


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt || mount -t tmpfs -o size=1m tmpfs /tmp"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.slow
def test_real_full_tmpfs_gives_one_line_and_no_temp_file(tiny_sources, tmp_path):
    if not _can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs here (needs unprivileged user namespaces: unshare -rm)")
    config = write_config(tmp_path / "c.yaml", tiny_config(tiny_sources))
    disk = tmp_path / "disk"
    disk.mkdir()
    # 48 KiB: room for config.yaml and labels.json, not for the first checkpoint (~170 KB)
    script = (
        f"mount -t tmpfs -o size=48k tmpfs {disk} && {sys.executable} -m unidual train {config} "
        f"--out {disk}/run; echo rc=$?; ls -a {disk}/run"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert "rc=1" in done.stdout, done.stdout + done.stderr
    one_line_error(done.stderr)
    assert "no space left on device" in done.stderr
    assert ".tmp" not in done.stdout  # the failed save's temp file was removed


# --------------------------------------------------------------------------- 3. one writer per run directory


def test_second_writer_is_refused_naming_the_holder(tiny_sources, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_config(tiny_sources))
    out = tmp_path / "run"
    lock = RunLock(out).acquire()
    try:
        assert cli(["train", str(config), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        one_line_error(err)
        assert f"in use by pid {os.getpid()}" in err
        assert not (out / "metrics.jsonl").exists() and not (out / "last.pt").exists()
    finally:
        lock.release()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    code = (
        "import os, signal, sys; from pathlib import Path; from unidual.run import RunLock; "
        "RunLock(Path(sys.argv[1])).acquire(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(out)], env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert killed.returncode == -signal.SIGKILL
    assert "pid" in (out / Run.LOCK).read_text()
    lock = RunLock(out).acquire()
    try:
        assert lock.previous and lock.previous.startswith("pid ") and str(os.getpid()) not in lock.previous
    finally:
        lock.release()


# --------------------------------------------------------------------------- 4. unusable data


def _garbage_images(root: Path, classes=("a", "b"), per_class: int = 4, start: int = 0) -> None:
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(start, start + per_class):
                (root / split / name / f"bad{i}.jpg").write_bytes(b"not an image at all" * 10)


def test_source_without_a_readable_file_is_refused_before_training(tiny_sources, tmp_path, capsys):
    bad = tmp_path / "bad"
    _garbage_images(bad)
    sources = [dict(tiny_sources[0], root=str(bad)), tiny_sources[1]]
    config = write_config(tmp_path / "c.yaml", tiny_config(sources))
    assert cli(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "source 'img'" in err and "every file unreadable" in err and "bad0.jpg" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_skip_budget_stops_training_naming_the_source_and_files(tiny_sources, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_sources[0]["root"], mixed)
    _garbage_images(mixed, classes=("red", "blue"), per_class=6)  # half the images unreadable
    sources = [dict(tiny_sources[0], root=str(mixed)), tiny_sources[1]]
    config = write_config(tmp_path / "c.yaml", tiny_config(sources, data={"max_skipped": 2}))
    assert cli(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    final = [line for line in err.splitlines() if line.startswith("unidual train:")]
    assert len(final) == 1 and "source 'img'" in final[0] and "skip budget" in final[0] and "bad" in final[0]


def test_undefined_score_is_written_as_json_null(tiny_sources, tmp_path):
    trainer = T.Trainer(load_config(data=tiny_config(tiny_sources)), run_dir=tmp_path / "run")
    try:
        trainer._prepare_run_dir()
        trainer.log({"type": "val", "epoch": 0, "step": 0, "score": float("nan")})
    finally:
        trainer.close()
    assert strict_records(tmp_path / "run" / "metrics.jsonl") == [{"type": "val", "epoch": 0, "step": 0, "score": None}]


# --------------------------------------------------------------------------- 5. best.pt before last.pt


def test_kill_between_best_and_last_never_leaves_best_older(tiny_sources, tmp_path, monkeypatch):
    real_write, real_save = ckpt.save_checkpoint, T.Trainer.save
    state = {"best": False, "writes": 0}

    def save(self, best=False):
        state.update(best=best, writes=0)
        return real_save(self, best)

    def write(path, payload):
        state["writes"] += 1
        if state["best"] and state["writes"] == 2:
            raise _Kill  # the process dies between the two files of a "best" save
        return real_write(path, payload)

    monkeypatch.setattr(T.Trainer, "save", save)
    monkeypatch.setattr(ckpt, "save_checkpoint", write)
    cfg = load_config(data=tiny_config(tiny_sources, schedule={"epochs": 1}))
    with pytest.raises(_Kill):
        T.train(cfg, run_dir=tmp_path / "run")
    best = ckpt.load_checkpoint(tmp_path / "run" / ckpt.BEST)["train_state"]
    last = ckpt.load_checkpoint(tmp_path / "run" / ckpt.LAST)["train_state"]
    # last.pt (update 0) knows no best yet; best.pt holds the validated model of update 4, never an older one
    assert best["global_step"] == 4 and last["global_step"] == 0 and last["best_score"] is None


# --------------------------------------------------------------------------- 6. mixed image sizes


def test_mixed_native_sizes_name_the_files(tiny_sources, tmp_path, capsys):
    root = tmp_path / "sizes"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(("a", "b")):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                side = 24 + 8 * c + 2 * i  # every image its own size
                Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(
                    root / split / name / f"{i}.png"
                )
    sources = [dict(tiny_sources[0], root=str(root)), tiny_sources[1]]
    config = write_config(tmp_path / "c.yaml", tiny_config(sources))
    assert cli(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "different sizes" in err and ".png gives" in err and "resize" in err


# --------------------------------------------------------------------------- 7. bounded predict work


def test_predict_bounds_a_huge_native_size_image(finished_run, tmp_path):
    from unidual.evaluate.predict import MAX_SIDE, load_views, spec_for

    payload = ckpt.load_checkpoint(finished_run / "last.pt")
    big = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(big)  # a few KB on disk, 12 Mpx declared
    spec = spec_for(payload, "image")
    assert spec.transform.resize is None and spec.transform.crop is None  # the run keeps the native size
    views = load_views(big, "image", spec)
    assert tuple(views.shape[-2:]) == (MAX_SIDE * 3 // 4, MAX_SIDE)
    assert tuple(load_views(big, "image", spec, max_side=100).shape[-2:]) == (75, 100)
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    assert tuple(load_views(small, "image", spec).shape[-2:]) == (30, 40)  # small files untouched


def test_eval_of_mixed_native_sizes_runs_and_is_bounded(finished_run, tmp_path, capsys):
    from unidual.evaluate.commands import build_test_datasets, source_specs

    root = tmp_path / "imgs"
    for c, name in enumerate(("red", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            side = 30 + 4 * i
            Image.new("RGB", (side, side + c), (200, 30, 30) if name == "red" else (30, 30, 200)).save(
                root / name / f"{i}.png"
            )
    Image.new("RGB", (3000, 1500), (200, 30, 30)).save(root / "red" / "huge.png")
    assert cli(["eval", str(finished_run), "--data", f"img={root}", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["img"]["examples"] == 7 and table["img"]["skipped"] == 0
    payload = ckpt.load_checkpoint(finished_run / "last.pt")
    specs = source_specs(payload, {"img": str(root)}, max_side=64)
    dataset = build_test_datasets(payload, specs)["img"]
    huge = dataset.files.index(str(root / "red" / "huge.png"))
    assert tuple(dataset[huge]["input"].shape[-2:]) == (32, 64)


# --------------------------------------------------------------------------- 8. YAML alias bomb


def test_alias_bomb_is_refused_before_expansion(tiny_sources, tmp_path, capsys):
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]  # 9^10 values
    base = yaml.safe_dump(tiny_config(tiny_sources))
    config = tmp_path / "bomb.yaml"
    config.write_text(base.replace("model:\n", "model:\n  options:\n" + "".join(f"    {b}\n" for b in bomb), 1))
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(config)
    assert cli(["train", str(config), "--check"]) == 2
    one_line_error(capsys.readouterr().err)
    ok = tmp_path / "ok.yaml"  # an ordinary alias still works
    ok.write_text(
        "model: &m\n  name: unidual_aux\n"
        + base.replace("model:\n", "model:\n  <<: *m\n", 1).replace("  name: unidual_aux\n", "", 1)
    )
    assert load_config(ok).model.name == "unidual_aux"


# --------------------------------------------------------------------------- 9. kill before the first interval


def test_kill_before_first_interval_leaves_a_resumable_run(tiny_sources, tmp_path, monkeypatch, capsys):
    data = tiny_config(tiny_sources, schedule={"epochs": 1}, run={"log_every": 1, "save_every": 0})
    config = write_config(tmp_path / "c.yaml", data)
    out = tmp_path / "run"
    update = T.Trainer._update

    def dying_update(self):
        update(self)
        if self.global_step == 3:
            raise _Kill

    monkeypatch.setattr(T.Trainer, "_update", dying_update)
    with pytest.raises(_Kill):
        cli(["train", str(config), "--out", str(out)])
    monkeypatch.undo()
    assert ckpt.load_checkpoint(out / "last.pt")["train_state"]["global_step"] == 0  # saved at update 0
    assert cli(["train", str(config), "--out", str(out)]) == 1  # the same command again: told to resume
    assert "--auto-resume" in capsys.readouterr().err
    assert cli(["train", str(config), "--out", str(out), "--auto-resume"]) == 0
    steps = [r["step"] for r in strict_records(out / "metrics.jsonl") if r["type"] == "train"]
    assert steps == [1, 2, 3, 4]  # steps 1-3 of the killed attempt are not there twice


def test_records_of_an_attempt_without_checkpoint_are_set_aside(finished_run, tiny_sources, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(finished_run / "metrics.jsonl", out / "metrics.jsonl")  # e.g. killed inside the first save
    T.train(load_config(data=tiny_config(tiny_sources, schedule={"epochs": 1}, run={"log_every": 1})), run_dir=out)
    assert (out / "metrics.aborted.jsonl").read_text() == (finished_run / "metrics.jsonl").read_text()
    steps = [r["step"] for r in strict_records(out / "metrics.jsonl") if r["type"] == "train"]
    assert steps == [1, 2, 3, 4]


def test_auto_resume_refuses_a_checkpoint_of_another_config(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    assert cli(["train", str(run / "config.yaml"), "--out", str(run), "optim.lr=0.07", "--auto-resume"]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "another config (optim.lr: 0.05 -> 0.07)" in err


def test_resume_names_a_model_option_that_changed(finished_run, tmp_path, capsys):
    """Resuming with another model (e.g. a default changed since the run started) names the option
    in one line instead of failing on a tensor's key."""
    run = copy_run(finished_run, tmp_path / "run")
    code = cli(["train", str(run / "config.yaml"), "--resume", str(run), "model.options.pathway_bn_stats=false"])
    err = capsys.readouterr().err
    assert code == 2
    one_line_error(err)
    assert "model.options.pathway_bn_stats: stored True, now False" in err


# --------------------------------------------------------------------------- 10. messages, not tracebacks


@pytest.mark.parametrize("case", ["missing-root", "depth", "device", "binary", "out-is-file"])
def test_bad_input_gives_one_line_and_exit_2(case, tiny_sources, tmp_path, capsys):
    data = tiny_config(tiny_sources)
    args: list[str] = ["--check"]
    if case == "missing-root":
        data["sources"] = [dict(tiny_sources[0], root=str(tmp_path / "nowhere")), tiny_sources[1]]
        args = ["--out", str(tmp_path / "run")]
    config = write_config(tmp_path / "c.yaml", data)
    if case == "depth":
        args.append("model.depth=11")
    if case == "device":
        args.append("run.device=tpu")
    if case == "binary":
        config.write_bytes(bytes(range(256)) * 4)
    if case == "out-is-file":
        (tmp_path / "file").write_text("x")
        args = ["--out", str(tmp_path / "file")]
    assert cli(["train", str(config), *args]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    expected = {
        "missing-root": "nowhere",
        "depth": "model.depth",
        "device": "run.device",
        "binary": "not a text file",
        "out-is-file": "is a file",
    }[case]
    assert expected in err


@pytest.fixture()
def misfit_checkpoint(finished_run, tmp_path) -> Path:
    """A run whose last.pt holds a tensor of the wrong shape for its model_spec (and its config)."""
    run = copy_run(finished_run, tmp_path / "misfit")
    payload = torch.load(run / "last.pt", weights_only=True)
    name = next(k for k, v in payload["model"].items() if v.dim() == 5)  # a conv weight
    payload["model"][name] = torch.zeros(3, 3, 1, 1, 1)
    torch.save(payload, run / "last.pt")
    (run / "best.pt").unlink()
    return run


@pytest.mark.parametrize("command", ["eval", "predict", "export", "resume"])
def test_checkpoint_that_does_not_fit_its_spec(command, misfit_checkpoint, tiny_sources, tmp_path, capsys):
    img = next(Path(tiny_sources[0]["root"]).rglob("*.jpg"))
    argv = {
        "eval": ["eval", str(misfit_checkpoint)],
        "predict": ["predict", str(misfit_checkpoint), str(img)],
        "export": ["export", str(misfit_checkpoint), "--pathway", "image", "--out", str(tmp_path / "m.onnx")],
        "resume": ["train", "--resume", str(misfit_checkpoint), "schedule.epochs=2"],
    }[command]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "do not fit its model_spec" in err and "last.pt" in err


def test_unknown_model_name_in_a_checkpoint(finished_run, tiny_sources, tmp_path, capsys):
    payload = torch.load(finished_run / "last.pt", weights_only=True)
    payload["model_spec"]["name"] = "no_such_model"
    torch.save(payload, tmp_path / "odd.pt")
    img = next(Path(tiny_sources[0]["root"]).rglob("*.jpg"))
    assert cli(["predict", str(tmp_path / "odd.pt"), str(img)]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "odd.pt" in err and "no_such_model" in err


# --------------------------------------------------------------------------- 11. temp files of killed saves


def test_temp_files_of_killed_saves_are_removed_on_start(finished_run, tmp_path, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    leftovers = [run / ".last.pt.k1ll3d.tmp", run / ".best.pt.abc123.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 4096)
    (run / "notes.tmp").write_text("mine")  # not a checkpoint temp file: kept
    trainer = T.Trainer(load_config(run / "config.yaml"), run_dir=run, resume=True)
    trainer.close()
    assert not any(p.exists() for p in leftovers) and (run / "notes.tmp").exists()
    assert capsys.readouterr().err.count("temp file of a checkpoint save that was killed") == 2
