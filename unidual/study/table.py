"""Table 2 / Table 3 from per-run results: median over seeds with min/max, N/A where a row has no such output.

A *result* is the final metrics record of one run (see ``runner.RESULT_FILE``)::

    {"id", "row", "group", "seed", "report": [source keys], "metrics": {key: {metric: %}},
     "classes": {key: number of classes}}

A cell (row, source, metric) collects that metric from every run of the row that
reports the source, over all seeds. No such run -> N/A (Table 2's layout: R2D has no
video column, R(2+1)D no image column).
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unidual.study.atomic import replacing
from unidual.study.config import DEFAULT_METRICS, Study

METRIC_LABEL = {
    "clip@1": "clip@1",
    "video@1": "video@1",
    "video@5": "video@5",
    "top1": "top-1",
    "top5": "top-5",
    "mean_class@1": "mean class@1",
}
NA = "N/A"


@dataclass(frozen=True)
class Stat:
    """Median over seeds and the spread around it."""

    median: float
    min: float
    max: float
    n: int

    def text(self) -> str:
        """``61.2`` for one value, ``61.2 (59.8–62.0)`` for several (the paper's median-of-runs)."""
        if self.n == 0:
            return "pending"
        if self.n == 1:
            return f"{self.median:.1f}"
        return f"{self.median:.1f} ({self.min:.1f}–{self.max:.1f})"


def summarize(values: Sequence[float]) -> Stat:
    if not values:
        raise ValueError("summarize: no values")
    return Stat(float(statistics.median(values)), float(min(values)), float(max(values)), len(values))


PENDING = Stat(float("nan"), float("nan"), float("nan"), 0)  # the row reports it, no run has finished yet


@dataclass
class Row:
    name: str
    group: str | None
    cells: list[Stat | None]  # one per column; None = N/A, PENDING = not measured yet


@dataclass
class Table:
    columns: list[tuple[str, str]]  # (source key, metric)
    headers: list[str]
    rows: list[Row]
    chance: list[float | None]
    has_groups: bool


def column_metrics(study: Study, modalities: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(source, metric, header) for every table column."""
    out = []
    for col in study.columns:
        modality = modalities.get(col.source)
        if modality is None:
            raise ValueError(
                f"{study.path}: column source {col.source!r} is not a source of any model "
                f"(sources: {sorted(modalities)})"
            )
        for metric in col.metrics or DEFAULT_METRICS[modality]:
            out.append((col.source, metric, f"{col.title} {METRIC_LABEL.get(metric, metric)} (%)"))
    return out


def chance_level(metric: str, classes: int) -> float:
    k = 5 if metric.endswith("5") else 1
    return min(100.0, 100.0 * k / classes)


def build_table(
    study: Study,
    results: Sequence[Mapping[str, Any]],
    modalities: Mapping[str, str],
    expected: Mapping[str, set[str]] | None = None,
) -> Table:
    """``expected``: row -> sources its runs report; such a cell without results yet is *pending*, not N/A."""
    cols = column_metrics(study, modalities)
    rows: list[Row] = []
    order: list[str] = []
    groups: dict[str, str | None] = {}
    for m in study.models:
        if m.row not in order:
            order.append(m.row)
            groups[m.row] = m.group
        elif groups[m.row] is None:
            groups[m.row] = m.group
    classes: dict[str, int] = {}
    for r in results:
        classes.update(r.get("classes", {}))
    for name in order:
        cells: list[Stat | None] = []
        for source, metric, _ in cols:
            values = [
                float(r["metrics"][source][metric])
                for r in results
                if r["row"] == name and source in r["report"] and metric in r["metrics"].get(source, {})
            ]
            cells.append(
                summarize(values)
                if values
                else PENDING
                if expected is not None and source in expected.get(name, ())
                else None
            )
        rows.append(Row(name, groups[name], cells))
    chance = [chance_level(metric, classes[source]) if source in classes else None for source, metric, _ in cols]
    return Table(
        columns=[(s, m) for s, m, _ in cols],
        headers=[h for _, _, h in cols],
        rows=rows,
        chance=chance,
        has_groups=any(m.group for m in study.models),
    )


def to_markdown(table: Table, *, chance_row: bool = True) -> str:
    lead = (["Use of other modality"] if table.has_groups else []) + ["Model"]
    lines = ["| " + " | ".join(lead + table.headers) + " |", "|" + "---|" * len(lead) + "---:|" * len(table.headers)]
    previous = object()
    for row in table.rows:
        first = []
        if table.has_groups:
            first = [(row.group or "") if row.group != previous else ""]
            previous = row.group
        cells = [c.text() if c is not None else NA for c in row.cells]
        lines.append("| " + " | ".join(first + [row.name] + cells) + " |")
    if chance_row and any(c is not None for c in table.chance):
        first = [""] if table.has_groups else []
        cells = [f"{c:.1f}" if c is not None else "" for c in table.chance]
        lines.append("| " + " | ".join(first + ["*chance*"] + cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(table: Table, path: Path) -> None:
    """One line per row; per column ``median``, ``min``, ``max``, ``n`` (empty with n = 0: N/A or pending)."""
    header = ["group", "model"]
    for source, metric in table.columns:
        header += [f"{source} {metric} {part}" for part in ("median", "min", "max", "n")]
    with replacing(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in table.rows:
            line: list[Any] = [row.group or "", row.name]
            for c in row.cells:
                line += (
                    ["", "", "", 0]
                    if c is None or c.n == 0
                    else [f"{c.median:.2f}", f"{c.min:.2f}", f"{c.max:.2f}", c.n]
                )
            w.writerow(line)
        chance: list[Any] = ["", "chance"]
        for level in table.chance:
            chance += ["" if level is None else f"{level:.2f}", "", "", ""]
        w.writerow(chance)


def write_runs_csv(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Every measured metric of every run and seed (long format), including sources the table leaves N/A."""
    with replacing(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "id", "row", "source", "metric", "value", "train_seconds", "eval_seconds"])
        for r in sorted(results, key=lambda r: (r["seed"], r["id"])):
            for source, values in r["metrics"].items():
                for metric, value in values.items():
                    w.writerow(
                        [
                            r["seed"],
                            r["id"],
                            r["row"],
                            source,
                            metric,
                            f"{value:.4f}",
                            f"{r.get('train_seconds', 0):.1f}",
                            f"{r.get('eval_seconds', 0):.1f}",
                        ]
                    )
