"""run.channels_last: auto -- the layout measured once per machine, cached, overridable (models/channels_last.py)."""

from __future__ import annotations

import json

import pytest
import torch

from unidual.machine import cpu_model
from unidual.models import channels_last as CL
from unidual.models.memory import ENV_SWITCH


class StubTimer:
    """Seconds per layout, and how often each was timed."""

    def __init__(self, channels_last: float, contiguous: float) -> None:
        self.seconds = {True: channels_last, False: contiguous}
        self.calls = 0

    def __call__(self, channels_last: bool, device: torch.device) -> float:
        self.calls += 1
        return self.seconds[channels_last]


def _never(channels_last: bool, device: torch.device) -> float:
    raise AssertionError("measured although the answer was known")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(ENV_SWITCH, raising=False)


@pytest.mark.parametrize(
    "cl_s, contig_s, expected",
    [(0.8, 1.0, True), (1.0, 0.8, False), (1.02, 1.0, True), (1.05, 1.0, False)],  # within 3 %: the default
)
def test_auto_measures_picks_the_faster_layout_and_caches_it(tmp_path, cl_s, contig_s, expected):
    cache = tmp_path / "memory_format.json"
    timer = StubTimer(cl_s, contig_s)
    choice = CL.choose_channels_last("auto", "cpu", cache=cache, timer=timer)
    assert (choice.channels_last, choice.source) == (expected, "measured")
    assert timer.calls == 4  # both layouts, alternately, twice
    assert choice.seconds == {"channels_last": cl_s, "contiguous": contig_s}
    entry = json.loads(cache.read_text())[CL.cache_key(torch.device("cpu"))]
    assert entry["channels_last"] is expected
    again = CL.choose_channels_last("auto", "cpu", cache=cache, timer=_never)  # a hit: no measurement
    assert (again.channels_last, again.source) == (expected, "cache")


def test_the_key_holds_cpu_torch_version_and_threads(tmp_path, monkeypatch):
    cache = tmp_path / "c.json"
    CL.choose_channels_last("auto", "cpu", cache=cache, timer=StubTimer(1.0, 2.0))
    key = CL.cache_key(torch.device("cpu"))
    assert cpu_model() in key and torch.__version__ in key and f"{torch.get_num_threads()} threads" in key
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another torch: a miss, measured and added
    timer = StubTimer(2.0, 1.0)
    assert CL.choose_channels_last("auto", "cpu", cache=cache, timer=timer).source == "measured"
    assert timer.calls and len(json.loads(cache.read_text())) == 2


def test_true_false_and_the_environment_override_without_measuring(tmp_path, monkeypatch):
    cache = tmp_path / "c.json"
    assert CL.choose_channels_last(True, cache=cache, timer=_never).channels_last is True
    assert CL.choose_channels_last(False, cache=cache, timer=_never).source == "config"
    monkeypatch.setenv(ENV_SWITCH, "0")
    choice = CL.choose_channels_last("auto", cache=cache, timer=_never)
    assert (choice.channels_last, choice.source) == (False, "environment")
    assert not cache.exists()
    with pytest.raises(ValueError, match="run.channels_last"):
        CL.choose_channels_last("sometimes", cache=cache)


def test_unreadable_cache_is_measured_again_and_a_failed_measurement_keeps_the_default(tmp_path, capsys):
    cache = tmp_path / "c.json"
    cache.write_text("{not json")
    assert CL.choose_channels_last("auto", cache=cache, timer=StubTimer(2.0, 1.0)).source == "measured"
    assert json.loads(cache.read_text())  # rewritten

    def broken(channels_last: bool, device: torch.device) -> float:
        raise RuntimeError("out of memory")

    choice = CL.choose_channels_last("auto", cache=tmp_path / "other.json", timer=broken)
    assert (choice.channels_last, choice.source) == (True, "default")
    assert "measurement failed" in capsys.readouterr().err


def test_the_real_timer_runs_a_step_in_each_layout(monkeypatch):
    monkeypatch.setattr(CL, "PROBE", CL.Probe(width=0.125, frames=2, size=16))
    before = torch.get_rng_state()
    seconds = CL.measure(torch.device("cpu"), repeats=1)
    assert set(seconds) == {"channels_last", "contiguous"} and all(0 < s < 60 for s in seconds.values())
    assert torch.equal(torch.get_rng_state(), before)  # a seeded run's initial weights do not move
