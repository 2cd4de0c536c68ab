"""The tensor moves between image and clip batches (unidual.pathways), shared by models, data and losses."""

import pytest
import torch

from unidual.pathways import aux_name, fold_frames, image_to_clip, is_aux_name, other_pathway, select_frame


def test_image_to_clip_is_a_static_clip_view_unless_copied():
    x = torch.randn(2, 3, 8, 8)
    clip = image_to_clip(x, 4)
    assert clip.shape == (2, 3, 4, 8, 8)
    assert all(torch.equal(clip[:, :, t], x) for t in range(4))
    assert clip.data_ptr() == x.data_ptr() and clip.stride(2) == 0  # no memory
    copied = image_to_clip(x, 4, copy=True)
    assert copied.is_contiguous() and torch.equal(copied, clip)
    with pytest.raises(ValueError, match="image_to_clip"):
        image_to_clip(clip, 4)


def test_select_frame_middle_random_and_index():
    clips = torch.arange(2 * 3 * 5).float().view(2, 3, 5, 1, 1).expand(-1, -1, -1, 2, 2)
    assert torch.equal(select_frame(clips, "middle"), clips[:, :, 2])
    assert torch.equal(select_frame(clips, 4), clips[:, :, 4])
    r = select_frame(clips, "random", torch.Generator().manual_seed(0))
    again = select_frame(clips, "random", torch.Generator().manual_seed(0))
    assert r.shape == (2, 3, 2, 2) and torch.equal(r, again)  # seeded: the same frames
    for i in range(2):
        assert any(torch.equal(r[i], clips[i, :, t]) for t in range(5))
    picks = {int(select_frame(clips, "random")[0, 0, 0, 0]) for _ in range(50)}
    assert len(picks) > 1  # really random across calls
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(select_frame(image_to_clip(x, 3), "random"), x)
    with pytest.raises(ValueError, match="select_frame"):
        select_frame(x)
    with pytest.raises(ValueError, match="frame must be"):
        select_frame(clips, "first")


def test_fold_frames_makes_every_frame_an_image():
    clips = torch.randn(2, 3, 4, 5, 6)
    frames = fold_frames(clips)
    assert frames.shape == (8, 3, 5, 6)
    assert torch.equal(frames[1 * 4 + 2], clips[1, :, 2])
    with pytest.raises(ValueError, match="fold_frames"):
        fold_frames(frames)


def test_aux_names_and_other_pathway():
    assert aux_name("kinetics") == "kinetics_aux" and is_aux_name("kinetics_aux") and not is_aux_name("kinetics")
    assert other_pathway("image") == "video" and other_pathway("video") == "image"
    with pytest.raises(ValueError):
        other_pathway("audio")
