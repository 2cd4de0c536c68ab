"""What a hostile but realistic user can do to a run, tried for real, as a table in docs/reliability.md.

    python benchmarks/reliability.py                # every scenario, writes the table section
    python benchmarks/reliability.py --kills 3 --fuzz 20 --no-write   # quicker, print only

Every scenario runs the real ``unidual`` command (in subprocesses where a process has to
die) on tiny generated data in a temporary folder, and counts outcomes:

- kills: SIGKILL at a random moment of ``unidual train`` (``run.save_every=1``, so many kills
  land inside a save), then ``--auto-resume``; last.pt must load and the resumed weights must
  equal an uninterrupted run's bit for bit.
- disk full: a small tmpfs (``unshare -rm``, skipped where user namespaces are off) filled at
  several sizes; after the failure the tmpfs is enlarged and the run resumed.
- concurrent writers: two ``unidual train`` into one ``--out`` started together.
- malicious / broken checkpoints: pickles that run code, truncated, random, foreign files.
- fuzzed media: bytes of real JPEG/PNG/MP4 files flipped or cut, then decoded.
- config abuse: alias bombs, binary files, bad keys and values, ``--out`` on a file.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the tests' data helpers (tests/helpers)

from helpers.tinydata import make_tiny_sources, tiny_config  # noqa: E402

import benchmarks.reliability_hostile as hostile  # noqa: E402
from benchmarks.common import load_average, machine_line, matmul_peak, table, write_section  # noqa: E402
from unidual import checkpoint as ckpt  # noqa: E402
from unidual.cli import main as cli  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "unidual", "train", *args]


def run_cli(argv: list[str]) -> tuple[int, str]:
    """The CLI in this process: exit status and stderr (an escaping exception counts as a traceback)."""
    err = io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            code = cli(argv)
    except BaseException as exc:
        return -1, f"Traceback: {type(exc).__name__}: {exc}"
    return code, err.getvalue()


def clean_message(code: int, err: str) -> bool:
    lines = [line for line in err.splitlines() if line.startswith("unidual ")]
    return code == 2 and "Traceback" not in err and len(lines) == 1


# --------------------------------------------------------------------------- scenarios


def kills(work: Path, config: Path, count: int, rng: random.Random) -> list[str]:
    ref = work / "ref"
    start = time.perf_counter()
    subprocess.run(train_cmd(str(config), "--out", str(ref)), env=ENV, check=True, capture_output=True)
    duration = time.perf_counter() - start
    final = ckpt.load_checkpoint(ref / "last.pt")["model"]
    corrupt = matched = in_save = 0
    for i in range(count):
        out = work / f"kill{i}"
        proc = subprocess.Popen(
            train_cmd(str(config), "--out", str(out)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.3, 0.95) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        in_save += bool(ckpt.stale_temp_files(out))
        if (out / "last.pt").exists():
            try:
                ckpt.load_checkpoint(out / "last.pt")
            except ckpt.CheckpointError:
                corrupt += 1
        resumed = subprocess.run(
            train_cmd(str(config), "--out", str(out), "--auto-resume"), env=ENV, capture_output=True, text=True
        )
        if resumed.returncode == 0:
            got = ckpt.load_checkpoint(out / "last.pt")["model"]
            matched += all(torch.equal(final[k], got[k]) for k in final)
    return [
        f"| SIGKILL at a random moment of `train` (save every update), then the same command "
        f"with `--auto-resume` | {count} ({in_save} inside a save) | last.pt corrupt: {corrupt}; resumed run "
        f"equal bit for bit to an uninterrupted one: {matched} of {count} |"
    ]


def disk_full(work: Path, config: Path) -> list[str]:
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0
    ):
        return ["| disk full (tmpfs) | 0 | not run: this machine does not allow `unshare -rm` |"]
    rows = []
    sizes = ["48k", "300k", "600k"]
    outcomes = []
    for size in sizes:
        disk = work / f"disk{size}"
        disk.mkdir()
        train = f"{sys.executable} -m unidual train {config} --out {disk}/run run.log_every=1 run.save_every=1"
        first, temps, second, _, err = hostile.on_small_tmpfs(
            disk, size, train, f"ls -a {disk}/run | grep -c '\\.tmp$'", f"{train} --auto-resume", "true"
        )
        final = [line for line in err.splitlines() if line.startswith("unidual train:")]
        what = final[-1].split(":", 2)[-1].strip()[:70] if final else "(no message)"
        tb = "Traceback" in err
        outcomes.append(
            f"{size}: exit {first}{' TRACEBACK' if tb else ''}, temp files left {temps}, "
            f"after enlarging resume exit {second} ({what}...)"
        )
    rows.append(
        f"| disk full: tmpfs of {', '.join(sizes)}, filled by the run itself; then enlarged and "
        f"`--auto-resume` | {len(sizes)} | " + "; ".join(outcomes) + " |"
    )
    return rows


def concurrent(work: Path, config: Path, count: int) -> list[str]:
    both_ran = 0
    refused_clean = 0
    for i in range(count):
        out = work / f"twice{i}"
        procs = [
            subprocess.Popen(
                train_cmd(str(config), "--out", str(out)),
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(p.wait(), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _ in results)
        both_ran += codes == [0, 0]
        refused_clean += codes in ([0, 2], [0, 1]) and any(
            "in use by pid" in err or "already holds a run" in err for _, err in results
        )
    return [
        f"| two `train` into the same `--out` at once | {count} | both ran to the end: {both_ran}; "
        f"one finished, the other refused with a one-line message naming the holder or the run: "
        f"{refused_clean} |"
    ]


class _Exec:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path(tempfile.gettempdir()) / "unidual-reliability-pwned"


def checkpoints(work: Path, good: Path) -> list[str]:
    MARKER.unlink(missing_ok=True)
    payload = torch.load(good, weights_only=True)
    raw = good.read_bytes()
    cases: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        cases[name] = work / f"{name}.pt"
        cases[name].write_bytes(data)

    buf = io.BytesIO()
    torch.save({"format": ckpt.FORMAT, "model": _Exec(), "model_spec": {}}, buf)
    put("code-in-torch-save", buf.getvalue())
    put("raw-pickle-code", pickle.dumps(_Exec()))
    put("empty", b"")
    for frac in (0.1, 0.5, 0.9, 0.999):
        put(f"truncated-{frac}", raw[: int(len(raw) * frac)])
    put("random-bytes", os.urandom(4096))
    put("text", b"hello\n" * 100)
    for name, change in {
        "no-format": lambda p: p.pop("format"),
        "no-model": lambda p: p.pop("model"),
        "unknown-model-name": lambda p: p["model_spec"].update(name="nope"),
        "bad-depth": lambda p: p["model_spec"].update(depth=11),
        "wrong-width": lambda p: p["model_spec"].update(width=0.5),
        "missing-tensor": lambda p: p["model"].pop(next(iter(p["model"]))),
        "extra-option": lambda p: p["model_spec"]["options"].update(bogus=1),
    }.items():
        p = torch.load(good, weights_only=True)
        change(p)
        buf = io.BytesIO()
        torch.save(p, buf)
        put(name, buf.getvalue())
    del payload
    refused = 0
    for path in cases.values():
        code, err = run_cli(["predict", str(path), str(good)])  # the checkpoint is read first
        refused += clean_message(code, err)
    executed = MARKER.exists()
    MARKER.unlink(missing_ok=True)
    return [
        f"| malicious / broken checkpoints given to `predict` (code-running pickles, truncated, random, "
        f"foreign, spec/tensor mismatches) | {len(cases)} | refused with one line and exit 2: {refused}; "
        f"code executed: {'YES' if executed else 'never'} |"
    ]


def fuzz(work: Path, data: Path, count: int, rng: random.Random) -> list[str]:
    from unidual.data.decode import load_image, read_clip
    from unidual.data.errors import DataError

    seeds = [next((data / "img").rglob("*.jpg")), next((data / "vid").rglob("*.mp4"))]
    png = work / "seed.png"
    Image.open(seeds[0]).save(png)
    seeds.append(png)
    read_ok = refused = crashed = 0
    crashes: list[str] = []
    for i in range(count):
        seed = seeds[i % len(seeds)]
        raw = bytearray(seed.read_bytes())
        if rng.random() < 0.3:
            raw = raw[: rng.randrange(1, len(raw))]
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        path = work / f"fuzz{i}{seed.suffix}"
        path.write_bytes(bytes(raw))
        try:
            if seed.suffix == ".mp4":
                read_clip(path, lambda info: list(range(min(4, max(1, info.num_frames)))))
            else:
                np.asarray(load_image(path))
            read_ok += 1
        except DataError:
            refused += 1
        except Exception as exc:
            crashed += 1
            crashes.append(f"{path.name}: {type(exc).__name__}")
    return [
        f"| fuzzed media (JPEG / PNG / MP4 with flipped bytes, 30% also cut short) decoded | {count} | "
        f"read: {read_ok}; refused with a DataError naming the file: {refused}; other exceptions: {crashed}"
        + (f" ({', '.join(crashes[:3])})" if crashes else "")
        + " |"
    ]


def config_abuse(work: Path, config: Path) -> list[str]:
    base = config.read_text()
    bomb = "".join(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    cases: dict[str, list[str]] = {}

    def file(name: str, text: str | bytes) -> str:
        path = work / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    cases["alias bomb in model.options"] = [
        file(
            "bomb.yaml",
            base.replace("model:\n", "model:\n  options:\n    a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + bomb, 1),
        ),
        "--check",
    ]
    cases["alias bomb in an override"] = [
        str(config),
        "model.options={a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,"
        "*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,"
        "*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,"
        "*e,*e,*e,*e,*e,*e], g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}",
        "--check",
    ]
    cases["binary file"] = [file("bin.yaml", os.urandom(2048)), "--check"]
    cases["not a mapping"] = [file("list.yaml", "- 1\n- 2\n"), "--check"]
    cases["invalid YAML"] = [file("bad.yaml", "a: [1, 2\n"), "--check"]
    cases["unknown key"] = [str(config), "optim.lrr=1", "--check"]
    cases["model.depth=11"] = [str(config), "model.depth=11", "--check"]
    cases["run.device=tpu"] = [str(config), "run.device=tpu", "--check"]
    cases["negative lr"] = [str(config), "optim.lr=-1", "--check"]
    cases["base loop"] = [file("loop.yaml", "base: loop.yaml\n"), "--check"]
    cases["missing source root"] = [str(config), f"sources.0.root={work}/nowhere", "--out", str(work / "r1")]
    cases["--out is a file"] = [str(config), "--out", file("afile", "x")]
    cases["unknown model option"] = [str(config), "model.options={bogus: 1}", "--out", str(work / "r2")]
    results = {name: clean_message(*run_cli(["train", *argv])) for name, argv in cases.items()}
    failed = [name for name, ok in results.items() if not ok]
    return [
        f"| config abuse ({', '.join(cases)}) | {len(cases)} | one-line error and exit 2: {sum(results.values())}"
        + (f" (not: {', '.join(failed)})" if failed else "")
        + " |"
    ]


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=3)
    parser.add_argument("--fuzz", type=int, default=150)
    parser.add_argument("--prepare-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    torch.set_num_threads(1)
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="unidual-reliability-") as tmp:
        work = Path(tmp)
        sources = make_tiny_sources(work / "data")
        data = tiny_config(sources, schedule={"epochs": 2}, run={"save_every": 1, "log_every": 1})
        config = work / "c.yaml"
        config.write_text(yaml.safe_dump(data))
        first_video = next((work / "data" / "vid").rglob("*.mp4"))
        rows = ["| what was tried | times | what happened |", "|---|---|---|"]
        for name, fn in [
            ("kills", lambda: kills(work, config, args.kills, rng)),
            ("disk full", lambda: disk_full(work, config)),
            ("concurrent", lambda: concurrent(work, config, args.concurrent)),
            ("checkpoints", lambda: checkpoints(work, work / "ref" / "last.pt")),
            ("fuzz", lambda: fuzz(work, work / "data", args.fuzz, rng)),
            ("config", lambda: config_abuse(work, config)),
            ("prepare kills", lambda: hostile.prepare_kills(work, args.prepare_kills, rng)),
            ("prepare disk full", lambda: hostile.prepare_disk_full(work)),
            ("prepare odd trees", lambda: hostile.prepare_odd_trees(work)),
            ("commands", lambda: hostile.commands_out_and_ctrl_c(work, work / "ref" / "last.pt", first_video)),
            ("paths", lambda: hostile.paths_anywhere(work)),
        ]:
            t0 = time.perf_counter()
            rows += fn()
            print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        memory = hostile.hostile_media(work, work / "ref" / "last.pt")
        memory += hostile.weights_bomb(work, first_video)
    memory_table = table(["file", "command", "exit", "peak RSS (MB)", "wall (s)", "what happened"], memory)
    body = "\n".join(rows) + (
        "\n\n### Hostile media and weights: peak memory and time\n\n"
        "Each case is the real command under `/usr/bin/time -v` (peak RSS includes Python, torch and the "
        "model: about 290 MB before any file is read). The *resize+crop* run is the benchmark's run with "
        "protocol A (resize to 128x171, crop 112); the *native size* run keeps each file's size, so its "
        "frames are bounded by `--max-side` (default 1024) and the model runs at that size.\n\n"
        + memory_table
        + f"\n\nCommand: `python benchmarks/reliability.py --kills {args.kills} --concurrent "
        f"{args.concurrent} --fuzz {args.fuzz} --prepare-kills {args.prepare_kills} --seed {args.seed}` "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}; {machine_line()}; fp32 matmul peak "
        f"{matmul_peak():.0f} GFLOP/s; load average before: {load}).\n"
    )
    print(body)
    if not args.no_write:
        write_section("Tried and measured", body, doc=DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
