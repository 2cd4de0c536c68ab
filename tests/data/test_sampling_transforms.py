from __future__ import annotations

import random

import numpy as np
import torch

from unidual.data import sampling
from unidual.data.sources import TransformSpec
from unidual.data.transforms import apply_plan


def test_random_clip_consecutive_with_stride():
    rng = random.Random(0)
    for _ in range(50):
        clip = sampling.random_clip(100, 16, 4.0, rng)
        assert len(clip) == 16 and all(b - a == 4 for a, b in zip(clip, clip[1:])) and clip[-1] < 100


def test_short_video_loops_or_pads():
    assert sampling.clip_indices(0, 8, 1.0, 5, loop=True) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert sampling.clip_indices(0, 8, 1.0, 5, loop=False) == [0, 1, 2, 3, 4, 4, 4, 4]


def test_uniform_clips_cover_the_video():
    clips = sampling.uniform_clips(300, 8, 1.0, 10)
    starts = [c[0] for c in clips]
    assert len(clips) == 10 and starts == sorted(starts)
    assert starts[0] < 30 and starts[-1] > 250 and clips[-1][-1] < 300


def test_target_fps_sets_the_step():
    assert sampling.frame_step(1, 30.0, 15.0) == 2.0
    assert sampling.frame_step(4, 25.0, None) == 4.0


def _frames(t=4, h=240, w=320):
    return np.random.default_rng(0).integers(0, 255, (t, h, w, 3), dtype=np.uint8)


def test_protocol_a_sizes():
    spec = TransformSpec("A")
    train = apply_plan(_frames(), spec.plan("video", "train"), random.Random(0))
    test = apply_plan(_frames(), spec.plan("video", "test"), random.Random(0))
    assert [v.shape for v in train] == [(4, 3, 112, 112)] and [v.shape for v in test] == [(4, 3, 112, 112)]


def test_protocol_b_sizes():
    spec = TransformSpec("B")
    train = apply_plan(_frames(), spec.plan("video", "train"), random.Random(0))
    test = apply_plan(_frames(), spec.plan("video", "test"), random.Random(0))
    image = apply_plan(_frames(1), spec.plan("image", "test"), random.Random(0))
    assert train[0].shape == (4, 3, 224, 224)
    assert len(test) == 3 and all(v.shape == (4, 3, 256, 256) for v in test)
    assert not torch.equal(test[0], test[2])  # different positions along the longer side
    assert image[0].shape == (1, 3, 224, 224)


def test_one_crop_and_flip_for_all_frames():
    frame = _frames(1)
    clip = np.repeat(frame, 4, axis=0)  # identical frames stay identical after the clip transform
    spec = TransformSpec("A")
    for seed in range(5):
        (v,) = apply_plan(clip, spec.plan("video", "train"), random.Random(seed))
        assert all(torch.equal(v[0], v[t]) for t in range(4))


def test_normalisation_uses_mean_std():
    spec = TransformSpec("custom", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], flip=False)
    white = np.full((1, 8, 8, 3), 255, np.uint8)
    (v,) = apply_plan(white, spec.plan("image", "train"), random.Random(0))
    assert torch.allclose(v, torch.ones_like(v))


def test_uint8_resize_matches_float_resize_within_one_grey_level():
    """The pixel path resizes uint8 frames (fast kernel); it must agree with a float resize."""
    from unidual.data.transforms import Plan

    frames = np.random.default_rng(0).integers(0, 256, (4, 90, 160, 3), dtype=np.uint8)
    (out,) = apply_plan(frames, Plan(resize=(64, 85)), random.Random(0))
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255,
        size=(64, 85),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = out * std + mean
    assert out.shape == (4, 3, 64, 85) and out.dtype == torch.float32 and out.is_contiguous()
    assert (pixels - reference.clamp(0, 1)).abs().max() <= 1.0 / 255 + 1e-5
    assert (pixels - reference.clamp(0, 1)).abs().mean() < 0.5 / 255
