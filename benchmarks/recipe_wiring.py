"""The trainer with every recipe switch off, before and after the recipe was wired in: loader and step.

    .venv/bin/python benchmarks/recipe_wiring.py                  # updates docs/performance.md
    .venv/bin/python benchmarks/recipe_wiring.py --baseline f22296f --rounds 40 --no-write

The study config (configs/cpu/study/base.yaml on a reduced CIFAR-motion set, benchmarks/study_setup.py)
trained by ``unidual.train.trainer.Trainer`` of two trees: git revision ``--baseline`` (checked out
into a temporary worktree; the code before the wiring) and this tree. Each tree runs in its own
long-lived process (``PYTHONPATH`` puts its package first), and the parent asks them for one round
at a time, alternating (and the order alternating too), so a busy machine slows both alike. A round
is one update: the next batch from the trainer's loader (``trainer.loader.epoch``: sampler,
datasets, transforms, collate; 0 workers), then the training step on it (``_micro_step`` +
``_update``, what ``_run_epoch`` calls per batch: device copy, forward, backward, optimiser step),
each timed. Rounds of one update keep the two trees' measurements seconds apart, which on a shared
machine matters more than long rounds. Target: each within 3 % of the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "Recipe switches off: the trainer before/after the wiring"


def worker(config: Path, run_dir: Path) -> None:
    """One tree's trainer: on each stdin line, time one batch from its loader, then one update on it; print JSON."""
    import unidual
    from unidual.train.config import load_config
    from unidual.train.meters import TrainMeter
    from unidual.train.trainer import Trainer

    trainer = Trainer(load_config(config), run_dir=run_dir)
    print(json.dumps({"package": str(Path(unidual.__file__).parent)}), flush=True)
    trainer.train_module.train()
    epoch, batches, meter = 0, iter(trainer.loader.epoch(0)), TrainMeter()
    for _ in sys.stdin:
        t0 = time.perf_counter()
        batch = next(batches, None)
        if batch is None:  # a new epoch (not timed as a batch)
            epoch += 1
            batches = iter(trainer.loader.epoch(epoch))
            t0 = time.perf_counter()
            batch = next(batches)
        t1 = time.perf_counter()
        trainer._micro_step(batch.sub, True, 1, meter)
        trainer._update()
        t2 = time.perf_counter()
        examples = sum(len(part["label"]) for part in batch.sub.values())
        print(json.dumps({"loader": t1 - t0, "step": t2 - t1, "examples": examples}), flush=True)


def start(tree: Path, config: Path, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT / 'benchmarks'}"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(config), str(run_dir)]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree)
    package = _reply(proc)["package"]
    if Path(package).resolve() != (tree / "unidual").resolve():
        raise RuntimeError(f"{tree}: the worker imported unidual from {package}")
    return proc


def ask(proc: subprocess.Popen) -> dict[str, float]:
    proc.stdin.write("go\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    return _reply(proc)


def _reply(proc: subprocess.Popen) -> dict:
    """The worker's next JSON line (anything else it prints on stdout, e.g. a notice, is passed through)."""
    while True:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"worker exited with {proc.wait()}")
        if line.startswith("{"):
            return json.loads(line)
        print(f"  worker: {line.rstrip()}", file=sys.stderr)


def main() -> int:
    # here, not at the top: common.py puts this tree first on sys.path, and a worker must import its own
    from common import add_run_args, matmul_peak, median, provenance, save_summary, start_run, table, write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="f22296f", metavar="REV", help="the revision before the wiring")
    parser.add_argument("--updates", type=int, default=16, help="updates per epoch (the loader restarts after each)")
    parser.add_argument("--rounds", type=int, default=80, help="interleaved rounds of one update each, after 3 warm-up")
    add_run_args(parser)
    args = parser.parse_args()
    load_before = start_run(args)
    peak = matmul_peak()
    from study_setup import reduced_study_config

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            cfg, info = reduced_study_config(tmp / "motion")
            batch = cfg.optim.batch_size
            overrides = {"data": {"epoch_size": args.updates * batch}, "run": {"eval_every": 0, "progress": False,
                         "plots": False, "save_every": 0, "device": "cpu"}}  # fmt: skip
            raw = cfg.to_dict()
            for section, values in overrides.items():
                raw[section].update(values)
            for source in raw["sources"]:  # only the keys the baseline knows: every recipe switch is off anyway
                for key in ("loss_weight", "balance", "head", "head_unmatched"):
                    source.pop(key, None)
                for key in ("mixup", "cutmix", "mix_prob", "randaugment", "scale", "color_jitter"):
                    source["transform"].pop(key, None)
            for section, keys in {"optim": ("name", "betas", "decay_norm_and_bias", "backbone_lr_mult",
                                            "label_smoothing"), "model": ("dropout", "zero_init_residual"),
                                  "run": ("ema_decay",)}.items():  # fmt: skip
                for key in keys:
                    raw[section].pop(key, None)
            config = tmp / "config.json"  # JSON is YAML: both trees read it
            config.write_text(json.dumps(raw))
            procs = {"before": start(base, config, tmp / "run-before"), "after": start(ROOT, config, tmp / "run-after")}
            for proc in procs.values():
                for _ in range(3):
                    ask(proc)  # warm-up
            results: dict[str, list[dict[str, float]]] = {k: [] for k in procs}
            for r in range(args.rounds):
                for name in list(procs) if r % 2 == 0 else list(procs)[::-1]:
                    results[name].append(ask(procs[name]))
                if (r + 1) % 10 == 0:
                    print(f"  round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            for proc in procs.values():
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    examples = results["after"][0]["examples"]
    rows, ratios = [], {}
    for part in ("loader", "step"):
        before = [x[part] for x in results["before"]]
        after = [x[part] for x in results["after"]]
        ratios[part] = median(after) / median(before)
        paired = median([b / a for a, b in zip(before, after)])
        rows.append(
            [
                f"{part} ({'0 workers, ' if part == 'loader' else ''}one batch of {examples})",
                f"{examples / median(before):.1f}",
                f"{examples / median(after):.1f}",
                f"**{ratios[part]:.3f}x**",
                f"{paired:.3f}x",
            ]
        )
    header = ["trainer part", "before, examples/s", "after, examples/s", "time after / before (medians)"]
    header.append("(median of the rounds' ratios)")
    body = "\n".join(
        [
            provenance(load_before) + f" fp32 matmul rate {peak:.0f} GFLOP/s.",
            f"configs/cpu/study/base.yaml (UniDual-Aux depth {cfg.model.depth}, width {cfg.model.width}, batch "
            f"{batch}) on reduced CIFAR-motion ({info['train_videos']} train videos, {info['image_train']} train "
            f"images), every recipe switch off; `Trainer` of `{args.baseline}` (before the wiring) and of this tree, "
            f"each in its own process, {args.rounds} interleaved rounds of one update each (the order alternating; "
            f"epochs of {args.updates} updates), after 3 warm-up updates each.",
            "",
            table(header, rows),
            "",
            "Target: within 3 % (the switches off are a few `if`s per update; `optim.name: sgd` with the defaults "
            "builds the same `torch.optim.SGD(model.parameters(), ...)`).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        save_summary(
            "recipe_wiring",
            [
                {
                    "metric": f"trainer {part}, every recipe switch off: time vs before the wiring",
                    "target": "<= 1.03x",
                    "measured": f"{ratios[part]:.3f}x",
                    "met": ratios[part] <= 1.03,
                    "note": f"{args.rounds} interleaved single-update rounds",
                }
                for part in ("loader", "step")
            ],
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
