"""The second reliability round (issue 28), tried for real: hostile media and weights, ``data prepare``
under kills, a full disk and Ctrl-C, every command on an unusable ``--out`` and on Ctrl-C, paths.

Imported by ``benchmarks/reliability.py``, which writes the rows into docs/reliability.md. Peak
memory and wall time of each hostile case come from ``/usr/bin/time -v`` around the real command.
"""

from __future__ import annotations

import io
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from helpers.hostile import ctrl_c_after, huge_gif, huge_h264, huge_png, many_links, zip_bomb_checkpoint

from unidual import checkpoint as ckpt
from unidual.cli import main as cli
from unidual.data.encode import write_video

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def timed(argv: list[str], timeout: float = 600) -> dict:
    """``/usr/bin/time -v python -m unidual ARGV``: exit code, peak RSS (MB), wall (s), the error lines."""
    report = Path(f"/tmp/unidual-time-{os.getpid()}.txt")
    cmd = ["/usr/bin/time", "-v", "-o", str(report), sys.executable, "-m", "unidual", *argv]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    text = report.read_text()
    report.unlink(missing_ok=True)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    seconds = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    errors = [line for line in done.stderr.splitlines() if line.startswith("unidual")]
    return {
        "rc": done.returncode,
        "rss": rss,
        "wall": seconds,
        "traceback": "Traceback" in done.stderr,
        "message": errors[-1] if errors else "",
    }


def _ckpt_with_transform(src: Path, dst: Path, transform: dict) -> Path:
    payload = torch.load(src, weights_only=True)
    for source in payload["config"]["sources"]:
        source["transform"] = transform
    payload.pop("format", None)
    return ckpt.save_checkpoint(dst, payload)


def hostile_media(work: Path, good: Path) -> list[list[str]]:
    """predict / visualize on files that declare huge frames; rows of the memory table."""
    folder = work / "hostile"
    folder.mkdir()
    files = {
        "GIF, 16000x16000 canvas, two 1x1 frames": huge_gif(folder / "canvas.gif"),
        "GIF, two 16000x16000 frames, no pixel data": huge_gif(folder / "full.gif", full=True),
        "PNG header declaring 16000x16000": huge_png(folder / "wide.png"),
        "H.264, four 8192x8192 frames": huge_h264(folder / "8192.mp4", frames=4),
    }
    runs = {
        "resize+crop": _ckpt_with_transform(good, work / "resize.pt", {"protocol": "A"}),
        "native size": good,  # the benchmark's run: protocol custom without resize (the --max-side path)
    }
    rows = []
    for what, path in files.items():
        for run_name, run in runs.items():
            for command in ("predict", "visualize"):
                argv = [command, str(run), str(path)] + (
                    ["--out", str(work / "fig.png")] if command == "visualize" else []
                )
                r = timed(argv)
                outcome = "read" if r["rc"] == 0 else f"refused: {r['message'].split(': ', 2)[-1][:130]}"
                rows.append(
                    [
                        f"{what} ({path.stat().st_size:,} bytes)",
                        f"`{command}`, {run_name} run",
                        f"{r['rc']}{' TRACEBACK' if r['traceback'] else ''}",
                        f"{r['rss']:.0f}",
                        f"{r['wall']:.1f}",
                        outcome,
                    ]
                )
    return rows


def weights_bomb(work: Path, payload_file: Path) -> list[list[str]]:
    """A 2 GB-inflating checkpoint of ~2 MB given to predict and convert; the check itself in this process."""
    bomb = zip_bomb_checkpoint(work / "bomb.pth", inflated=2_000_000_000)
    rows = []
    for argv in (["predict", str(bomb), str(payload_file)], ["convert", str(bomb), "--out", str(work / "c.pt")]):
        r = timed(argv)
        rows.append(
            [
                f"zip-bomb `.pth`, 2.0 GB inflated ({bomb.stat().st_size:,} bytes)",
                f"`{argv[0]}`",
                f"{r['rc']}{' TRACEBACK' if r['traceback'] else ''}",
                f"{r['rss']:.0f}",
                f"{r['wall']:.1f}",
                f"refused: {r['message'].split(': ', 2)[-1][:130]}",
            ]
        )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        ckpt.check_inflation(bomb)
        refused = False
    except ckpt.CheckpointError:
        refused = True
    took = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    rows.append(
        [
            "the same, `checkpoint.check_inflation` alone (in-process)",
            "the check",
            "refused" if refused else "NOT refused",
            f"+{grown:.0f}",
            f"{took * 1000:.1f} ms",
            "zip directory read, nothing inflated",
        ]
    )
    return rows


def _prepare(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "unidual", "data", "prepare", str(src), str(dst), "--short-side", "32", *extra]


