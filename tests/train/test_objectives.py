"""Loss routing: task heads on each modality's pathway, auxiliary heads on the other one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unidual.models import create_model, get_model_def
from unidual.train.objectives import Objective, group_segments

MODS = {"img": "image", "vid": "video"}


def tiny(name: str = "unidual_aux", **kw):
    heads = {"img": 3, "vid": 4}
    extra = {"modalities": MODS} if get_model_def(name).heads_by_modality else {}
    return create_model(name, depth=10, width=0.125, heads=heads, frames=2, **extra, **kw)


def batch(n_img: int = 2, n_vid: int = 2):
    return {
        "img": {"input": torch.randn(n_img, 3, 32, 32), "label": torch.randint(3, (n_img,))},
        "vid": {"input": torch.randn(n_vid, 3, 2, 32, 32), "label": torch.randint(4, (n_vid,))},
    }


def grad_norm(model, word: str) -> float:
    return sum(float(p.grad.abs().sum()) for n, p in model.named_parameters() if word in n and p.grad is not None)


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


def test_each_auxiliary_term_has_its_own_weight():
    model = tiny().eval()
    b = batch()
    ce = lambda o, y: F.cross_entropy(o, y, reduction="sum")  # noqa: E731
    x_img, y_img, x_vid, y_vid = b["img"]["input"], b["img"]["label"], b["vid"]["input"], b["vid"]["label"]
    task = ce(model(x_img)["img"], y_img) + ce(model(x_vid)["vid"], y_vid)
    inflated = ce(model(x_img.unsqueeze(2).expand(-1, -1, 2, -1, -1), pathway="video")["img_aux"], y_img)
    frame = ce(model(x_vid[:, :, 1], pathway="image")["vid_aux"], y_vid)
    out = Objective(MODS, aux=True, aux_weight=2.0, inflated_weight=0.25, frame_weight=0.75, frame="middle")(model, b)
    assert out.loss.item() == pytest.approx(((task + 0.5 * inflated + 1.5 * frame) / 4).item(), rel=1e-5)
    # a zero weight drops the term and its forward pass
    out = Objective(MODS, aux=True, frame_weight=0.0, frame="middle")(model, b)
    assert set(out.count) == {"img", "vid", "img_aux"}
    assert out.loss.item() == pytest.approx(((task + inflated) / 4).item(), rel=1e-5)


def test_terms_normalisation_puts_aux_on_the_scale_of_one_term_per_example():
    model = tiny().eval()
    b = batch()
    by_examples = Objective(MODS, aux=True, frame="middle")(model, b).loss
    by_terms = Objective(MODS, aux=True, frame="middle", normalize="terms")(model, b).loss
    assert by_terms.item() == pytest.approx(by_examples.item() / 2, rel=1e-6)  # 8 terms over 4 examples
    weighted = Objective(MODS, aux=True, frame="middle", normalize="terms", inflated_weight=0.5, frame_weight=0.5)
    plain = Objective(MODS)(model, b).loss  # no aux: both normalisations agree
    assert Objective(MODS, normalize="terms")(model, b).loss.item() == pytest.approx(plain.item(), rel=1e-6)
    assert weighted(model, b).loss.item() > 0
    with pytest.raises(ValueError, match="normalisation"):
        Objective(MODS, normalize="batch")
