"""The command dispatcher: help, unknown commands, options mixed with overrides."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import yaml

from unidual import cli
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


def test_a_ctrl_c_swallowed_by_a_finalizer_still_ends_in_the_interrupted_line(monkeypatch, capsys):
    """A Ctrl-C landing in a worker pool's cleanup (a finalizer) was swallowed by Python: an "Exception
    ignored" traceback on stderr and exit 0 (seen in ``data prepare --workers 2`` near its end)."""

    class Finalized:
        def __del__(self) -> None:  # the SIGINT handler runs here, as it did in the pool's finalizer
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)

    def command(args) -> int:
        Finalized()  # dropped at once: __del__ raises KeyboardInterrupt, which Python only reports
        return 0

    monkeypatch.setattr(cli, "_entry", lambda name, what: (lambda parser: None) if what == "arguments" else command)
    previous_hook, previous_handler = sys.unraisablehook, signal.getsignal(signal.SIGINT)
    assert cli.main(["info"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "unidual info: interrupted" and "Exception ignored" not in err
    assert sys.unraisablehook is previous_hook and signal.getsignal(signal.SIGINT) is previous_handler
