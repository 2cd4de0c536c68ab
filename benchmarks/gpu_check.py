"""GPU acceptance check: what only a machine with GPUs can confirm, in one run of a few minutes.

    python benchmarks/gpu_check.py --out gpu_check          # one GPU: <= 5 min; 2+ GPUs add the torchrun check
    python benchmarks/gpu_check.py --dry-run --out /tmp/gc  # CPU (CI): every check that needs no GPU

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (the same numbers as tables) and exits
non-zero if a check failed. Checks, each independent (one failing does not stop the others):

* ``environment``   -- torch / CUDA / cuDNN versions, the GPUs, matmul rates (CPU fp32; GPU fp32,
                       TF32, bf16, fp16);
* ``step``          -- the UniDual-Aux-34 training step at the paper's per-GPU batch as
                       configs/paper/unidual_aux.yaml composes it (16 examples: 8 images 112² +
                       8 clips 8x112²; the trainer's LossModule + Objective + SGD) in fp32 (TF32 off),
                       TF32, bf16 and fp16 (GradScaler), paired in interleaved rounds with the
                       plain-PyTorch R(2+1)D-34 of benchmarks/reference.py on 16 clips: time per
                       step, peak memory (``torch.cuda.max_memory_allocated``) beside the estimate of
                       unidual/train/footprint.py, host syncs per step (unidual/train/syncs.py);
* ``cudnn_benchmark`` -- the same step (TF32) with ``torch.backends.cudnn.benchmark`` off and on;
* ``memory_format`` -- what ``run.channels_last: auto`` chooses on this device: the probe step of
                       unidual/models/channels_last.py timed in each layout;
* ``memory_152``    -- UniDual-Aux-152 (configs/paper/unidual_aux-152.yaml) at 8 x 16x224² (4 images
                       + 4 clips, the paper's setting) and 16 x 32x112²: measured forward+backward
                       peak where it fits, the fake-tensor estimate always (which one: ``source``);
* ``train_e2e``     -- ``unidual data make-default`` (tiny), ``unidual train`` 20 steps on
                       ``run.device=cuda run.amp=bf16``, then ``unidual eval --device cuda``;
* ``torchrun_resume`` -- with >= 2 GPUs: a 2-rank torchrun job (``--max-restarts=1``,
                       ``--auto-resume``), one rank SIGKILLed mid-run, restarted, finishing.

``--dry-run`` runs the same code on the CPU with a slim UniDual-Aux (depth 10, width 0.25,
32 px) and a depth-10 reference: its numbers exercise the code (sync counting, the memory
estimates of the paper configs, the end-to-end commands, the JSON and markdown), they are not
GPU measurements. GPU-only checks report ``skipped`` there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from common import ROOT, interleaved, machine_line, matmul_peak, median, table
from reference import VideoResNetR2Plus1d, r2plus1d_34

from unidual.train.config import load_config
from unidual.train.footprint import BatchPlan, batch_plan, estimate_config, step_parts
from unidual.train.precision import Precision, configure_cuda
from unidual.train.syncs import SyncCounter

PAPER = ROOT / "configs" / "paper"
CLASSES = {"imagenet": 1000, "kinetics": 400}
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # fp32: TF32 off; tf32: TF32 convolutions and matmuls
GiB = 2**30


# --------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_tf32(on: bool, device: torch.device, cudnn_benchmark: bool = True) -> None:
    """The trainer's kernel policy (run.tf32, run.cudnn_benchmark; a no-op off CUDA)."""
    configure_cuda(device, cudnn_benchmark=cudnn_benchmark, tf32=on)


def amp_of(precision: str) -> str:
    return precision if precision in ("bf16", "fp16") else "off"


def run_check(name: str, fn: Callable[[], dict[str, Any]], results: dict[str, Any]) -> None:
    """Run one check; a failure is recorded (with the traceback's tail), the others still run."""
    print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        out = fn()
        out.setdefault("status", "ok")
    except Exception as exc:  # an acceptance script reports every failure, then exits non-zero
        out = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"[gpu_check] {name}: {out['status']} ({out['seconds']} s)", file=sys.stderr, flush=True)
    results[name] = out


def skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


def gpu_matmul_tflops(device: torch.device, dtype: torch.dtype, tf32: bool = False, size: int = 8192) -> float:
    set_tf32(tf32, device)
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e12


# --------------------------------------------------------------------------- checks
def check_environment(device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": sys.version.split()[0],
        "machine": machine_line(),
        "cpu_fp32_matmul_gflops": round(matmul_peak(), 1),
        "gpus": [],
    }
    if device.type == "cuda":
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out["gpus"].append(
                {"name": p.name, "memory_gib": round(p.total_memory / GiB, 1), "capability": f"{p.major}.{p.minor}"}
            )
        out["gpu_matmul_tflops"] = {
            "fp32": round(gpu_matmul_tflops(device, torch.float32), 1),
            "tf32": round(gpu_matmul_tflops(device, torch.float32, tf32=True), 1),
            "bf16": round(gpu_matmul_tflops(device, torch.bfloat16), 1),
            "fp16": round(gpu_matmul_tflops(device, torch.float16), 1),
        }
        set_tf32(False, device)
    return out


class Step:
    """One training step of a variant in one precision, as a callable; ``model`` for the memory baseline."""

    def __init__(self, loss: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer, precision: Precision,
                 device: torch.device) -> None:  # fmt: skip
        self.loss, self.optimizer, self.precision, self.device = loss, optimizer, precision, device

    def __call__(self) -> None:
        """As the trainer's update: backward (scaled in fp16), unscale, then step -- or skip on overflow."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss = self.loss()
        self.precision.backward(loss)
        overflow = self.precision.unscale(self.optimizer)
        if overflow is not None and bool(overflow):  # fp16 only; the trainer reads this flag once per update too
            self.precision.skip()
        else:
            self.precision.step(self.optimizer)
        sync(self.device)


def unidual_aux_parts(dry: bool, device: torch.device, precision: str) -> tuple[Any, BatchPlan, Any]:
    """The paper config (or its slim dry-run version), its per-GPU batch, and the step's parts on ``device``."""
    overrides = [f"run.amp={amp_of(precision)}"] if amp_of(precision) != "off" else []  # YAML reads `off` as false
    if dry:
        overrides += ["model.depth=10", "model.width=0.25"]
    cfg = load_config(PAPER / "unidual_aux.yaml", overrides)
    plan = batch_plan(cfg, CLASSES)
    if dry:  # 2 images 32² + 2 clips 4x32²
        plan.shapes = {"imagenet": (2, 3, 32, 32), "kinetics": (2, 3, 4, 32, 32)}
    return cfg, plan, step_parts(cfg, plan, device)


