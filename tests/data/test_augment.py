"""Clip-consistent augmentation on uint8 frames: RandAugment, colour jitter, random-resized crop."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from unidual.data.augment import OPS, Op, apply_ops, draw_randaugment
from unidual.data.transforms import Plan, apply_plan, resized_crop_box


def image(seed: int = 0, h: int = 40, w: int = 50) -> np.ndarray:
    """Gradients plus noise: every grey level, structure for the geometric ops."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 5) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], -1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


def ours(img: np.ndarray, op: Op) -> np.ndarray:
    return apply_ops(img[None], [op])[0].astype(int)


def as_int(pil: Image.Image) -> np.ndarray:
    return np.asarray(pil).astype(int)


@pytest.mark.parametrize(
    "op, reference",
    [
        (Op("Invert"), ImageOps.invert),
        (Op("Posterize", 2), lambda p: ImageOps.posterize(p, 2)),
        (Op("Posterize", 0), lambda p: Image.new("RGB", p.size)),  # m=10 keeps 0 bits (old PIL: black)
        (Op("Solarize", 100), lambda p: ImageOps.solarize(p, 100)),
        (Op("Equalize"), ImageOps.equalize),
        (Op("ShearX", 0.3), lambda p: p.transform(p.size, Image.AFFINE, (1, 0.3, 0, 0, 1, 0), fillcolor=(128,) * 3)),
        (Op("ShearY", -0.2), lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 0, -0.2, 1, 0), fillcolor=(128,) * 3)),
        (Op("TranslateX", 0.2), lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 10, 0, 1, 0), fillcolor=(128,) * 3)),
        (
            Op("TranslateY", -0.25),
            lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 0, 0, 1, -10), fillcolor=(128,) * 3),
        ),
    ],
)
def test_ops_on_one_image_equal_pils(op, reference):
    img = image()
    assert np.array_equal(ours(img, op), as_int(reference(Image.fromarray(img))))


@pytest.mark.parametrize("name", ["Brightness", "Color", "Contrast", "Sharpness"])
@pytest.mark.parametrize("factor", [0.3, 1.7])
def test_enhance_ops_match_pil_within_one_grey_level(name, factor):
    img = image(1)
    reference = getattr(ImageEnhance, name)(Image.fromarray(img)).enhance(factor)
    assert np.abs(ours(img, Op(name, factor)) - as_int(reference)).max() <= 1


def test_autocontrast_and_rotate_match_pil():
    img = image(2)
    pil = Image.fromarray(img)
    assert np.abs(ours(img, Op("AutoContrast")) - as_int(ImageOps.autocontrast(pil))).max() <= 1
    rotated = ours(img, Op("Rotate", 20.0)) != as_int(pil.rotate(20, fillcolor=(128,) * 3))
    assert rotated.any(-1).mean() < 0.01  # nearest neighbour: a few pixels on rounding boundaries differ


def test_randaugment_ops_are_drawn_once_per_clip_and_applied_to_every_frame():
    frame = image(3, 24, 24)[None]
    clip = np.repeat(frame, 4, axis=0)  # identical frames must stay identical
    plan = Plan(resize=None, flip=True, randaugment=(3, 9), color_jitter=0.4)
    changed = 0
    for seed in range(30):
        (v,) = apply_plan(clip, plan, random.Random(seed))
        assert all(torch.equal(v[0], v[t]) for t in range(4)), seed
        (plain,) = apply_plan(frame, Plan(resize=None, flip=True), random.Random(seed))
        changed += not torch.allclose(v[0], plain[0])
    assert changed >= 25  # the switches do something


def test_every_op_keeps_a_clip_consistent():
    clip = np.repeat(image(4, 20, 24)[None], 3, axis=0)
    ops = draw_randaugment(300, 7, random.Random(1))
    assert {op.name for op in ops} == set(OPS)
    for op in ops:
        out = apply_ops(clip, [op])
        assert out.dtype == np.uint8 and out.shape == clip.shape
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2]), op


def test_randaugment_draws_follow_n_m_and_the_apply_probability():
    draws = [draw_randaugment(2, 9, random.Random(s)) for s in range(400)]
    kept = sum(len(d) for d in draws) / 400
    assert 0.8 < kept < 1.2  # 2 ops, each kept with probability 0.5
    rotations = [op.arg for d in draws for op in d if op.name == "Rotate"]
    assert rotations and all(abs(abs(a) - 27.0) < 1e-9 for a in rotations)  # 30° at m=10, so 27° at m=9
    assert draw_randaugment(0, 9, random.Random(0)) == []
    with pytest.raises(ValueError, match="0 <= m <= 10"):
        draw_randaugment(2, 11, random.Random(0))


def test_random_resized_crop_box_follows_scale_and_ratio():
    for seed in range(200):
        top, left, h, w = resized_crop_box(120, 160, (0.2, 0.6), random.Random(seed))
        assert top >= 0 and top + h <= 120 and left >= 0 and left + w <= 160
        assert 0.19 <= h * w / (120 * 160) <= 0.61 and 3 / 4 - 0.03 <= w / h <= 4 / 3 + 0.03


def test_scale_replaces_resize_and_crop_with_one_box_for_the_clip():
    clip = np.repeat(image(5, 60, 80)[None], 3, axis=0)
    plan = Plan(resize=(30, 40), crop=24, random_crop=True, scale=(0.1, 0.5))
    views = [apply_plan(clip, plan, random.Random(s))[0] for s in range(5)]
    assert all(v.shape == (3, 3, 24, 24) for v in views)  # the plan's crop size
    assert all(torch.equal(v[0], v[2]) for v in views)
    assert len({v.sum().item() for v in views}) > 1  # different boxes per draw
    native = Plan(resize=None, scale=(0.3, 0.3))  # no resize / crop: the frame's own size
    assert apply_plan(clip, native, random.Random(0))[0].shape == (3, 3, 60, 80)


@pytest.mark.parametrize("op", [Op("Equalize"), Op("AutoContrast"), Op("Contrast", 1.6), Op("Brightness", 0.5)])
def test_colour_ops_map_one_grey_level_to_one_output_in_every_frame(op):
    """Statistics come from the whole clip: a dark and a bright frame get the same per-channel mapping."""
    dark, bright = image(6, 52, 52) // 2, 64 + image(7, 52, 52) // 2  # grey levels 64-127 in both
    clip = np.stack([dark, bright])
    out = apply_ops(clip, [op])
    for c in range(3):
        values, outputs = clip[..., c].reshape(-1), out[..., c].reshape(-1)
        for v in np.unique(values):
            assert len(np.unique(outputs[values == v])) == 1, (op, c, int(v))


def test_composed_point_ops_equal_applying_them_one_by_one():
    clip = np.stack([image(8, 30, 36), image(9, 30, 36)])
    for seed in range(40):
        ops = draw_randaugment(6, 8, random.Random(seed))
        stepwise = clip
        for op in ops:
            stepwise = apply_ops(stepwise, [op])
        assert np.array_equal(apply_ops(clip, ops), stepwise), ops
