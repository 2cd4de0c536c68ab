"""Paired comparisons between two rows of a study, with bootstrap confidence intervals.

Two models trained with the same seeds and evaluated on the same test examples are compared
pairwise: for seed s and example i, ``d[s, i] = correct_a[s, i] - correct_b[s, i]``. The
reported difference is the mean of ``d`` (in accuracy points); its 95 % interval comes from a
two-level bootstrap that resamples the seeds and, independently, the test examples (the same
resampled examples for every seed, since every seed is evaluated on the same test set), so it
covers both training noise and test-set noise. A verdict is read off the interval, never typed:
``a > b`` when it lies above 0, ``a < b`` below 0, ``not separable`` when it contains 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unidual.study.atomic import write_text
from unidual.study.config import Comparison, Study, StudyError
from unidual.study.runner import EXAMPLES_FILE, run_dir

BOOTSTRAP = 2000
LEVEL = 0.95
# Below this many paired seeds the interval covers test-set noise but hardly training noise (one
# seed: none at all), and on CIFAR-motion two seeds of one model differ by up to 10 points: no verdict.
MIN_SEEDS_FOR_VERDICT = 3


@dataclass
class PairedResult:
    comparison: Comparison
    seeds: list[int]
    examples: int
    a: float  # mean accuracy of a over the paired seeds (%)
    b: float
    diff: float  # a - b (points)
    low: float
    high: float
    se_one_run: float  # standard error of one run's accuracy on this test set (binomial, points)

    @property
    def verdict(self) -> str:
        if len(self.seeds) < MIN_SEEDS_FOR_VERDICT:
            return f"no verdict ({len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''})"
        if self.low > 0:
            return f"{self.comparison.a} > {self.comparison.b}"
        if self.high < 0:
            return f"{self.comparison.a} < {self.comparison.b}"
        return "not separable"

    @property
    def claim_status(self) -> str:
        """The claim a comparison stands for is "A beats B": the verdict read as held, not reproduced or reversed."""
        a, b = self.comparison.a, self.comparison.b
        return {f"{a} > {b}": "holds", f"{a} < {b}": "reversed", "not separable": "not reproduced at this scale"}.get(
            self.verdict, "undecided"
        )


def load_examples(directory: Path, source: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(example index, correct 0/1)`` of one finished run, sorted by index; None if it has none."""
    path = directory / EXAMPLES_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        if f"{source}/{metric}" not in data:
            return None
        index, hits = data[f"{source}/index"], data[f"{source}/{metric}"]
    order = np.argsort(index, kind="stable")
    return index[order], hits[order].astype(np.float64)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, rounds: int = BOOTSTRAP, level: float = LEVEL, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` (seeds x examples, 0/1) and its two-level bootstrap interval, in points."""
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"need two equal (seeds, examples) arrays, got {a.shape} and {b.shape}")
    d = a - b
    n_seeds, n_examples = d.shape
    rng = np.random.default_rng(seed)
    seed_w = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=rounds) / n_seeds  # (R, S)
    example_w = rng.multinomial(n_examples, np.full(n_examples, 1 / n_examples), size=rounds) / n_examples  # (R, N)
    stats = np.einsum("rs,sn,rn->r", seed_w, d, example_w)
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return 100 * float(d.mean()), 100 * float(low), 100 * float(high)


def compare(study: Study, out: Path, seeds: Sequence[int], comparison: Comparison) -> PairedResult | None:
    """One comparison over the seeds where both runs have per-example results (None if there are none)."""
    rows_a, rows_b, used = [], [], []
    for seed in seeds:
        ea = load_examples(run_dir(out, seed, comparison.a), comparison.source, comparison.metric)
        eb = load_examples(run_dir(out, seed, comparison.b), comparison.source, comparison.metric)
        if ea is None or eb is None:
            continue
        if not np.array_equal(ea[0], eb[0]):
            raise StudyError(
                f"seed {seed}: {comparison.a} and {comparison.b} were evaluated on different "
                f"{comparison.source} examples; re-evaluate both with the same eval settings"
            )
        rows_a.append(ea[1])
        rows_b.append(eb[1])
        used.append(seed)
    if not used:
        return None
    if len({len(r) for r in rows_a}) != 1:
        raise StudyError(f"{comparison.source}: seeds were evaluated on test sets of different sizes")
    a, b = np.stack(rows_a), np.stack(rows_b)
    diff, low, high = paired_bootstrap(a, b)
    p = float(a.mean())
    return PairedResult(
        comparison,
        used,
        a.shape[1],
        100 * p,
        100 * float(b.mean()),
        diff,
        low,
        high,
        100 * float(np.sqrt(max(p * (1 - p), 1e-12) / a.shape[1])),
    )


def comparisons_markdown(results: Sequence[PairedResult], labels: dict[str, str]) -> str:
    """The generated comparison table (one line per comparison)."""
    if not results:
        return ""
    lines = [
        "| Claim | A | B | Metric | A (%) | B (%) | A − B (points) [95 % CI] | Seeds | Verdict | Claim (A beats B) |",
        "|---|---|---|---|---:|---:|---|---:|---|---|",
    ]
    for r in results:
        c = r.comparison
        verdict = {f"{c.a} > {c.b}": "A better", f"{c.a} < {c.b}": "B better"}.get(r.verdict, r.verdict)
        lines.append(
            f"| {c.claim or ''} | {labels.get(c.a, c.a)} | {labels.get(c.b, c.b)} | {c.source} {c.metric} "
            f"| {r.a:.1f} | {r.b:.1f} | {r.diff:+.1f} [{r.low:+.1f}, {r.high:+.1f}] | {len(r.seeds)} "
            f"| {verdict} | {r.claim_status} |"
        )
    worst: dict[str, float] = {}  # one line per metric: the largest standard error among the compared runs
    for r in results:
        key = f"{r.comparison.source} {r.comparison.metric}"
        worst[key] = max(worst.get(key, 0.0), r.se_one_run)
    se = [f"{k}: ≤ {v:.1f}" for k, v in sorted(worst.items())]
    n = sorted({f"{r.comparison.source}: {r.examples}" for r in results})
    lines += [
        "",
        f"Paired by seed; 95 % CI from {BOOTSTRAP} bootstrap resamples of seeds and test examples; "
        f"a verdict needs at least {MIN_SEEDS_FOR_VERDICT} paired seeds (with fewer the CI hardly "
        'covers training noise). A claim reads "A beats B": it holds when the CI lies above 0, '
        "is not reproduced at this scale when the CI contains 0, and is reversed when it lies below 0. "
        f"Test examples: {', '.join(n)}. Standard error of one run's accuracy (binomial, points): "
        f"{', '.join(se)}.",
    ]
    return "\n".join(lines) + "\n"


def write_comparisons_csv(results: Sequence[PairedResult], path: Path) -> None:
    rows = ["a,b,source,metric,claim,seeds,examples,a_pct,b_pct,diff,ci_low,ci_high,se_one_run,verdict,claim_status"]
    for r in results:
        c = r.comparison
        claim = (c.claim or "").replace('"', "'")
        rows.append(
            f'{c.a},{c.b},{c.source},{c.metric},"{claim}",{" ".join(map(str, r.seeds))},{r.examples},'
            f"{r.a:.3f},{r.b:.3f},{r.diff:.3f},{r.low:.3f},{r.high:.3f},{r.se_one_run:.3f},{r.verdict},{r.claim_status}"
        )
    write_text(path, "\n".join(rows) + "\n")
