"""A real install: build the wheel, install it into a fresh venv, run a tiny demo from another folder.

Nothing is downloaded: the wheel is built with the project environment's setuptools
(``--no-build-isolation``) and installed with ``--no-deps --no-index``; the fresh venv sees the
project environment's torch, av, ... through a ``.pth`` line (their folder only: the editable
install's own ``.pth`` hook in that folder is not run, so ``unidual`` comes from the wheel).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_from_another_folder(tmp_path):
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed in this environment (needed to build the wheel offline)")
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "unidual", source / "unidual", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("unidual-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "unidual/configs/cpu/demo.yaml",
        "unidual/configs/cpu/demo_r2plus1d.yaml",
        "unidual/configs/paper/base-34.yaml",
        "unidual/configs/cpu/study/study.yaml",
        "unidual/serve/page.html",  # `unidual serve`'s page is package data too
    } <= names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "project_env_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        cwd=tmp_path,
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "UNIDUAL_", "VIRTUAL_ENV"))}
    env["OMP_NUM_THREADS"] = "1"
    where = _run([str(python), "-c", "import unidual; print(unidual.__file__)"], cwd=work, env=env).stdout
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the checkout
    demo = _run(
        [
            str(venv / "bin" / "unidual"),
            "demo",
            "--small",
            "--no-compare",
            "schedule.epochs=1",
            "data.epoch_size=32",
            "model.width=0.125",
            "optim.batch_size=8",
            "run.progress=false",
            "data.num_workers=0",
        ],
        cwd=work,
        env=env,
    )
    assert "UniDual-Aux" in demo.stdout and "chance" in demo.stdout, demo.stdout
    runs = list((work / "runs").glob("demo-*/unidual_aux/last.pt"))
    assert len(runs) == 1 and (work / "runs" / "demo-data" / "shapes").is_dir()
