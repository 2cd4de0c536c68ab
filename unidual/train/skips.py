"""The skip budget: how many unreadable examples a source may lose before training stops.

A few bad files in a large dataset are normal (PySlowFast and mmaction2 retry or skip them
silently); a source that is mostly unreadable makes a run that trains on another dataset
than the one named. Each skip is logged and counted per source; past
``data.max_skipped`` (a count) or ``data.max_skipped_fraction`` (a share of the examples
the source drew, from :data:`SKIP_FRACTION_AFTER` on) the trainer stops with a message
naming the worst source and its first bad files.
"""

from __future__ import annotations

from collections.abc import Mapping

from unidual.data.errors import DataError

SKIP_FRACTION_AFTER = 20  # data.max_skipped_fraction applies once a source drew this many examples


class SkipBudget:
    """Unreadable examples per source against ``data.max_skipped`` / ``data.max_skipped_fraction``."""

    def __init__(self, keys: list[str], max_count: int | None, max_fraction: float) -> None:
        self.keys = keys
        self.max_count, self.max_fraction = max_count, max_fraction
        self.drawn = dict.fromkeys(keys, 0)
        self.skipped = dict.fromkeys(keys, 0)
        self.files: dict[str, list[str]] = {k: [] for k in keys}

    def add(self, drawn: Mapping[str, int], skipped: list[tuple[str, tuple[str, str]]]) -> None:
        for key, n in drawn.items():
            self.drawn[key] += n
        for key, (path, reason) in skipped:
            self.skipped[key] += 1
            if len(self.files[key]) < 3:
                self.files[key].append(f"{path} ({reason})")

    def _over(self, key: str) -> bool:
        n, bad = self.drawn[key], self.skipped[key]
        if self.max_count is not None and bad > self.max_count:
            return True
        return n >= SKIP_FRACTION_AFTER and bad > self.max_fraction * n

    def over(self) -> bool:
        return any(self._over(k) for k in self.keys)

    def error(self) -> DataError:
        """The error that stops training once any rank is over budget (this rank's message if it is)."""
        if self.over():
            return DataError(self.message())
        return DataError(
            "another process exceeded the skip budget (data.max_skipped / data.max_skipped_fraction); see its message"
        )

    def message(self) -> str:
        worst = max(self.keys, key=lambda k: (self._over(k), self.skipped[k] / max(1, self.drawn[k])))
        files = "; ".join(self.files[worst])
        return (
            f"source {worst!r}: {self.skipped[worst]} of {self.drawn[worst]} examples drawn were unreadable, "
            f"past the skip budget (data.max_skipped={self.max_count}, data.max_skipped_fraction="
            f"{self.max_fraction}); first: {files}. Fix or remove them (unidual data check) or raise the budget"
        )
