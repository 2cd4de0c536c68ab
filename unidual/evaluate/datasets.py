"""The test datasets a checkpoint is evaluated on: its run's sources, or data the user names.

Used by ``unidual eval`` and by the study, so both evaluate exactly the same examples.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unidual.data import build_dataset
from unidual.data.labelspace import Relabelled, map_classes


def source_specs(
    payload: Mapping[str, Any],
    data: Mapping[str, str | dict[str, Any]] | None = None,
    *,
    clips: int | None = None,
    three_crop: bool = False,
    max_side: int | None = None,
) -> dict[str, dict[str, Any]]:
    """SourceSpec dicts to evaluate: the run's config sources, overridden by ``data`` (key -> root)."""
    known = payload.get("sources", {})
    config = payload.get("config") or {}
    specs = {s["key"]: copy.deepcopy(s) for s in config.get("sources", [])}
    if data:
        chosen = {}
        for key, root in data.items():
            if key not in known:
                raise KeyError(f"--data {key}=...: the checkpoint has no source {key!r} (sources: {sorted(known)})")
            if isinstance(root, dict):  # a whole spec from a sources.yaml
                chosen[key] = copy.deepcopy(root)
                continue
            spec = specs.get(key) or {"key": key, "modality": known[key]["modality"], "format": "folder"}
            spec["root"] = root
            spec["test_root"] = None  # PATH is the test data itself
            if spec["format"] == "folder" and Path(root).is_dir() and not (Path(root) / "test").is_dir():
                spec["test"] = "."  # PATH itself holds the <class>/ folders
            chosen[key] = spec
        specs = chosen
    if not specs:
        raise ValueError("the checkpoint has no config sources; name the test data with --data KEY=PATH")
    rootless = [key for key, spec in specs.items() if not spec.get("root")]
    if rootless:  # converted weights: the checkpoint knows the test recipe, not where the videos are
        raise ValueError(f"the checkpoint names no test data for {rootless}; give it with --data {rootless[0]}=PATH")
    for spec in specs.values():
        if clips is not None:
            spec.setdefault("clip", {})
            spec["clip"] = {**spec["clip"], "num_clips": clips}
        if three_crop:
            spec["transform"] = {**spec.get("transform", {}), "test_crops": 3}
        transform = spec.get("transform", {})
        native = (
            transform.get("protocol") == "custom" and transform.get("resize") is None and transform.get("crop") is None
        )
        if max_side is not None and native and transform.get("max_side") is None:
            spec["transform"] = {**transform, "max_side": max_side}  # bounded work per file
    return specs


def build_test_datasets(payload: Mapping[str, Any], specs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Test split of every spec, labelled with the checkpoint's label map.

    A source trained with ``head: KEY`` is labelled with KEY's classes (mapped by name, its classes
    KEY lacks left out) and scored by KEY's head: :func:`shared_heads`.
    """
    known = payload.get("sources", {})
    out = {}
    for key, spec in specs.items():
        dataset = build_dataset(spec, "test", classes=known.get(key, {}).get("classes"))
        head = known.get(key, {}).get("head")
        if head is not None:
            own, theirs = known[key]["classes"], known[head]["classes"]
            dataset = Relabelled(dataset, map_classes(own, theirs, source=key, head=head, unmatched="drop"))
        out[key] = dataset
    return out


def shared_heads(payload: Mapping[str, Any]) -> dict[str, str]:
    """``{source: head}`` of the checkpoint's sources trained with another source's head."""
    return {k: v["head"] for k, v in payload.get("sources", {}).items() if v.get("head") is not None}