def reference_parts(dry: bool, device: torch.device, clips: int, frames: int, size: int):
    model = (VideoResNetR2Plus1d((1, 1, 1, 1)) if dry else r2plus1d_34(num_classes=400)).to(device).train()
    x = torch.randn(clips, 3, frames, size, size, device=device)
    y = torch.randint(400, (clips,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4, nesterov=True)
    return model, opt, (lambda: F.cross_entropy(model(x), y))


def peak_of(step: Step, device: torch.device) -> dict[str, float] | None:
    """Peak bytes one step adds on the GPU (after zero_grad, like the estimate's ``step_peak``), and the absolute peak."""
    if device.type != "cuda":
        return None
    step.optimizer.zero_grad(set_to_none=True)
    torch.cuda.empty_cache()
    sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    peak = torch.cuda.max_memory_allocated(device)
    return {"step_peak_gib": round((peak - before) / GiB, 2), "max_memory_allocated_gib": round(peak / GiB, 2)}


def syncs_of(step: Step) -> dict[str, int]:
    with SyncCounter() as counter:
        step()
    return dict(counter.by_op)


def check_step(dry: bool, device: torch.device, rounds: int) -> dict[str, Any]:
    precisions = ("fp32",) if dry else PRECISIONS
    rows: dict[str, Any] = {}
    probe = torch.zeros(3, device=device)
    with SyncCounter() as counter:  # the counter itself: a step that reads one value counts one sync
        probe.sum().item()
    for precision in precisions:
        set_tf32(precision != "fp32", device)
        cfg, plan, parts = unidual_aux_parts(dry, device, precision)
        clip = plan.shapes["kinetics"]
        clips = sum(s[0] for s in plan.shapes.values())  # the reference gets as many clips as UniDual-Aux examples
        _, ref_opt, ref_loss = reference_parts(dry, device, clips, clip[2], clip[-1])
        steps = {
            "unidual_aux": Step(parts.loss, parts.optimizer, Precision(amp_of(precision), device), device),
            "reference": Step(ref_loss, ref_opt, Precision(amp_of(precision), device), device),
        }
        times = interleaved(steps, rounds=rounds, warmup=1 if dry else 3, verbose=False)
        estimate = estimate_config(cfg, plan)
        row: dict[str, Any] = {"batch": plan.describe(), "reference_batch": f"{clips} clips {clip[2]}x{clip[-1]}²"}
        for name, step in steps.items():
            row[name] = {
                "ms": round(median(times[name]) * 1e3, 1),
                "ms_min": round(min(times[name]) * 1e3, 1),
                "syncs": syncs_of(step),
                "memory": peak_of(step, device),
            }
        row["unidual_aux"]["estimated_step_peak_gib"] = round(estimate.step_peak / GiB, 2)
        row["unidual_aux"]["estimated_peak_gib"] = round(estimate.peak / GiB, 2)
        row["ratio_unidual_aux_over_reference"] = round(median(times["unidual_aux"]) / median(times["reference"]), 3)
        rows[precision] = row
        del parts, steps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    set_tf32(False, device)
    return {
        "model": "slim UniDual-Aux depth 10 width 0.25 (dry run)"
        if dry
        else "UniDual-Aux-34 (configs/paper/unidual_aux.yaml)",
        "reference": "VideoResNetR2Plus1d (1,1,1,1) (dry run)"
        if dry
        else "benchmarks/reference.py r2plus1d_34 (contiguous)",
        "counter_probe_syncs": counter.total,
        "rounds": rounds,
        "precisions": rows,
    }


def check_cudnn_benchmark(device: torch.device, rounds: int) -> dict[str, Any]:
    set_tf32(True, device)
    _, _, parts = unidual_aux_parts(False, device, "tf32")
    step = Step(parts.loss, parts.optimizer, Precision("off", device), device)

    def with_benchmark(on: bool) -> Callable[[], None]:
        def run() -> None:
            torch.backends.cudnn.benchmark = on
            step()

        return run

    times = interleaved(
        {"off": with_benchmark(False), "on": with_benchmark(True)}, rounds=rounds, warmup=3, verbose=False
    )
    set_tf32(False, device)
    off, on = median(times["off"]), median(times["on"])
    return {"ms_off": round(off * 1e3, 1), "ms_on": round(on * 1e3, 1), "speedup_on": round(off / on, 3)}


def check_memory_format(dry: bool, device: torch.device, work: Path) -> dict[str, Any]:
    """What ``run.channels_last: auto`` would choose here: the probe step timed in each layout (a private cache)."""
    from unidual.models import channels_last as CL

    if dry:  # a tiny probe: the code path, not the decision
        CL.PROBE = CL.Probe(width=0.125, frames=2, size=16)
    choice = CL.choose_channels_last("auto", device, cache=work / "memory_format.json")
    return {
        "channels_last": choice.channels_last,
        "source": choice.source,
        "key": choice.key,
        "ms": {k: round(v * 1e3, 2) for k, v in choice.seconds.items()},
        "probe": dataclasses.asdict(CL.PROBE),
    }


def settings_152() -> dict[str, tuple[list[str], dict[str, tuple[int, ...]]]]:
    """name -> (config overrides, batch shapes); the model is configs/paper/unidual_aux-152.yaml's."""
    return {
        "8 x 16x224²": ([], {"imagenet": (4, 3, 224, 224), "kinetics": (4, 3, 16, 224, 224)}),
        "16 x 32x112²": (["optim.batch_size=16", "model.frames=32"],
                         {"imagenet": (8, 3, 112, 112), "kinetics": (8, 3, 32, 112, 112)}),
    }  # fmt: skip


def check_memory_152(dry: bool, device: torch.device) -> dict[str, Any]:
    rows = {}
    for name, (overrides, shapes) in settings_152().items():
        cfg = load_config(PAPER / "unidual_aux-152.yaml", overrides)
        plan = BatchPlan(shapes, dict(CLASSES), [])
        estimate = estimate_config(cfg, plan)
        row: dict[str, Any] = {
            "batch": plan.describe(),
            "amp": cfg.run.amp,
            "params_gib": round(estimate.params / GiB, 3),
            "estimated_peak_gib": round(estimate.peak / GiB, 2),
            "estimated_activations_gib": round(estimate.activations / GiB, 2),
            "source": "estimate (dry run)" if dry else "estimate",
        }
        if not dry:
            set_tf32(True, device)
            try:
                parts = step_parts(cfg, plan, device)
                step = Step(parts.loss, parts.optimizer, Precision(cfg.run.amp, device), device)
                step()  # the first step creates the momentum buffers
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                step()
                row["measured_peak_gib"] = round(torch.cuda.max_memory_allocated(device) / GiB, 2)
                row["source"] = "measured forward+backward+SGD step (and estimate)"
            except torch.cuda.OutOfMemoryError:
                row["source"] = "estimate (does not fit: out of memory)"
            finally:
                parts = step = None  # type: ignore[assignment]
                torch.cuda.empty_cache()
                set_tf32(False, device)
        rows[name] = row
    return {"model": "UniDual-Aux-152 (configs/paper/unidual_aux-152.yaml)", "settings": rows}


def _cli(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unidual", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)  # fmt: skip


def tiny_config(work: Path, device: str, amp: str, steps: int, extra: list[str] | None = None) -> Path:
    """The demo config on a freshly generated tiny make-default dataset, ``steps`` updates on ``device``."""
    data = work / "data"
    made = _cli("data", "make-default", str(data), "--images-per-class", "8", "4", "--videos-per-class", "2", "1",
                "--video-labels", "class", timeout=600)  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"unidual data make-default failed: {made.stderr[-2000:]}")
    raw = yaml.safe_load((ROOT / "configs" / "cpu" / "demo.yaml").read_text())
    raw["sources"][0]["root"] = str(data / "shapes")
    raw["sources"][1]["root"] = str(data / "motion")
    raw.setdefault("run", {}).update(
        {"device": device, "amp": amp, "max_steps": steps, "eval_every": 0, "plots": False, "progress": False}
    )
    raw.setdefault("data", {}).update({"eval_limit": 32, "num_workers": 2})
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    for item in extra or []:
        load_config(path, [item])  # fail early on a bad override
    return path


def check_train_e2e(dry: bool, work: Path) -> dict[str, Any]:
    device, amp, steps = ("cpu", "off", 2) if dry else ("cuda", "bf16", 20)
    config = tiny_config(work, device, amp, steps)
    t0 = time.perf_counter()
    train = _cli("train", str(config), "--out", str(work / "run"), timeout=900)
    train_s = time.perf_counter() - t0
    if train.returncode != 0:
        raise RuntimeError(f"unidual train exited {train.returncode}: {train.stderr[-2000:]}")
    t0 = time.perf_counter()
    ev = _cli("eval", str(work / "run"), "--device", device, "--json", timeout=600)
    if ev.returncode != 0:
        raise RuntimeError(f"unidual eval exited {ev.returncode}: {ev.stderr[-2000:]}")
    metrics = json.loads(ev.stdout[ev.stdout.index("{") :])
    return {
        "command": f"unidual train CONFIG run.device={device} run.amp={amp} run.max_steps={steps}; unidual eval RUN --device {device}",
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(time.perf_counter() - t0, 1),
        "steps": steps,
        "metrics": metrics,
    }


def _rank_pids(agent: int, local_rank: str) -> list[int]:
    """The worker the torchrun agent started for ``local_rank`` (its child with LOCAL_RANK set so; not
    the worker's own DataLoader processes, which inherit the variable)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == agent and f"LOCAL_RANK={local_rank}".encode() in env:
            found.append(int(entry))
    return found


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return max((json.loads(x)["step"] for x in lines if '"train"' in x), default=0)
    except (OSError, ValueError, KeyError):
        return 0


def check_torchrun_resume(work: Path, device: str = "cuda", steps: int = 40, kill_after: int = 12) -> dict[str, Any]:
    amp = "bf16" if device == "cuda" else "off"
    config = tiny_config(work, device, amp, steps)
    raw = yaml.safe_load(config.read_text())
    raw["run"].update({"save_every": 5, "log_every": 1})
    raw["data"]["num_workers"] = 1
    config.write_text(yaml.safe_dump(raw))
    run = work / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--max-restarts=1",
           "--monitor-interval=1", "-m", "unidual", "train", str(config), "--out", str(run), "--auto-resume"]  # fmt: skip
    t0 = time.perf_counter()
    killed: list[int] = []
    with open(work / "torchrun.log", "w") as log:
        job = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            while job.poll() is None and time.perf_counter() - t0 < 480:
                if not killed and _last_step(run) >= kill_after:
                    killed = _rank_pids(job.pid, "1")
                    for pid in killed:
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
            rc = job.wait(timeout=max(1.0, 500 - (time.perf_counter() - t0)))
        finally:
            if job.poll() is None:
                job.kill()
    text = (work / "torchrun.log").read_text()
    final = _last_step(run)
    ok = rc == 0 and bool(killed) and final == steps and "resuming" in text
    return {
        "status": "ok" if ok else "failed",
        "returncode": rc,
        "killed_pids": killed,
        "killed_after_step": kill_after,
        "final_step": final,
        "resumed": "resuming" in text,
        "seconds_total": round(time.perf_counter() - t0, 1),
        "log_tail": text[-2000:] if not ok else "",
    }


# --------------------------------------------------------------------------- report
def markdown(results: dict[str, Any], dry: bool) -> str:
    lines = [
        "# GPU acceptance check" + (" (dry run on the CPU: exercises the code, not GPU numbers)" if dry else ""),
        "",
    ]
    env = results.get("environment", {})
    if env.get("status") == "ok":
        gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in env["gpus"]) or "none"
        lines += [f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}; GPUs: {gpus}.",
                  f"Host: {env['machine']}; CPU fp32 matmul {env['cpu_fp32_matmul_gflops']} GFLOP/s."]  # fmt: skip
        if "gpu_matmul_tflops" in env:
            lines.append(
                "GPU matmul TFLOP/s: " + ", ".join(f"{k} {v}" for k, v in env["gpu_matmul_tflops"].items()) + "."
            )
        lines.append("")
    lines += ["| check | status | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {r['status']}{': ' + r.get('reason', r.get('error', '')) if r['status'] != 'ok' else ''} | "
              f"{r['seconds']} |" for n, r in results.items()]  # fmt: skip
    step = results.get("step", {})
    if step.get("status") == "ok":
        rows = []
        for prec, r in step["precisions"].items():
            a, ref = r["unidual_aux"], r["reference"]
            mem = a["memory"] or {}
            rows.append([prec, a["ms"], ref["ms"], r["ratio_unidual_aux_over_reference"], sum(a["syncs"].values()),
                         sum(ref["syncs"].values()), mem.get("step_peak_gib", "-"), a["estimated_step_peak_gib"],
                         mem.get("max_memory_allocated_gib", "-")])  # fmt: skip
        first = next(iter(step["precisions"].values()))
        lines += ["", f"## Training step: {step['model']} ({first['batch']}) vs {step['reference']} "
                  f"({first['reference_batch']})", "",
                  table(["precision", "UniDual-Aux ms", "reference ms", "time ratio", "UniDual-Aux syncs/step",
                         "reference syncs/step", "step peak GiB (measured)", "step peak GiB (estimated)",
                         "max_memory_allocated GiB"], rows)]  # fmt: skip
    bench = results.get("cudnn_benchmark", {})
    if bench.get("status") == "ok":
        lines += ["", "## cudnn.benchmark (UniDual-Aux-34, TF32)", "",
                  table(["off ms", "on ms", "speed-up"], [[bench["ms_off"], bench["ms_on"], bench["speedup_on"]]])]  # fmt: skip
    fmt = results.get("memory_format", {})
    if fmt.get("status") == "ok":
        lines += ["", "## Memory format (`run.channels_last: auto`)", "",
                  f"{fmt['key']}: channels-last {fmt['ms'].get('channels_last')} ms, contiguous "
                  f"{fmt['ms'].get('contiguous')} ms per probe step -> "
                  f"{'channels-last' if fmt['channels_last'] else 'contiguous'} ({fmt['source']})"]  # fmt: skip
    mem = results.get("memory_152", {})
    if mem.get("status") == "ok":
        rows = [[n, r["batch"], r.get("measured_peak_gib", "-"), r["estimated_peak_gib"], r["source"]]
                for n, r in mem["settings"].items()]  # fmt: skip
        lines += ["", f"## Peak memory, {mem['model']}", "",
                  table(["setting", "batch", "measured GiB", "estimated GiB", "source"], rows)]  # fmt: skip
    e2e = results.get("train_e2e", {})
    if e2e.get("status") == "ok":
        lines += ["", f"## End to end: `{e2e['command']}`", "",
                  f"train {e2e['train_seconds']} s, eval {e2e['eval_seconds']} s; metrics: `{json.dumps(e2e['metrics'])}`"]  # fmt: skip
    tr = results.get("torchrun_resume", {})
    if tr.get("status") in ("ok", "failed") and "final_step" in tr:
        lines += ["", "## torchrun: a rank SIGKILLed mid-run, restarted", "",
                  f"killed after step {tr['killed_after_step']} (pids {tr['killed_pids']}), resumed: {tr['resumed']}, "
                  f"final step {tr['final_step']}, exit code {tr['returncode']}, {tr['seconds_total']} s"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--dry-run", action="store_true", help="CPU: every check that needs no GPU (CI)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per variant (default 10; dry run 1)")
    parser.add_argument("--only", nargs="+", default=None, help="run only these checks")
    parser.add_argument("--torchrun-on-cpu", action="store_true", help="dry run: also run the torchrun check (gloo)")
    args = parser.parse_args()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if dry else "cuda")
    rounds = args.rounds or (1 if dry else 10)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() if not dry else 0
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        checks: dict[str, Callable[[], dict[str, Any]]] = {
            "environment": lambda: check_environment(device),
            "step": lambda: check_step(dry, device, rounds),
            "cudnn_benchmark": (lambda: skipped("CUDA only"))
            if dry
            else (lambda: check_cudnn_benchmark(device, rounds)),
            "memory_format": lambda: check_memory_format(dry, device, work),
            "memory_152": lambda: check_memory_152(dry, device),
            "train_e2e": lambda: check_train_e2e(dry, work / "e2e"),
            "torchrun_resume": (
                (lambda: check_torchrun_resume(work / "torchrun", "cpu", steps=12, kill_after=4))
                if dry and args.torchrun_on_cpu
                else (lambda: skipped("needs 2 GPUs; the CPU/gloo path is tests/train/test_torchrun_restart.py"))
                if gpus < 2
                else (lambda: check_torchrun_resume(work / "torchrun"))
            ),
        }
        for name, fn in checks.items():
            if args.only and name not in args.only:
                continue
            run_check(name, fn, results)
    report = {
        "dry_run": dry,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:]),
        "checks": results,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(results, dry)
    (out / "gpu_check.md").write_text(text)
    print(text)
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} ({report['seconds']} s)", file=sys.stderr)
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
