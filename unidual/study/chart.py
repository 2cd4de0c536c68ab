"""Bar chart of a study table: one panel per column group's headline metric, whiskers = min/max over seeds."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from unidual.study.atomic import replacing
from unidual.study.table import Table

HEADLINE = ("video@1", "top1")  # what each source is ranked by (the evaluator's primary metrics)


def headline_columns(table: Table) -> list[int]:
    """Index of one column per source: its video@1 / top-1 if shown, else its first metric."""
    chosen: dict[str, int] = {}
    for i, (source, metric) in enumerate(table.columns):
        if source not in chosen or (metric in HEADLINE and table.columns[chosen[source]][1] not in HEADLINE):
            chosen[source] = i
    return sorted(chosen.values())


def plot_table(table: Table, path: Path, title: str = "") -> Path:
    cols = headline_columns(table)
    names = [r.name for r in table.rows]
    fig = Figure(figsize=(4.2 * len(cols), 0.45 * len(names) + 1.6))
    axes = fig.subplots(1, len(cols), squeeze=False)
    for ax, j in zip(axes[0], cols):
        ys, values, low, high, labels = [], [], [], [], []
        for y, row in enumerate(table.rows):
            cell = row.cells[j]
            if cell is None or cell.n == 0:
                continue
            ys.append(y)
            values.append(cell.median)
            low.append(cell.median - cell.min)
            high.append(cell.max - cell.median)
            labels.append(f"{cell.median:.1f}")
        bars = ax.barh(ys, values, xerr=[low, high], color="#4c72b0", ecolor="black", capsize=3)
        ax.bar_label(bars, labels=labels, padding=4, fontsize=8)
        if table.chance[j] is not None:
            ax.axvline(table.chance[j], color="grey", linestyle="--", linewidth=1, label="chance")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [""] * len(names))
        ax.invert_yaxis()
        ax.set_xlabel(table.headers[j])
        ax.set_xlim(0, max([*values, table.chance[j] or 0, 1]) * 1.18)
        for y, row in enumerate(table.rows):
            cell = row.cells[j]
            if cell is None or cell.n == 0:
                ax.text(0.5, y, "N/A" if cell is None else "pending", va="center", fontsize=8, color="grey")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path
