"""``unidual data prepare``: re-encoded mirror tree, small short side, frequent keyframes, resumable."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.data.conftest import counter_frames, frame_ids
from unidual.cli import main
from unidual.data.decode import probe_video, read_video
from unidual.data.encode import write_video
from unidual.data.prepare import PrepareOptions, prepare_dataset
from unidual.data.sources import SourceSpec, build_dataset


def _with_audio(path: Path, frames: np.ndarray, fps: int = 10) -> None:
    """An mp4 with a video and an AAC audio stream (prepare must drop the audio)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"g": "100"}
        audio = out.add_stream("aac", rate=16000)
        for rgb in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        samples = np.zeros((1, 1024 * 16), np.float32)
        sound = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        sound.sample_rate = 16000
        for packet in [*audio.encode(sound), *audio.encode(None), *video.encode()]:
            out.mux(packet)


def _keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [i for i, p in enumerate(p for p in c.demux(video=0) if p.size) if p.is_keyframe]


def test_prepare_mirrors_reencodes_rewrites_lists_and_resumes(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_video(src / "train" / "a" / "x.avi", counter_frames(40, 48, 64), fps=10)  # mpeg4 in AVI
    (src / "train" / "b").mkdir(parents=True)
    _with_audio(src / "train" / "b" / "y.mp4", counter_frames(40, 96, 64))  # portrait
    (src / "train" / "b" / "broken.mp4").write_bytes(b"not a video at all" * 20)
    Image.new("RGB", (80, 60), (200, 10, 10)).save(src / "photo.jpg")
    (src / "train_list.txt").write_text("train/a/x.avi 0\ntrain/b/y.mp4 1\n")
    (src / "README.md").write_text("ignored")
    result = prepare_dataset(src, dst, PrepareOptions(short_side=32, keyframe_interval=8), workers=2)
    assert result["written"] == 3 and result["already_done"] == 0 and result["lists"] == 1
    assert [Path(b["path"]).name for b in result["unreadable"]] == ["broken.mp4"]
    assert "broken.mp4" in (dst / "prepare_unreadable.txt").read_text()
    x, y = dst / "train" / "a" / "x.mp4", dst / "train" / "b" / "y.mp4"
    info_x, info_y = probe_video(x), probe_video(y)
    assert (info_x.width, info_x.height, info_x.num_frames) == (42, 32, 40)  # aspect kept, even sides
    assert (info_y.width, info_y.height, info_y.num_frames) == (32, 48, 40)
    keys = _keyframes(y)
    assert keys[0] == 0 and max(np.diff(keys + [40])) <= 8 and len(keys) >= 5  # the source had one keyframe
    with av.open(str(y)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and not c.streams.audio
    assert frame_ids(read_video(x)) == list(range(26)) + [25] * 14  # red = 10 t saturates at 255
    assert (dst / "photo.jpg").read_bytes() == (src / "photo.jpg").read_bytes()  # images copied by default
    assert not (dst / "README.md").exists()
    assert (dst / "train_list.txt").read_text() == "train/a/x.mp4 0\ntrain/b/y.mp4 1\n"
    spec = SourceSpec.from_dict(
        dict(
            key="v", modality="video", format="mmaction_list", root=str(dst), train="train_list.txt", clip={"frames": 4}
        )
    )
    assert build_dataset(spec, "train")[0]["input"].shape == (3, 4, 112, 112)
    # a second run skips what is done and tries the unreadable file again
    before = x.stat().st_mtime_ns
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "32", "--images", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "0 written, 3 already done" in out and "unreadable (skipped): " in out and "broken.mp4" in out
    assert x.stat().st_mtime_ns == before
    assert main(["data", "prepare", str(tmp_path / "nowhere"), str(dst), "--short-side", "32"]) == 2
    assert "source folder not found" in capsys.readouterr().err


def test_prepare_keeps_videos_apart_whose_mp4_names_clash(tmp_path):
    """x.avi beside x.mp4 (mmaction2's kinetics samples have test.avi and test.mp4): both survive."""
    src = tmp_path / "src"
    write_video(src / "x.avi", counter_frames(6), fps=10)
    write_video(src / "x.mp4", counter_frames(9), fps=10)
    (src / "list.txt").write_text("x.avi 0\nx.mp4 1\n")
    result = prepare_dataset(src, src / "prepared", PrepareOptions(short_side=16))  # DST inside SRC is no input
    assert result["written"] == 2 and not result["unreadable"]
    out = src / "prepared"
    assert probe_video(out / "x_avi.mp4").num_frames == 6 and probe_video(out / "x.mp4").num_frames == 9
    assert (out / "list.txt").read_text() == "x_avi.mp4 0\nx.mp4 1\n"
    assert prepare_dataset(src, src / "prepared", PrepareOptions(short_side=16))["already_done"] == 2


def test_prepare_resizes_images_when_asked(tmp_path):
    Image.new("RGB", (80, 60), (200, 10, 10)).save(tmp_path / "p.png")
    Image.new("RGB", (20, 10)).save(tmp_path / "small.png")
    prepare_dataset(tmp_path, tmp_path / "out", PrepareOptions(short_side=30, images=True))
    assert Image.open(tmp_path / "out" / "p.png").size == (40, 30)
    assert Image.open(tmp_path / "out" / "small.png").size == (20, 10)  # never upscaled


def test_prepare_a_sources_file_reencodes_what_it_names_and_writes_matching_sources(tmp_path, capsys):
    """Issue 27: ``data prepare SOURCES.yaml DST`` for class folders (images) and a Kinetics CSV (videos)."""
    from unidual.data.builtin import make_default_dataset
    from unidual.data.sourcefile import read_source_file

    make_default_dataset(tmp_path / "d", images_per_class=(2, 1), videos_per_class=(2, 1))
    broken = next((tmp_path / "d" / "motion" / "train").rglob("*.mp4"))
    broken.write_bytes(b"cut off" * 10)
    dst = tmp_path / "small"
    argv = ["data", "prepare", str(tmp_path / "d" / "sources.yaml"), str(dst), "--short-side", "16", "--workers", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 unreadable" in out and "1 list line dropped" in out and broken.name in out
    old = {d["key"]: SourceSpec.from_dict(d) for d in read_source_file(tmp_path / "d" / "sources.yaml")}
    new = {d["key"]: SourceSpec.from_dict(d) for d in read_source_file(dst / "sources.yaml")}
    assert new["motion"].format == "list" and new["motion"].clip == old["motion"].clip
    assert new["shapes"].transform == old["shapes"].transform
    for key in old:
        for split in ("train", "test"):
            before, after = build_dataset(old[key], split), build_dataset(new[key], split)
            assert after.classes == before.classes
            if (key, split) == ("motion", "train"):  # the broken video's example is left out
                assert len(after) == len(before) - 1
            else:
                assert after.labels == before.labels and len(after) == len(before)
    video = Path(build_dataset(new["motion"], "test").files[0])
    assert video.is_relative_to(dst / "motion") and probe_video(video).height == 16
    image = Path(build_dataset(new["shapes"], "train").files[0])
    assert image.read_bytes() == (tmp_path / "d" / "shapes" / image.relative_to(dst / "shapes")).read_bytes()
    assert main(["data", "check", str(dst / "sources.yaml")]) == 0
    capsys.readouterr()
    files = sum(len(build_dataset(old[k], s)) for k in old for s in ("train", "test"))
    assert main(argv) == 0  # rerun: everything done, the unreadable one tried again
    assert f"0 written, {files - 1} already done" in capsys.readouterr().out
