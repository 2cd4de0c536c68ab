"""Classification heads: one linear layer per source key, each attached to one pathway."""
from __future__ import annotations

from torch import Tensor, nn

AUX_SUFFIX = "_aux"


def aux_name(key: str) -> str:
    """Name of the auxiliary head of source ``key`` (the head on the other pathway)."""
    return f"{key}{AUX_SUFFIX}"


class Heads(nn.ModuleDict):
    """``name -> nn.Linear``; ``pathway_of[name]`` says which pathway's features it reads.

    State-dict keys are ``heads.<name>.weight`` / ``.bias``.
    """

    def __init__(self, in_features: int, classes: dict[str, int], pathway_of: dict[str, str]) -> None:
        super().__init__({name: nn.Linear(in_features, n) for name, n in classes.items()})
        self.pathway_of = dict(pathway_of)
        for fc in self.values():
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, features: Tensor, pathway: str) -> dict[str, Tensor]:  # type: ignore[override]
        return {name: fc(features) for name, fc in self.items() if self.pathway_of[name] == pathway}

    def on(self, pathway: str) -> list[str]:
        return [name for name in self.keys() if self.pathway_of[name] == pathway]

    def remove(self, name: str) -> None:
        del self[name]
        del self.pathway_of[name]