def prepare_kills(work: Path, count: int, rng: random.Random) -> list[str]:
    """SIGKILL at a random moment of ``data prepare`` (a 256 MB copy, videos), then the same command again."""
    src = work / "prep-src"
    src.mkdir()
    with open(src / "big.png", "wb") as f:
        f.truncate(256 << 20)
    noise = np.random.default_rng(0)
    for i in range(6):
        write_video(src / f"c{i % 2}" / f"v{i}.avi", noise.integers(0, 255, (60, 128, 128, 3), np.uint8), fps=10)
    start = time.perf_counter()
    subprocess.run(_prepare(src, work / "prep-ref", "--workers", "2"), env=ENV, capture_output=True, check=True)
    duration = time.perf_counter() - start
    partial = complete = 0
    for i in range(count):
        dst = work / f"prep-kill{i}"
        proc = subprocess.Popen(
            _prepare(src, dst, "--workers", "2"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.2, 0.9) * duration)
        proc.send_signal(signal.SIGKILL)  # the main process only, as the OOM killer would
        proc.wait()
        time.sleep(0.5)  # spawned workers notice their parent is gone
        big = dst / "big.png"
        partial += big.exists() and big.stat().st_size != 256 << 20
        rerun = subprocess.run(_prepare(src, dst, "--workers", "2"), env=ENV, capture_output=True, text=True)
        complete += rerun.returncode == 0 and big.stat().st_size == 256 << 20 and len(list(dst.rglob("*.mp4"))) == 6
    return [
        f"| SIGKILL at a random moment of `data prepare --workers 2` (a 256 MB copy and 6 videos), then the "
        f"same command | {count} | a final name on an incomplete file: {partial}; rerun complete: {complete} of {count} |"
    ]


def on_small_tmpfs(mnt: Path, size: str, first: str, look: str, second: str, after: str) -> tuple[str, ...]:
    """In a user namespace: mount a ``size`` tmpfs on ``mnt``, run ``first`` (its stderr kept), ``look``,
    enlarge the tmpfs to 600 MB, run ``second``, then ``after``. Returns (first's exit, look's output,
    second's exit, after's output, first's stderr)."""
    script = (
        f'mount -t tmpfs -o size={size} tmpfs {mnt} || exit 9; {first} >/dev/null 2>{mnt}.err; echo "$?"; '
        f'echo "$({look})"; mount -o remount,size=600m {mnt}; {second} >/dev/null 2>&1; echo "$?"; '
        f'echo "$({after})"'
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=ENV, capture_output=True, text=True)
    out = (done.stdout.splitlines() + ["?"] * 4)[:4]
    err = Path(f"{mnt}.err").read_text() if Path(f"{mnt}.err").exists() else ""
    return out[0], out[1], out[2], out[3], err


