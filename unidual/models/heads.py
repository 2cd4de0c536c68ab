"""Classification heads: one linear layer per source key, each attached to one pathway."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from unidual.pathways import aux_name, other_pathway


def head_layout(
    pathways: Sequence[str], heads: dict[str, int], modalities: dict[str, str] | None, aux: bool
) -> tuple[dict[str, int], dict[str, str]]:
    """``(classes, pathway_of)`` of every head: where each source's head (and auxiliary head) lives.

    A one-pathway model puts every head on it; a two-pathway model puts head ``k`` on its
    source's modality and, with ``aux``, head ``k_aux`` on the other pathway.
    """
    if len(pathways) == 1:
        return dict(heads), {k: pathways[0] for k in heads}
    assert modalities is not None
    classes, where = dict(heads), dict(modalities)
    if aux:
        for key, n in heads.items():
            classes[aux_name(key)] = n
            where[aux_name(key)] = other_pathway(modalities[key])
    return classes, where


class Heads(nn.ModuleDict):
    """``name -> nn.Linear``; ``pathway_of[name]`` says which pathway's features it reads.

    State-dict keys are ``heads.<name>.weight`` / ``.bias``.
    """

    def __init__(self, in_features: int, classes: dict[str, int], pathway_of: dict[str, str]) -> None:
        linears = {name: nn.Linear(in_features, n) for name, n in classes.items()}
        super().__init__(linears)
        self.pathway_of = dict(pathway_of)
        for fc in linears.values():
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, features: Tensor, pathway: str, names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Logits of every head on ``pathway``; or, with ``names``, of exactly those heads, wherever they live
        (a shared label space feeds one pathway's features into a head of the other pathway)."""
        if names is not None:
            return {name: self[name](features) for name in names}
        return {name: fc(features) for name, fc in self.items() if self.pathway_of[name] == pathway}

    def on(self, pathway: str) -> list[str]:
        return [name for name in self.keys() if self.pathway_of[name] == pathway]

    def remove(self, name: str) -> None:
        del self[name]
        del self.pathway_of[name]
