"""Hostile media made small on disk: files that declare huge frames, and a checkpoint that is a zip bomb.

Shared by the tests and ``benchmarks/reliability.py``. Each file is a few hundred bytes to a
few hundred kilobytes, but a reader that trusts its header allocates gigabytes.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import av


def huge_gif(path: Path, width: int = 16000, height: int = 16000, frames: int = 2, full: bool = False) -> Path:
    """A GIF whose logical screen is ``width x height`` holding ``frames`` 1x1 frames (or, with
    ``full``, frames declaring the whole canvas with almost no pixel data): ~100 bytes on disk."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0))  # 2-colour global table
    out += b"\x00\x00\x00\xff\xff\xff"
    out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever: an animation
    for i in range(frames):
        out += b"!\xf9\x04\x04\x0a\x00\x00\x00"  # graphic control: 0.1 s, keep the previous frame
        w, h = (width, height) if full else (1, 1)
        out += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0)
        out += b"\x02\x02" + (b"\x44\x01" if i % 2 else b"\x4c\x01") + b"\x00"  # LZW: one pixel, then end
    out += b";"
    path.write_bytes(bytes(out))
    return path


def huge_png(path: Path, width: int = 16000, height: int = 16000) -> Path:
    """A PNG whose header declares ``width x height`` RGB pixels; its data stops after a few rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 4, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def huge_h264(path: Path, side: int = 8192, frames: int = 4) -> Path:
    """An H.264 MP4 of ``frames`` flat ``side x side`` frames (a few hundred KB on disk)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(8))
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40"}
        frame = av.VideoFrame(side, side, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for i in range(frames):
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def zip_bomb_checkpoint(path: Path, inflated: int = 2_000_000_000) -> Path:
    """A ``torch.save``-layout zip whose tensor-data member inflates to ``inflated`` bytes of zeros
    (deflate reaches ~1000:1, so ~2 MB on disk for the default 2 GB)."""
    name = path.stem
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(f"{name}/data.pkl", b"\x80\x02}q\x00.")  # an empty dict
        z.writestr(f"{name}/byteorder", b"little")
        with z.open(f"{name}/data/0", "w", force_zip64=True) as member:
            block = bytes(1 << 24)
            for _ in range(inflated // len(block)):
                member.write(block)
        z.writestr(f"{name}/version", b"3\n")
    return path


def many_links(video: Path, root: Path, count: int) -> Path:
    """``root/test/<left|right>/vNNNN.mp4``: ``count`` symlinks to one small video, a long run made cheaply."""
    for i in range(count):
        folder = root / "test" / ("left" if i % 2 else "right")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"v{i:04d}.mp4").symlink_to(video)
    return root


def ctrl_c_after(argv: list[str], seconds: float, env: dict[str, str]) -> tuple[int, str]:
    """``python -m unidual ARGV`` in its own process group, SIGINT to the group after ``seconds`` (as
    Ctrl-C reaches every process of a command) unless it ended first: ``(exit status as the shell
    reports it, stderr)``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "unidual", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(seconds)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    # ended by the signal itself (it landed while Python was shutting down): the shell's status 130 too
    return 130 if proc.returncode == -signal.SIGINT else proc.returncode, err
