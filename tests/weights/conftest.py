"""A stand-in for a published R(2+1)D file: benchmarks/reference.py's R2Plus1d18 (torchvision's
``r2plus1d_18`` topology, random weights, non-trivial BN statistics), named torch.hub-style with
its SHA-256 prefix. Nothing is downloaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from helpers.nets import load_reference, randomise_bn

from unidual.weights import WEIGHTS, PublishedWeights

reference = load_reference()


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    net = randomise_bn(reference.R2Plus1d18(num_classes=3)).eval()
    folder = tmp_path_factory.mktemp("server")
    tmp = folder / "r2plus1d_18.pth"
    torch.save(net.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = tmp.rename(folder / f"r2plus1d_18-{digest[:8]}.pth")
    return net, path


@pytest.fixture
def register(monkeypatch):
    """``register(name, url, sha256=None)``: a registry entry for this test only (4-frame clips, head ``moves``)."""

    def add(name: str, url: str, sha256: str | None = None) -> PublishedWeights:
        entry = PublishedWeights(
            name,
            url,
            architecture="R(2+1)D-18 stand-in",
            trained_on="random",
            classes=3,
            head="moves",
            frames=4,
            size=32,
            preprocessing="protocol A",
            licence="test",
            sha256=sha256,
        )
        monkeypatch.setitem(WEIGHTS, name, entry)
        return entry

    return add
