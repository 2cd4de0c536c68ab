"""Two study sessions on disjoint seeds of one ``--out`` write the same tables side by side."""

from __future__ import annotations

import subprocess
import sys

from unidual.study.atomic import replacing


def test_a_second_process_writing_the_same_table_does_not_take_our_temporary_file(tmp_path):
    """Two sessions (seeds 0-2 and 3-4 of docs/results.md's studies) once shared the temporary name
    ``.table.tmp.csv``: the second renamed the first's half-written file, whose rename then failed
    ("No such file or directory") and ended that session before its remaining seeds."""
    table = tmp_path / "table.csv"
    with replacing(table) as ours:
        assert ours.suffix == ".csv" and ours.parent == tmp_path and ours.name.startswith(".")
        ours.write_text("ours,half")
        other = "from pathlib import Path; from unidual.study.atomic import write_text; import sys; "
        other += "write_text(Path(sys.argv[1]), 'theirs')"
        subprocess.run([sys.executable, "-c", other, str(table)], check=True)
        assert table.read_text() == "theirs" and ours.read_text() == "ours,half"
        ours.write_text("ours,whole")
    assert table.read_text() == "ours,whole"  # the later writer wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]  # no temporary file left
