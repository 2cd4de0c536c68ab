"""``unidual study``: the paper's comparative study (Table 2) and its several-source variant (Table 3).

A study file lists the runs (models of the model table trained with the study's recipe, or
training configs; table rows, pretraining links) and the columns; the runner trains them in dependency order (finetuned rows really finetune the
single-modality runs), evaluates each final model with the evaluator, and writes the
table (Markdown + CSV, median over seeds with min/max), a bar chart and, with ``--doc``,
a generated section of a Markdown file. Interrupted studies resume where they stopped.

Modules: ``config`` (the study file), ``rows`` (a row's training config from the recipe and the
model and regime tables), ``data`` (build / fill the data sources), ``runner`` (plan, train,
evaluate, results), ``table``, ``chart``, ``compare``, ``report`` (doc markers), ``atomic`` (files
replaced whole), ``calibrate`` (time estimate), ``parts``, ``commands`` (the CLI).
"""

from unidual.study.commands import add_arguments, main

__all__ = ["add_arguments", "main"]
