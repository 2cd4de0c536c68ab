"""``unidual study``: the paper's comparative study (Table 2) and its several-source variant (Table 3).

A study file lists the runs (training configs, table rows, pretraining links) and the
columns; the runner trains them in dependency order (finetuned rows really finetune the
single-modality runs), evaluates each final model with the evaluator, and writes the
table (Markdown + CSV, median over seeds with min/max), a bar chart and, with ``--doc``,
a generated section of a Markdown file. Interrupted studies resume where they stopped.

Modules: ``config`` (the study file), ``data`` (build / fill the data sources),
``runner`` (plan, train, evaluate, results), ``table``, ``chart``, ``report`` (doc markers),
``calibrate`` (time estimate), ``commands`` (the CLI).
"""

from unidual.study.commands import add_arguments, main

__all__ = ["add_arguments", "main"]
