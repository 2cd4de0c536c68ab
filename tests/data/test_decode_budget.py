"""The decode budget: files declaring huge frames are refused or decoded small, on every reading path.

The hostile files are generated here, tiny on disk (tests/helpers/hostile.py); their memory
cost with ``predict`` / ``visualize`` is measured by benchmarks/reliability.py.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers.hostile import huge_gif, huge_h264, huge_png
from PIL import Image

from tests.data.conftest import counter_frames, frame_ids
from unidual.data import DataError
from unidual.data.budget import DecodeBudget, decode_budget, decode_budget_limited
from unidual.data.decode import load_image, probe_video, read_clip, read_frames, read_video
from unidual.data.encode import write_video


@pytest.mark.parametrize("full", [False, True])
def test_gif_declaring_a_huge_canvas_is_refused_before_decoding(tmp_path, full):
    gif = huge_gif(tmp_path / "canvas.gif", 16000, 16000, full=full)
    assert gif.stat().st_size < 200
    for read in (probe_video, lambda p: read_clip(p, lambda info: [0, 1]), read_video):
        with pytest.raises(DataError, match=r"canvas\.gif: declared size .*256000000 pixels is above the limit"):
            read(gif)
    with pytest.raises(DataError, match=r"canvas\.gif: declared size .*256000000 pixels is above the limit"):
        load_image(gif)  # the still-image path (Pillow) says the same


def test_png_declaring_a_huge_canvas_is_refused_by_both_readers(tmp_path):
    png = huge_png(tmp_path / "wide.png", 16000, 16000)
    with pytest.raises(DataError, match=r"wide\.png: declared size .*256000000 pixels is above the limit"):
        load_image(png)
    with pytest.raises(DataError, match=r"wide\.png: declared size .*256000000 pixels is above"):
        read_clip(png, lambda info: [0])  # visualize opens any file as a video (PyAV's image demuxer)
    renamed = png.rename(tmp_path / "wide.mp4")  # FFmpeg sniffs the content, so must the check
    with pytest.raises(DataError, match=r"wide\.mp4: declared size .*256000000 pixels is above"):
        probe_video(renamed)


@pytest.fixture(scope="module")
def h264_8192(tmp_path_factory):
    return huge_h264(tmp_path_factory.mktemp("huge") / "8192.mp4", side=8192, frames=2)


def test_8192_square_h264_is_converted_at_reduced_size(h264_8192):
    """Frames past max_frame_pixels come out of swscale small: never a full-size RGB copy."""
    assert h264_8192.stat().st_size < 400_000
    limit = decode_budget().max_frame_pixels
    _, _, frames = read_clip(h264_8192, lambda info: [0, 1])
    assert frames.shape[0] == 2 and frames.shape[1] == frames.shape[2]  # aspect kept
    assert frames.shape[1] * frames.shape[2] <= limit and frames.shape[1] >= 0.99 * limit**0.5


def test_a_tighter_budget_refuses_what_the_default_decodes(h264_8192):
    with decode_budget_limited(max_declared_pixels=4096 * 4096), pytest.raises(DataError, match="8192x8192"):
        read_clip(h264_8192, lambda info: [0])
    assert decode_budget() == DecodeBudget()  # restored after the block


def test_small_budget_scales_frames_and_keeps_their_identity(make_video):
    path = make_video("v.mp4", n=12, h=60, w=80)
    full = read_frames(path, [2, 7])
    with decode_budget_limited(max_frame_pixels=20 * 15):
        small = read_frames(path, [2, 7])
        assert frame_ids(small) == [2, 7] and small.shape == (2, 15, 20, 3)
        assert read_video(path).shape == (12, 15, 20, 3)
    with decode_budget_limited(max_read_pixels=4 * 40 * 30):  # four frames of 40x30 at most in one read
        assert read_frames(path, [0, 3, 6, 9]).shape == (4, 30, 40, 3)
        assert read_frames(path, [0, 3]).shape == (2, 42, 56, 3)
    assert np.array_equal(read_frames(path, [2, 7]), full)  # the default leaves small frames untouched


def test_read_clip_skipped_frames_and_gaps_stay_right_when_scaled(tmp_path):
    """Eagerly converted (scaled) frames must fill variable-rate gaps the same way as deferred ones."""
    path = write_video(tmp_path / "v.mp4", counter_frames(10, 64, 64), fps=10)
    with decode_budget_limited(max_frame_pixels=32 * 32):
        assert frame_ids(read_frames(path, [1, 4, 9, 12])) == [1, 4, 9, 9]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_image_is_decoded_reduced_not_converted_at_full_size(fmt):
    img = Image.new("RGB", (400, 300), (200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    with decode_budget_limited(max_frame_pixels=100 * 75):
        out = load_image(buf.getvalue())
    assert out.width * out.height <= 100 * 75 and out.width / out.height == pytest.approx(4 / 3, rel=0.05)
    assert abs(int(np.asarray(out)[10, 10, 0]) - 200) < 8
    assert load_image(buf.getvalue()).size == (400, 300)


def test_palette_image_with_transparency_is_reduced_too():
    img = Image.new("P", (300, 200), 0)
    img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=0)
    with decode_budget_limited(max_frame_pixels=60 * 40):
        out = load_image(buf.getvalue())
    assert out.mode == "RGB" and out.size == (60, 40) and np.asarray(out).min() == 255  # transparent -> white


def test_budget_rejects_nonsense_values():
    with pytest.raises(ValueError, match="max_frame_pixels"):
        DecodeBudget(max_frame_pixels=0)


def test_encoded_tiny_video_still_reads_with_default_budget(tmp_path):
    path = write_video(tmp_path / "x.mkv", counter_frames(5), fps=5)
    assert frame_ids(read_clip(path, lambda info: list(range(info.num_frames)))[2]) == [0, 1, 2, 3, 4]


def test_data_check_reports_a_huge_canvas_as_one_unreadable_file(tmp_path):
    from unidual.data.filecheck import inspect_image, inspect_video

    gif, png = huge_gif(tmp_path / "g.gif"), huge_png(tmp_path / "p.png")
    assert inspect_video(str(gif))["error"].startswith("declared size 16000x16000")
    for deep in (False, True):
        assert "256000000 pixels is above the limit" in inspect_image(str(png), deep=deep)["error"]
