"""Find package lines that compare a value with one of a table's names (the tables' guard tests)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import unidual

PACKAGE = Path(unidual.__file__).parent


def lines_comparing(names: Iterable[str], *, outside: str) -> list[str]:
    """``file:line`` of every ``== "name``, ``!= "name``, ``startswith("name`` or ``in ("name`` outside ``outside``."""
    pattern = re.compile(rf'(==|!=|startswith\(|\bin \()\s*\(?"({"|".join(map(re.escape, names))})')  # prefixes too
    return [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in PACKAGE.rglob("*.py")
        if p.name != outside
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
