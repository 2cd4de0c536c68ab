"""The generated section of a Markdown file: only the text between the study's markers changes."""

from __future__ import annotations

import pytest

from unidual.study.config import StudyError
from unidual.study.report import markers, section, training_machines, update_markdown


def test_update_replaces_only_between_markers(tmp_path):
    begin, end = markers("cifar_motion")
    other_begin, other_end = markers("three_source")
    doc = tmp_path / "results.md"
    doc.write_text(
        f"# Results\n\nintro\n\n{begin}\nold table\n{end}\n\n## Reading\nmine\n\n"
        f"{other_begin}\nother study\n{other_end}\n"
    )
    update_markdown(doc, "cifar_motion", "| new | table |\n")
    text = doc.read_text()
    assert f"{begin}\n| new | table |\n{end}" in text
    assert "old table" not in text
    assert text.startswith("# Results\n\nintro\n\n") and "## Reading\nmine\n" in text
    assert f"{other_begin}\nother study\n{other_end}" in text  # another study's section untouched
    update_markdown(doc, "cifar_motion", "second\n")
    assert doc.read_text().count(begin) == 1 and "second" in doc.read_text()


def test_update_appends_or_creates(tmp_path):
    doc = tmp_path / "new.md"
    update_markdown(doc, "x", "body")
    assert doc.read_text() == "<!-- study:x:begin -->\nbody\n<!-- study:x:end -->\n"
    doc.write_text("# Existing\n")
    update_markdown(doc, "x", "body")
    assert doc.read_text().startswith("# Existing\n\n<!-- study:x:begin -->")


def test_half_a_marker_pair_is_an_error(tmp_path):
    doc = tmp_path / "broken.md"
    doc.write_text("<!-- study:x:begin -->\nno end\n")
    with pytest.raises(StudyError, match="broken.md"):
        update_markdown(doc, "x", "body")
    assert doc.read_text() == "<!-- study:x:begin -->\nno end\n"  # left as it was


def test_section_names_command_machine_config_and_time():
    summary = {
        "title": "T",
        "seeds": [0, 1, 2],
        "command": "unidual study c.yaml --doc d.md",
        "config": "c.yaml",
        "machine": {"cpu": "Some CPU", "cores": 2, "torch": "2.13.0", "threads": 2},
        "run_seconds": 2700.0,
        "invocation_seconds": 600.0,
        "runs_done": 27,
        "out": "runs/study",
        "data_seconds": 30.0,
        "missing": [],
    }
    text = section(summary, "| a |\n")
    for part in (
        "`unidual study c.yaml --doc d.md`",
        "`c.yaml`",
        "Some CPU, 2 cores, torch 2.13.0",
        "45.0 min",
        "27 training",
        "| a |",
        "min–max",
    ):
        assert part in text


def test_section_names_the_machines_the_runs_trained_on():
    """The runs' own thread count (one each, two side by side), not the reporting process's."""
    one = {"cpu": "Some CPU", "cores": 2, "torch": "2.13.0", "threads": 1}
    other = {**one, "cpu": "Other CPU"}
    results = [{"train_machines": [one]}, {"train_machines": [one]}, {"train_machines": [one, other]}, {}]
    counts = training_machines(results)
    assert counts == {
        "Some CPU, 2 cores, torch 2.13.0 (1 thread)": 2,
        "Some CPU, 2 cores, torch 2.13.0 (1 thread) + Other CPU, 2 cores, torch 2.13.0 (1 thread)": 1,
        "not recorded": 1,
    }
    summary = {
        "title": "T",
        "seeds": [0],
        "command": "c",
        "config": "c.yaml",
        "machine": {**one, "threads": 2},
        "training_machines": counts,
        "run_seconds": 60.0,
        "invocation_seconds": 60.0,
        "runs_done": 4,
        "out": "o",
        "missing": [],
    }
    text = section(summary, "| a |\n")
    assert "- Machine: Some CPU, 2 cores, torch 2.13.0 (2 threads) (this report)" in text
    assert "- Runs trained on: Some CPU, 2 cores, torch 2.13.0 (1 thread) (2 runs); " in text
    assert "; not recorded (1 run)" in text
