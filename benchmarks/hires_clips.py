"""High-resolution H.264 clips like real Kinetics downloads, made from the real shared videos.

The 720p-1080p Kinetics clips the data benchmarks are about are not on this machine, so
this writes stand-ins into a temporary folder (never into the repository): real frames of
the shared intel-samples scenes, upscaled to 1280x720 or 1920x1080 (swscale bicubic),
encoded with libx264 (preset veryfast, crf 23, a keyframe every 128 frames, B-frames on,
as YouTube-style encodes have), 30 fps. A second call reuses the files.

    .venv/bin/python benchmarks/hires_clips.py /tmp/unidual-hires   # writes, then lists them
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from unidual.data import shared_data_dir  # noqa: E402

SCENES = ("car-detection.mp4", "bottle-detection.mp4", "one-by-one-person-detection.mp4")
FPS = 30
GOP = 128


def _frames(scene: Path, start: int, count: int, width: int, height: int):
    """``count`` real frames of ``scene`` from frame ``start`` on (looping), scaled to width x height."""
    produced = 0
    while produced < count:
        with av.open(str(scene)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i < start:
                    continue
                yield frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
                produced += 1
                if produced == count:
                    return
        start = 0


def write_clip(path: Path, scene: Path, start: int, seconds: float, width: int, height: int) -> Path:
    """One clip (written to a temporary name, then renamed, so an interrupted run leaves no half file)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0"}
        for i, frame in enumerate(_frames(scene, start, int(seconds * FPS), width, height)):
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def make_hires_clips(
    out: str | Path, n720: int = 16, n1080: int = 8, seconds: float = 10.0, long_seconds: float = 18.0, n_long: int = 3
) -> dict[str, list[Path]]:
    """``{"clips": 10-s 720p/1080p clips, "long": 18-s 720p clips}`` under ``out`` (reused when present)."""
    videos = shared_data_dir() / "videos" / "intel-samples"
    scenes = [videos / s for s in SCENES if (videos / s).is_file()]
    if not scenes:
        raise SystemExit(f"shared videos not found under {videos} (set UNIDUAL_DATA)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clips, long = [], []
    for i in range(n720 + n1080):
        w, h = (1280, 720) if i < n720 else (1920, 1080)
        scene = scenes[i % len(scenes)]
        clips.append(write_clip(out / "clips" / f"{scene.stem}_{i:02d}_{h}p.mp4", scene, 40 * i, seconds, w, h))
    for i in range(n_long):
        scene = scenes[i % len(scenes)]
        long.append(write_clip(out / "long" / f"{scene.stem}_{i:02d}_18s.mp4", scene, 25 * i, long_seconds, 1280, 720))
    return {"clips": clips, "long": long}


if __name__ == "__main__":
    made = make_hires_clips(sys.argv[1] if len(sys.argv) > 1 else "/tmp/unidual-hires")
    for kind, paths in made.items():
        total = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{kind}: {len(paths)} files, {total:.0f} MB, e.g. {paths[0]}")
