"""Ctrl-C and SIGTERM during training: finish the update, save, exit resumable.

The first signal only sets a flag, which the loop reads after each optimiser update (every rank
agrees on it, so no rank is left waiting in a collective); the trainer then saves ``last.pt`` and
raises :class:`~unidual.train.trainer.Interrupted`. A second signal gives up at once.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any


class StopSignals:
    """Context manager: SIGINT/SIGTERM set :attr:`received` (their previous handlers come back on exit)."""

    def __init__(self, announce: bool = True) -> None:
        self.received: str | None = None
        self.agreed = False  # a signal reached some rank, as all ranks agreed at the last update
        self.announce = announce
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.received:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        if self.announce:
            print(f"\n{self.received}: finishing this update, saving a checkpoint...", file=sys.stderr)

    def agree(self, any_rank_received: bool) -> None:
        """The ranks' agreement at an update: a signal on any rank stops every rank there."""
        if any_rank_received:
            self.agreed = True
            self.received = self.received or "a signal on another rank"

    def now(self, several_ranks: bool) -> bool:
        """Stop after this update? With several ranks only the agreed flag counts (all stop together)."""
        return self.agreed if several_ranks else bool(self.received)

    def __enter__(self) -> StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: no handlers, plain KeyboardInterrupt semantics
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
