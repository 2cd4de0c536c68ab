"""The command dispatcher: help, unknown commands, options mixed with overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from unidual.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_options_may_follow_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    """``train CONFIG a=1 --check b=2``: both overrides apply, --check is seen."""
    code = main(["train", str(ROOT / "configs/cpu/demo.yaml"), "optim.lr=0.5", "--check", "schedule.epochs=2"])
    assert code == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["optim"]["lr"] == 0.5
    assert resolved["schedule"]["epochs"] == 2


def test_commands_with_actions_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "--help"])
    assert exc.value.code == 0
    assert "check" in capsys.readouterr().out
