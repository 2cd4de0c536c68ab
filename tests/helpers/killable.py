"""``unidual train`` in a subprocess that SIGKILLs itself right after update ``kill_at`` (no chance to save).

The exact-resume tests run a config straight, killed mid-epoch, then resumed, and compare.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

RUNNER = """
import os, signal, sys
from unidual.train import trainer as T
kill_at = int(os.environ.get("KILL_AT", "0"))
update = T.Trainer._update
def _update(self):
    update(self)
    if self.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
T.Trainer._update = _update
from unidual.cli import main
sys.exit(main(sys.argv[1:]))
"""


def killable_train(folder: Path, timeout: float = 300) -> Callable[..., subprocess.CompletedProcess]:
    """``run(*train_args, kill_at=0)``: ``unidual train ARGS`` killed after update ``kill_at`` (0: never)."""
    runner = folder / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}

    def run(*args: str, kill_at: int = 0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(runner), "train", *args],
            env={**env, "KILL_AT": str(kill_at)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
