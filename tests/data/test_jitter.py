"""Colour jitter: PySlowFast's brightness / contrast / saturation blends as one affine map per clip."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from unidual.data.jitter import GREY, Jitter, apply_jitter, draw_color_jitter


def image(seed: int, h: int = 24, w: int = 28) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def sequential(clip: np.ndarray, jitter: Jitter) -> np.ndarray:
    """The blends one after the other in float, unclipped (PySlowFast's ``color_jitter``), then clipped once."""
    x = clip.astype(np.float64)
    for name in jitter.order:
        f = getattr(jitter, name)
        if name == "brightness":
            x = f * x
        elif name == "contrast":
            mean_grey = float((x @ GREY).mean())  # over the whole clip
            x = mean_grey + f * (x - mean_grey)
        else:
            grey = (x @ GREY)[..., None]
            x = grey + f * (x - grey)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def test_one_affine_map_equals_the_blends_in_sequence():
    clip = np.stack([image(1), image(2), image(3)])
    for seed in range(30):
        jitter = draw_color_jitter(0.6, random.Random(seed))
        ours, reference = apply_jitter(clip, jitter).astype(int), sequential(clip, jitter).astype(int)
        assert np.abs(ours - reference).max() <= 1, jitter  # float32 vs float64 rounding


@pytest.mark.parametrize("name, pil", [("brightness", "Brightness"), ("contrast", "Contrast"), ("saturation", "Color")])
def test_each_blend_alone_is_pils_enhance_on_an_image(name, pil):
    img = image(4)
    factors = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, name: 0.6}
    ours = apply_jitter(img[None], Jitter(**factors))[0].astype(int)
    reference = np.asarray(getattr(ImageEnhance, pil)(Image.fromarray(img)).enhance(0.6)).astype(int)
    assert np.abs(ours - reference).max() <= 1


def test_draws_factors_in_range_in_random_order_and_keeps_a_clip_consistent():
    orders = set()
    clip = np.repeat(image(5)[None], 4, axis=0)
    for seed in range(40):
        jitter = draw_color_jitter(0.4, random.Random(seed))
        assert all(0.6 <= getattr(jitter, n) <= 1.4 for n in ("brightness", "contrast", "saturation"))
        orders.add(jitter.order)
        out = apply_jitter(clip, jitter)
        assert out.dtype == np.uint8 and all(np.array_equal(out[0], out[t]) for t in range(4))
    assert len(orders) > 1
    with pytest.raises(ValueError, match="color_jitter"):
        draw_color_jitter(-1, random.Random(0))