def prepare_disk_full(work: Path) -> list[str]:
    """``data prepare`` into small tmpfs mounts (``unshare -rm``): one line, exit 1, nothing broken counted."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        return ["| `data prepare` on a full disk (tmpfs) | 0 | not run: this machine does not allow `unshare -rm` |"]
    src = work / "prep-src"
    outcomes = []
    for size in ("300k", "2m", "6m"):
        mnt = work / f"prep-mnt{size}"
        mnt.mkdir()
        prepare = f"{sys.executable} -m unidual data prepare {src} {mnt}/out --short-side 32 --workers 2"
        first, temps, second, size_after, err = on_small_tmpfs(
            mnt, size, prepare, f"ls -a {mnt}/out | grep -c 'part$'", prepare, f"stat -c %s {mnt}/out/big.png"
        )
        lines = [line for line in err.splitlines() if line.strip()]
        one = len(lines) == 1 and "Traceback" not in err
        outcomes.append(
            f"{size}: exit {first}, {'one line' if one else f'{len(lines)} lines'} "
            f"({lines[-1].split(': ', 2)[-1][:40] if lines else ''}...), temp files left {temps}, "
            f"after enlarging exit {second}, big.png {size_after} bytes"
        )
    return [
        "| `data prepare --workers 2` into a tmpfs of 300k, 2m, 6m; then enlarged and run again | 3 | "
        + "; ".join(outcomes)
        + " |"
    ]


def prepare_odd_trees(work: Path) -> list[str]:
    """Symlinked folders, a name at NAME_MAX, a non-UTF-8 name, a list naming an unreadable video."""
    src, dst = work / "odd-src", work / "odd-dst"
    frames = np.random.default_rng(1).integers(0, 255, (8, 48, 48, 3), np.uint8)
    write_video(work / "linked" / "y.avi", frames, fps=8)
    write_video(src / "a" / "x.avi", frames, fps=8)
    (src / "linked").symlink_to(work / "linked", target_is_directory=True)
    (src / "a" / "loop").symlink_to(src, target_is_directory=True)
    limit = os.pathconf(work, "PC_NAME_MAX")
    write_video(src / ("n" * (limit - 4) + ".mp4"), frames, fps=8)
    (src / os.fsdecode(b"caf\xe9.mp4")).write_bytes(b"not a video" * 10)
    (src / "list.txt").write_bytes(b"a/x.avi 0\nlinked/y.avi 1\ncaf\xe9.mp4 1\n")
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()) as out:
        code = cli(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"])
    checks = {
        "symlinked folder followed": (dst / "linked" / "y.mp4").is_file(),
        "loop reported": "symlink loop" in out.getvalue(),
        "NAME_MAX name written": (dst / ("n" * (limit - 4) + ".mp4")).is_file(),
        "non-UTF-8 name listed": "caf\\xe9.mp4" in (dst / "prepare_unreadable.txt").read_text(),
        "its list line dropped": (dst / "list.txt").read_text() == "a/x.mp4 0\nlinked/y.mp4 1\n",
    }
    held = [k for k, ok in checks.items() if ok]
    return [
        f"| `data prepare` on a tree with a symlinked folder, a symlink loop, a name of NAME_MAX ({limit}) bytes, "
        f"a non-UTF-8 name, a list naming an unreadable video | {len(checks)} | exit {code}; held: {len(held)} "
        f"({', '.join(held)})"
        + (f"; NOT: {', '.join(k for k in checks if k not in held)}" if len(held) < len(checks) else "")
        + " |"
    ]


def commands_out_and_ctrl_c(work: Path, good: Path, video: Path) -> list[str]:
    """Every command with an unusable ``--out``, and Ctrl-C at a random moment of each."""
    (work / "a-file").write_text("x")
    (work / "a-dir").mkdir()
    outs = {
        "eval --out FILE": ["eval", str(good), "--out", str(work / "a-file")],
        "export --out DIR": ["export", str(good), "--pathway", "image", "--out", str(work / "a-dir")],
        "data prepare SRC FILE": [
            "data",
            "prepare",
            str(work / "prep-src"),
            str(work / "a-file"),
            "--short-side",
            "16",
        ],
        "data make-default FILE": ["data", "make-default", str(work / "a-file")],
        "visualize --out DIR": ["visualize", str(good), str(video), "--out", str(work / "a-dir")],
    }
    clean = 0
    for argv in outs.values():
        err = io.StringIO()
        try:
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                code = cli(argv)
        except BaseException:
            code = -1
        lines = [line for line in err.getvalue().splitlines() if line.startswith(("unidual", "error"))]
        clean += code == 2 and len(lines) == 1 and "Traceback" not in err.getvalue()
    many = many_links(video, work / "many", 300)
    ctrl = {
        "eval": ["eval", str(good), "--data", f"vid={work / 'many'}"],
        "predict": ["predict", str(good), str(many / "test")],
        "data prepare": ["data", "prepare", str(work / "prep-src"), str(work / "ctrl-prep"), "--short-side", "16"],
        "data make-default": ["data", "make-default", str(work / "ctrl-made")],
        "visualize": ["visualize", str(good), str(video), "--out", str(work / "ctrl.png")],
        "export": ["export", str(good), "--pathway", "video", "--out", str(work / "ctrl.onnx")],
    }
    rng = random.Random(1)
    one_line = finished = 0
    for argv in ctrl.values():
        code, err = ctrl_c_after(argv, rng.uniform(0.5, 5.0), ENV)
        finished += code == 0
        one_line += code == 130 and len(err.strip().splitlines()) <= 1 and "Traceback" not in err
    return [
        f"| an `--out` that is an existing file or folder ({', '.join(outs)}) | {len(outs)} | one line and exit 2: {clean} |",
        f"| Ctrl-C (SIGINT to the process group) at a random moment of {', '.join(ctrl)} | {len(ctrl)} | "
        f"at most one line, no traceback, status 130: {one_line}; finished before the signal: {finished} |",
    ]


def paths_anywhere(work: Path) -> list[str]:
    """make-default in one folder, data check of its sources file from another, and after moving it."""
    here = os.getcwd()
    results = []
    try:
        os.chdir(work)
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            made = cli(["data", "make-default", "d", "--images-per-class", "1", "1", "--videos-per-class", "1", "1"])
            (work / "elsewhere").mkdir()
            os.chdir(work / "elsewhere")
            results.append(cli(["data", "check", str(work / "d" / "sources.yaml")]))
            (work / "d").rename(work / "moved")
            results.append(cli(["data", "check", str(work / "moved")]))
    finally:
        os.chdir(here)
    return [
        f"| `data make-default d` in one folder, `data check` of its sources file from another, then after moving "
        f"the folder | 2 | make-default exit {made}; data check exits {results} |"
    ]
