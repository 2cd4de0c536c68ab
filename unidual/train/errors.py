"""The two ways training ends early, as exceptions the CLI turns into one line and an exit code."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot continue; the message says why and what to change."""


class Interrupted(RuntimeError):
    """Ctrl-C / SIGTERM: a checkpoint was saved, the run can be resumed."""


OOM_HINT = (
    "lower optim.batch_size (keep the global batch with optim.accumulate), the clip length / input size "
    "of the sources, model.width or model.depth, or use run.amp=bf16 on a GPU"
)


def is_oom(exc: BaseException) -> bool:
    """A CUDA or host allocation failure (torch raises both as RuntimeError subclasses or MemoryError)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


def diverged(loss: float, epoch: int, update: int, last_checkpoint: str | None) -> TrainingError:
    return TrainingError(
        f"loss is {loss} at epoch {epoch}, update {update}: training diverged. Last good checkpoint: "
        f"{last_checkpoint or 'no checkpoint yet'}. Lower optim.lr, raise schedule.warmup_epochs or set "
        "optim.clip_grad_norm, then start again (or --resume)."
    )


def out_of_memory(batch_size: int, device: object) -> TrainingError:
    return TrainingError(f"out of memory with optim.batch_size={batch_size} on {device}: {OOM_HINT}")
