"""What training reports while it runs: running statistics, the metrics log, the progress display.

Statistics stay on the device between two ``metrics.jsonl`` records (``run.log_every`` updates):
reading a GPU number makes the host wait for the GPU, so :class:`TrainMeter` reads them all in one
go when a record is written, not at every step. The progress display is :class:`unidual.progress.Progress`:
a tqdm bar on a terminal, one plain line every 30 s in a log.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any

import torch

from unidual.data.mixing import MixedBatch
from unidual.progress import Progress
from unidual.run import Run, RunWriteError
from unidual.train.errors import TrainingError
from unidual.train.plots import plot_metrics
from unidual.train.skips import SkipBudget

Number = float | int | torch.Tensor


def _add(a: Number | None, b: Number) -> Number:
    """Sum in float64 (on the device for tensors), as Python floats would: logged values don't depend on where."""
    if isinstance(b, torch.Tensor):
        b = b.detach().double()
    return b if a is None else a + b


class TrainMeter:
    """Training statistics since the last record: examples, loss per term, top-1 hits per term."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.updates = 0
        self.examples = 0
        self.batches = 0
        self.skipped = 0
        self.loss_total: Number | None = None
        self.loss_sum: dict[str, Number] = {}
        self.count: dict[str, int] = {}
        self.correct: dict[str, Number] = {}
        self.part_correct: dict[str, Number] = {}  # "<part>/<term>" (run.label_parts)

    def add(self, stats: Mapping[str, Any], loss: torch.Tensor) -> None:
        """One micro-step's ``stats`` (from the objective) and its loss; nothing is read from the device."""
        self.examples += int(stats["examples"])
        self.loss_total = _add(self.loss_total, loss)
        self.batches += 1
        for name in stats["count"]:
            self.loss_sum[name] = _add(self.loss_sum.get(name), stats["loss_sum"][name])
            self.count[name] = self.count.get(name, 0) + int(stats["count"][name])
            self.correct[name] = _add(self.correct.get(name), stats["correct"][name])
        for name, hits in stats.get("part_correct", {}).items():
            self.part_correct[name] = _add(self.part_correct.get(name), hits)

    def note_skips(self, batch: MixedBatch, budget: SkipBudget, announce: bool) -> None:
        """Count and log a micro-batch's unreadable examples, charged to their source's skip budget
        (which the trainer checks at the update)."""
        for path, reason in batch.skipped:
            self.skipped += 1
            if announce:
                print(f"warning: skipped {path}: {reason}", file=sys.stderr)
        budget.add(batch.drawn(), list(zip(batch.skipped_sources, batch.skipped)))

    def rate(self) -> float:
        return self.examples / max(1e-9, time.perf_counter() - self.start)

    def _read(self) -> tuple[float, dict[str, float], dict[str, float], dict[str, float]]:
        """Every accumulated number as a Python float: the one device -> host read of a record."""
        names, parts = sorted(self.count), sorted(self.part_correct)
        values = [self.loss_total if self.loss_total is not None else 0.0]
        values += [self.loss_sum[n] for n in names] + [self.correct[n] for n in names]
        values += [self.part_correct[n] for n in parts]
        on_device = [(i, v) for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
        read = [float(v) if not isinstance(v, torch.Tensor) else 0.0 for v in values]
        if on_device:
            got = torch.stack([t.reshape(()) for _, t in on_device]).cpu().tolist()
            for (i, _), v in zip(on_device, got):
                read[i] = v
        k = len(names)
        by_part = dict(zip(parts, read[1 + 2 * k :]))
        return read[0], dict(zip(names, read[1 : 1 + k])), dict(zip(names, read[1 + k : 1 + 2 * k])), by_part

    def record(self, *, epoch: float, step: int, lr: float, world_size: int) -> dict[str, Any]:
        loss_total, loss_sum, correct, part_correct = self._read()
        rec: dict[str, Any] = {
            "type": "train",
            "epoch": epoch,
            "step": step,
            "lr": lr,
            "loss": loss_total / max(1, self.batches),
            "examples_per_s": self.rate() * world_size,
            "skipped": self.skipped,
        }
        for name in sorted(self.count):
            rec[f"loss/{name}"] = loss_sum[name] / max(1, self.count[name])
            rec[f"acc/{name}"] = 100.0 * correct[name] / max(1, self.count[name])
        for name, hits in part_correct.items():  # "class/motion" -> acc_class/motion
            part, term = name.split("/", 1)
            rec[f"acc_{part}/{term}"] = 100.0 * hits / max(1, self.count[term])
        return rec


class MetricsLog:
    """``metrics.jsonl`` (and TensorBoard when asked), written by rank 0 only."""

    def __init__(self, run: Run, enabled: bool) -> None:
        self.run = run
        self.enabled = enabled
        self.tb: Any = None

    def open_tensorboard(self) -> None:
        if not self.enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional extra: imported only when asked
        except ImportError as exc:
            raise TrainingError(
                "run.tensorboard=true needs the tensorboard package (pip install 'unidual[tensorboard]')"
            ) from exc
        self.tb = SummaryWriter(str(self.run.tensorboard_dir))

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record; a full disk stops the run (resumable from the last checkpoint)."""
        if not self.enabled:
            return
        try:
            self.run.append_metrics(record)
        except RunWriteError as exc:
            raise TrainingError(str(exc)) from None
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record['type']}/{k}", v, record["step"])

    def plot(self, enabled: bool) -> None:
        """loss.png and accuracy.png from the records so far (rank 0, when ``run.plots``)."""
        if self.enabled and enabled:
            plot_metrics(self.run.metrics_file, self.run.path)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def progress(total: int, initial: int, desc: str, enabled: bool) -> Progress:
    """Updates of one epoch (tqdm on a terminal, plain lines in a log: :class:`unidual.progress.Progress`)."""
    return Progress(total=total, initial=initial, desc=desc, unit="update", disable=not enabled, leave=False)


def postfix_of(record: Mapping[str, Any]) -> dict[str, str]:
    """What the progress display shows of a train record."""
    loss = record.get("loss")
    shown = {"loss": f"{loss:.3f}" if isinstance(loss, float) and math.isfinite(loss) else str(loss)}
    shown["ex_s"] = f"{record.get('examples_per_s', 0.0):.1f}"
    shown["lr"] = f"{record.get('lr', 0.0):.2e}"
    return shown
