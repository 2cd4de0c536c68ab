"""The recipe in the objective: label smoothing, soft (mixed) targets, per-source loss weights, shared heads."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unidual.models import create_model
from unidual.train.objectives import Objective

MODS = {"img": "image", "vid": "video"}


def unidual(name: str = "unidual_aux", heads: dict | None = None, modalities: dict | None = None):
    heads = heads or {"img": 3, "vid": 4}
    mods = modalities or {k: MODS[k] for k in heads}
    return create_model(name, depth=10, width=0.125, heads=heads, frames=2, modalities=mods)


def batch(n_img: int = 3, n_vid: int = 3, img_classes: int = 3):
    return {
        "img": {"input": torch.randn(n_img, 3, 32, 32), "label": torch.randint(img_classes, (n_img,))},
        "vid": {"input": torch.randn(n_vid, 3, 2, 32, 32), "label": torch.randint(4, (n_vid,))},
    }


def soft(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """A soft target per row (as mixup makes): 0.7 on the label, 0.3 on the next class."""
    return 0.7 * F.one_hot(labels, classes).float() + 0.3 * F.one_hot((labels + 1) % classes, classes).float()


def test_label_smoothing_changes_a_confident_correct_loss_by_the_closed_form():
    # logits [L, 0, ..., 0] for label 0: CE = log(1 + (C-1)e^-L); smoothing eps adds exactly eps (C-1) L / C
    classes, big, eps = 5, 10.0, 0.1
    model = create_model("r2d", depth=10, width=0.125, heads={"img": classes}).eval()
    with torch.no_grad():
        model.heads["img"].weight.zero_()
        model.heads["img"].bias.copy_(torch.tensor([big] + [0.0] * (classes - 1)))
    part = {"img": {"input": torch.randn(4, 3, 32, 32), "label": torch.zeros(4, dtype=torch.long)}}
    plain = Objective({"img": "image"})(model, part).loss.item()
    smoothed = Objective({"img": "image"}, label_smoothing=eps)(model, part).loss.item()
    assert plain == pytest.approx(math.log(1 + (classes - 1) * math.exp(-big)), abs=1e-6)
    assert smoothed - plain == pytest.approx(eps * (classes - 1) * big / classes, rel=1e-5)


def test_label_smoothing_reaches_the_auxiliary_terms():
    model = unidual().eval()
    b = batch()
    out = {
        t: Objective(MODS, aux=True, frame="middle", label_smoothing=eps)(model, b)
        for t, eps in (("0", 0.0), ("s", 0.2))
    }
    for term in ("img", "vid", "img_aux", "vid_aux"):
        assert float(out["s"].loss_sum[term]) != pytest.approx(float(out["0"].loss_sum[term]), rel=1e-4), term


def test_soft_targets_feed_every_term_of_their_examples():
    model = unidual().eval()  # eval: separate forwards equal the joint one
    b = batch()
    targets = {"img": soft(b["img"]["label"], 3), "vid": soft(b["vid"]["label"], 4)}
    mixed = {k: {**v, "target": targets[k]} for k, v in b.items()}
    out = Objective(MODS, aux=True, frame="middle", label_smoothing=0.1)(model, mixed)

    def ce(logits, target):
        return F.cross_entropy(logits, target, reduction="sum", label_smoothing=0.1)

    x_img, x_vid = b["img"]["input"], b["vid"]["input"]
    expected = (
        ce(model(x_img)["img"], targets["img"])
        + ce(model(x_vid)["vid"], targets["vid"])
        + ce(model(x_img.unsqueeze(2).expand(-1, -1, 2, -1, -1), pathway="video")["img_aux"], targets["img"])
        + ce(model(x_vid[:, :, 1], pathway="image")["vid_aux"], targets["vid"])  # the clip's target for its frame
    ) / 6
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.count == {"img": 3, "vid": 3, "img_aux": 3, "vid_aux": 3}


def test_accuracy_with_soft_targets_counts_the_dominant_class():
    model = unidual("unidual").eval()
    b = batch()
    logits = model(b["img"]["input"])["img"]
    target = soft(logits.argmax(1), 3)  # dominant class = the prediction: every example a hit
    out = Objective(MODS)(model, {"img": {**b["img"], "target": target}})
    assert out.correct["img"] == 3
    wrong = soft((logits.argmax(1) + 1) % 3, 3)
    assert Objective(MODS)(model, {"img": {**b["img"], "target": wrong}}).correct["img"] == 0


def test_loss_weight_scales_every_term_of_its_source():
    model = unidual().eval()
    b = batch()
    plain = Objective(MODS, aux=True, frame="middle")(model, b)
    weighted = Objective(MODS, aux=True, frame="middle", loss_weights={"img": 3.0})(model, b)
    s = {k: float(v) for k, v in plain.loss_sum.items()}
    expected = (3 * (s["img"] + s["img_aux"]) + s["vid"] + s["vid_aux"]) / 6
    assert weighted.loss.item() == pytest.approx(expected, rel=1e-5)
    assert {k: float(v) for k, v in weighted.loss_sum.items()} == pytest.approx(s)  # the statistics stay unweighted
    with pytest.raises(ValueError, match="unknown sources"):
        Objective(MODS, loss_weights={"nope": 1.0})


@pytest.mark.parametrize("name", ["unidual", "unidual_aux", "r2plus1d_multitask"])
def test_a_shared_head_receives_gradients_from_both_sources(name):
    # only the video source has a head; the image source's examples (labels in its 4 classes) train it
    model = unidual(name, heads={"vid": 4}, modalities={"vid": "video"})
    obj = Objective(MODS, aux=name == "unidual_aux", heads={"img": "vid"})
    b = batch(img_classes=4)
    for source in ("img", "vid"):
        model.zero_grad(set_to_none=True)
        out = obj(model, {source: b[source]})
        out.loss.backward()
        grad = model.heads["vid"].weight.grad
        assert grad is not None and grad.abs().sum() > 0, source
    if name == "unidual_aux":
        model.zero_grad(set_to_none=True)
        out = obj(model, {"img": b["img"]})
        out.loss.backward()
        assert set(out.count) == {"img", "img_aux"}  # task (image pathway) and inflated (video pathway) terms
        assert model.heads["vid_aux"].weight.grad is None  # both went to the video head itself


def test_a_shared_head_runs_the_image_pathway_into_the_video_head():
    model = unidual("unidual", heads={"vid": 4}, modalities={"vid": "video"}).eval()
    b = batch(img_classes=4)
    out = Objective(MODS, heads={"img": "vid"})(model, {"img": b["img"]})
    features = model.forward_features(b["img"]["input"], "image")  # the image pathway
    expected = F.cross_entropy(model.heads["vid"](features), b["img"]["label"], reduction="sum") / 3
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
