from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.conftest import frame_ids
from unidual.data.decode import load_image, probe_video, read_frames, read_video


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi", ".webm"])
def test_generated_containers_decode_exact_frames(make_video, suffix):
    path = make_video("clip" + suffix, n=24, fps=12)
    info = probe_video(path)
    assert info.num_frames == 24 and info.fps == pytest.approx(12)
    assert frame_ids(read_frames(path, [2, 13, 20], info)) == [2, 13, 20]


def test_seek_matches_full_decode_on_real_video(kinetics_clip):
    info = probe_video(kinetics_clip)
    assert info.num_frames == 280 and (info.width, info.height) == (340, 256)
    full = read_video(kinetics_clip)
    wanted = [200, 204, 208, 212]  # far from the start: the seek path
    clip = read_frames(kinetics_clip, wanted, info)
    assert np.array_equal(clip, full[wanted])


def test_real_avi_and_gif_and_mkv(shared_data):
    avi = shared_data / "videos" / "kinetics-samples" / "test.avi"
    full = read_video(avi)
    assert np.array_equal(read_frames(avi, [100, 101]), full[[99, 100]])  # AVI pts start at 1
    gif = shared_data / "videos" / "intel-samples" / "people-detection.gif"
    assert probe_video(gif).num_frames == read_video(gif).shape[0] == 23
    mkv = sorted((shared_data / "videos" / "intel-samples" / "asl_gestures").glob("*.mkv"))[0]
    info = probe_video(mkv)
    assert info.num_frames >= 60 and read_frames(mkv, [0, info.num_frames - 1]).shape[0] == 2


def test_index_past_end_repeats_last_frame(make_video):
    path = make_video(n=10)
    assert frame_ids(read_frames(path, [8, 9, 12])) == [8, 9, 9]


def _image_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "1", "LA"])
def test_every_image_mode_becomes_rgb(mode):
    img = Image.new("RGB", (20, 10), (200, 30, 30)).convert(mode)
    fmt = {"CMYK": "JPEG", "I;16": "PNG"}.get(mode, "PNG" if mode != "1" else "BMP")
    out = load_image(_image_bytes(img, fmt))
    assert out.mode == "RGB" and out.size == (20, 10)


def test_16bit_image_is_rescaled_not_clipped():
    arr = np.full((8, 8), 40000, np.uint16)
    out = np.asarray(load_image(_image_bytes(Image.fromarray(arr), "PNG")))
    assert out.max() == round(40000 / 65535 * 255)  # not saturated to 255


def test_rgba_transparent_pixels_become_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(load_image(_image_bytes(img, "PNG"))).min() == 255


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (30, 10), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = load_image(_image_bytes(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (10, 30)


def test_real_cifar_jpeg_from_archive(shared_data):
    from unidual.data.archive import open_archive

    arch = open_archive(shared_data / "images" / "cifar10-jpeg.tar.gz")
    img = load_image(arch.read("test/cat/0000.jpg"))
    assert img.size == (32, 32) and img.mode == "RGB"


def _pyav_rgb(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        decoded = [
            (f.pts if f.pts is not None else i, f.to_ndarray(format="rgb24"))
            for i, f in enumerate(container.decode(container.streams.video[0]))
        ]
    return [rgb for _, rgb in sorted(decoded, key=lambda pair: pair[0])]


@pytest.mark.parametrize(
    "name",
    [
        "kinetics-samples/test.avi",
        "kinetics-samples/rawvideo_dataset_part_0.mp4",
        "intel-samples/people-detection.gif",
        "intel-samples/asl_gestures",
    ],
)
def test_reused_converter_gives_pyav_bytes(shared_data, name):
    """The cached single-threaded swscale context must give exactly PyAV's own rgb24 conversion."""
    path = shared_data / "videos" / name
    if path.is_dir():
        path = sorted(path.glob("*.mkv"))[0]
    ours = read_video(path)
    theirs = _pyav_rgb(path)
    assert len(ours) == len(theirs)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


class _Frames(torch.utils.data.Dataset):
    def __init__(self, path: Path) -> None:
        self.path = path

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        return torch.from_numpy(read_frames(self.path, [i, i + 3]))


def test_decoding_in_forked_workers_after_parent_decoded(make_video):
    """The parent's converter is inherited by forked workers; they must neither hang nor differ."""
    import multiprocessing as mp

    path = make_video("fork.mp4", n=12)
    parent = [torch.from_numpy(read_frames(path, [i, i + 3])) for i in range(4)]  # parent's converter exists
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    loader = torch.utils.data.DataLoader(
        _Frames(path), batch_size=None, num_workers=2, multiprocessing_context=ctx, timeout=60
    )
    got = list(loader)
    assert all(torch.equal(a, b) for a, b in zip(got, parent)) and len(got) == 4


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_read_clip_opens_once_and_matches_probe_plus_read(make_video, monkeypatch, suffix):
    """One open for containers with a frame count; mkv (no count in the header) needs a second."""
    from unidual.data import decode

    path = make_video("clip" + suffix, n=30, fps=10)
    expected_info = probe_video(path)
    opens = []
    real_open = decode._open
    monkeypatch.setattr(decode, "_open", lambda p: opens.append(p) or real_open(p))
    info, indices, frames = decode.read_clip(path, lambda i: [i.num_frames - 9, i.num_frames - 5])
    assert info == expected_info and indices == [21, 25]
    assert frame_ids(frames) == [21, 25]
    assert len(opens) == (1 if suffix == ".mp4" else 2)
    opens.clear()
    _, _, again = decode.read_clip(path, lambda i: [3], info=info)  # info known: no probe at all
    assert frame_ids(again) == [3] and len(opens) == 1


def test_ten_test_clips_in_one_pass_convert_only_the_wanted_frames(shared_data, monkeypatch):
    """Evaluation reads the 10 clips of a video in one forward decode, converting only their frames to RGB."""
    from unidual.data import decode
    from unidual.data.sampling import flatten, uniform_clips

    for name, offset in (("demo.mp4", 0), ("test.avi", 1)):  # AVI pts start at 1
        path = shared_data / "videos" / "kinetics-samples" / name
        info = probe_video(path)
        full = read_video(path)
        wanted = flatten(uniform_clips(info.num_frames, 8, 2, 10)) + [info.num_frames + 5]  # one past the end
        converted = []
        real_rgb = decode._rgb
        monkeypatch.setattr(decode, "_rgb", lambda frame: converted.append(1) or real_rgb(frame))
        clip = read_frames(path, wanted, info)
        expected = [max(min(i, info.num_frames) - offset, 0) for i in wanted[:-1]] + [len(full) - 1]
        assert np.array_equal(clip, full[expected])
        assert len(converted) == len(set(wanted))  # not the ~270 frames the clips span
        monkeypatch.undo()
        _, _, frames = decode.read_clip(path, lambda _: wanted, info, stacked=False)  # what a test item reads
        assert isinstance(frames, list) and np.array_equal(np.stack(frames), clip)
