"""The README's promises: its Python example runs, its commands exist, CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_examples_run() -> None:
    blocks = _blocks("python")
    assert blocks, "README has no Python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_setup_commands_are_make_targets_and_ci_runs_the_test_one() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    commands = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    make = [c for c in commands if c.startswith("make ")]
    assert {"make demo", "make test"} <= set(make)
    assert {c.split()[1] for c in make} <= targets
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_commands_in_readme_exist() -> None:
    from unidual.cli import COMMANDS

    used = {c.split()[1] for block in _blocks("bash") for c in block.splitlines() if c.startswith("unidual ")}
    assert used, "README shows no unidual command"
    assert used <= set(COMMANDS), used - set(COMMANDS)
