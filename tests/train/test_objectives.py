"""Loss routing: task heads on each modality's pathway, auxiliary heads on the other one."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unidual.models import create_model
from unidual.train.objectives import Objective, group_segments

MODS = {"img": "image", "vid": "video"}


def tiny(name: str = "unidual_aux", **kw):
    heads = {"img": 3, "vid": 4}
    extra = {"modalities": MODS} if name.startswith("unidual") else {}
    return create_model(name, depth=10, width=0.125, heads=heads, frames=2, **extra, **kw)


def batch(n_img: int = 2, n_vid: int = 2):
    return {
        "img": {"input": torch.randn(n_img, 3, 32, 32), "label": torch.randint(3, (n_img,))},
        "vid": {"input": torch.randn(n_vid, 3, 2, 32, 32), "label": torch.randint(4, (n_vid,))},
    }


def grad_norm(model, word: str) -> float:
    return sum(float(p.grad.abs().sum()) for n, p in model.named_parameters()
               if word in n and p.grad is not None)


def test_both_routing_terms_and_value_match_manual():
    model = tiny().eval()  # eval: BN uses running stats, so separate forwards equal the joint one
    b = batch()
    out = Objective(MODS, aux=True, aux_weight=0.5, routing="both", frame="middle")(model, b)
    assert set(out.count) == {"img", "vid", "img_aux", "vid_aux"} and out.examples == 4
    x_img, y_img = b["img"]["input"], b["img"]["label"]
    x_vid, y_vid = b["vid"]["input"], b["vid"]["label"]
    ce = lambda o, y: F.cross_entropy(o, y, reduction="sum")  # noqa: E731
    expected = (
        ce(model(x_img)["img"], y_img)
        + ce(model(x_vid)["vid"], y_vid)
        + 0.5 * ce(model(x_img.unsqueeze(2).expand(-1, -1, 2, -1, -1), pathway="video")["img_aux"], y_img)
        + 0.5 * ce(model(x_vid[:, :, 1], pathway="image")["vid_aux"], y_vid)
    ) / 4
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_aux_losses_train_the_other_pathway():
    # Only images in the batch: without aux the video point-wise convs get no gradient; with aux they do.
    only_images = {"img": batch()["img"]}
    plain = tiny("unidual")
    Objective(MODS)(plain, only_images).loss.backward()
    assert grad_norm(plain, "pointwise.video") == 0 and grad_norm(plain, "pointwise.image") > 0
    aux = tiny()
    Objective(MODS, aux=True)(aux, only_images).loss.backward()
    assert grad_norm(aux, "pointwise.video") > 0 and grad_norm(aux, "heads.img_aux") > 0


@pytest.mark.parametrize("p, terms", [(0.0, {"img", "vid"}), (1.0, {"img_aux", "vid_aux"})])
def test_random_routing_extremes(p, terms):
    out = Objective(MODS, aux=True, routing="random", p=p)(tiny(), batch(), torch.Generator().manual_seed(0))
    assert set(out.count) == terms and sum(out.count.values()) == 4


def test_random_routing_sends_each_example_once_and_is_seeded():
    obj = Objective(MODS, aux=True, routing="random", p=0.5)
    model, b = tiny(), batch(8, 8)
    a = obj.segments(model, b, torch.Generator().manual_seed(3))
    c = obj.segments(model, b, torch.Generator().manual_seed(3))
    assert sum(len(s.label) for s in a) == 16
    assert [(s.term, len(s.label)) for s in a] == [(s.term, len(s.label)) for s in c]


def test_multitask_inflates_images_into_one_forward():
    model = tiny("r2plus1d_multitask")
    obj = Objective(MODS)
    groups = group_segments(obj.segments(model, batch()))
    assert len(groups) == 1 and all(s.input.shape[1:] == (3, 2, 32, 32) for s in groups[0])
    out = obj(model, batch())
    assert set(out.count) == {"img", "vid"} and torch.isfinite(out.loss)


def test_unidual_aux_uses_one_forward_per_pathway():
    obj = Objective(MODS, aux=True)
    groups = group_segments(obj.segments(tiny(), batch()))
    assert sorted(g[0].pathway for g in groups) == ["image", "video"]


def test_empty_batch_is_an_error():
    b = {"img": {"input": torch.zeros(0, 3, 32, 32), "label": torch.zeros(0, dtype=torch.long)}}
    with pytest.raises(ValueError, match="empty batch"):
        Objective(MODS, aux=True)(tiny(), b)
