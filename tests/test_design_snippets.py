"""docs/design.md's "How to add a model, a data format or a regime" snippets run as written.

They register into process-wide tables, so they run in a child process: the model, the format
and the regime are used together for a short training run, a rebuild from the checkpoint and the
regime's refusal, as the section says they can be.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## How to add a model, a data format or a regime"

CHECK = """
import re, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers.tinydata import make_tiny_sources
text = Path({design!r}).read_text()
section = text.split({section!r})[1].split("\\n## ")[0]
blocks = re.findall(r"```python\\n(.*?)```", section, flags=re.S)
assert len(blocks) == 3, len(blocks)
for block in blocks:
    exec(compile(block, "docs/design.md", "exec"))  # exactly as written

root = Path("data")
video = make_tiny_sources(root)[1]
for split in ("train", "test"):
    files = sorted((root / "vid" / split).rglob("*.mp4"))
    (root / "vid" / f"{{split}}.csv").write_text("".join(f"{{f.relative_to(root / 'vid')}},{{f.parent.name}}\\n" for f in files))
source = {{"key": "motion", "modality": "video", "format": "path_label_csv", "root": str(root / "vid"),
          "train": "train.csv", "test": "test.csv", "clip": video["clip"], "transform": video["transform"]}}
raw = {{"regime": "separate", "sources": [source], "model": {{"name": "r2d_lstm", "depth": 10, "width": 0.125}},
       "optim": {{"batch_size": 4}}, "schedule": {{"epochs": 1, "warmup_epochs": 0}},
       "data": {{"epoch_size": 8}}, "run": {{"progress": False, "plots": False, "channels_last": True}}}}
from unidual.checkpoint import load_model
from unidual.train.config import ConfigError, load_config
from unidual.train.trainer import train
result = train(load_config(data=raw), run_dir="run")
assert result.global_step == 2 and "video@1" in result.metrics["motion"], result
rebuilt, _ = load_model("run")
assert rebuilt.spec["name"] == "r2d_lstm" and rebuilt.spec["options"]["lstm_hidden"] == 256
joint = {{**raw, "regime": "multitask_finetune", "model": {{"name": "r2plus1d_multitask", "depth": 10, "width": 0.125}}}}
try:
    load_config(data=joint)
except ConfigError as exc:
    assert "finetune.checkpoint" in str(exc), exc
else:
    raise AssertionError("multitask_finetune without finetune.checkpoint was accepted")
assert load_config(data={{**joint, "finetune": {{"checkpoint": "run/last.pt"}}}}).regime == "multitask_finetune"
print("snippets ok")
"""


@pytest.mark.slow
def test_how_to_add_snippets_run_as_written(tmp_path):
    script = CHECK.format(tests=str(ROOT / "tests"), design=str(ROOT / "docs" / "design.md"), section=SECTION)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "snippets ok" in done.stdout, done.stderr[-3000:]
    assert re.search(r"```python", (ROOT / "docs" / "design.md").read_text())
