"""``data prepare`` never keeps a half file, never counts one as done, and never names one in a list.

Kills, a full disk (a real small tmpfs where ``unshare -rm`` is allowed), Ctrl-C, symlinked
folders, names at the file-system limit, names that are not UTF-8 (issue 28, items 2, 3, 5,
13, 14, 15, 17).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data.conftest import counter_frames
from unidual.cli import main
from unidual.data.decode import probe_video
from unidual.data.encode import write_video
from unidual.data.prepare import PrepareOptions, prepare_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _prepare_cmd(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "unidual", "data", "prepare", str(src), str(dst), "--short-side", "32", *extra]


def _noise_videos(folder: Path, count: int, frames: int = 30, side: int = 96) -> list[Path]:
    rng = np.random.default_rng(0)
    return [
        write_video(folder / f"c{i % 2}" / f"v{i}.avi", rng.integers(0, 255, (frames, side, side, 3), np.uint8), fps=10)
        for i in range(count)
    ]


def test_a_kill_mid_copy_leaves_no_final_name_and_the_rerun_redoes_it(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    with open(src / "big.png", "wb") as f:  # copied byte for byte (images are copied by default)
        f.truncate(256 << 20)
    proc = subprocess.Popen(_prepare_cmd(src, dst, "--workers", "1"), env=ENV, stderr=subprocess.DEVNULL)
    seen_partial = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        final = dst / "big.png"
        if final.exists() and final.stat().st_size < (256 << 20):
            seen_partial = True
        if dst.is_dir() and any(dst.iterdir()) and (final.exists() or any(dst.glob(".*part*"))):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.0005)
    proc.wait()
    assert not seen_partial, "the final name existed before the copy was complete"
    final = dst / "big.png"
    assert not final.exists() or final.stat().st_size == 256 << 20
    done_before = final.exists()
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "32", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert final.stat().st_size == 256 << 20
    assert ("1 written, 0 already done" if not done_before else "0 written, 1 already done") in out
    assert not [p for p in dst.iterdir() if p.name.startswith(".unidual-") and p.name.endswith(".part")]


def test_a_truncated_copy_from_an_older_version_is_redone(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(src / "p.png")
    (dst).mkdir()
    (dst / "p.png").write_bytes((src / "p.png").read_bytes()[:20])  # what a kill left before this fix
    result = prepare_dataset(src, dst, PrepareOptions(short_side=32))
    assert result["written"] == 1 and (dst / "p.png").read_bytes() == (src / "p.png").read_bytes()


_DISK_FULL = textwrap.dedent(
    """
    set -u
    mount -t tmpfs -o size={size} tmpfs {mnt} || exit 9
    {py} -m unidual data prepare {src} {mnt}/out --short-side 64 --workers 1 >{tmp}/out1 2>{tmp}/err1
    echo $? > {tmp}/rc1
    ls -a {mnt}/out > {tmp}/ls1 2>&1
    {py} {tmp}/verify.py {src} {mnt}/out > {tmp}/verify1
    mount -o remount,size=64m {mnt}
    {py} -m unidual data prepare {src} {mnt}/out --short-side 64 --workers 1 >{tmp}/out2 2>{tmp}/err2
    echo $? > {tmp}/rc2
    {py} {tmp}/verify.py {src} {mnt}/out > {tmp}/verify2
    """
)

_VERIFY = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from unidual.data.decode import probe_video
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    complete, broken = [], []
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        rel = p.relative_to(out)
        try:
            if p.suffix == ".mp4":
                ok = probe_video(p).num_frames == 40
            elif p.suffix == ".txt" and p.name != "prepare_unreadable.txt":
                ok = all((out / line.split()[0]).is_file() for line in p.read_text().splitlines() if line.strip())
            else:
                ok = p.name == "prepare_unreadable.txt" or p.read_bytes() == (src / rel).read_bytes()
        except Exception:
            ok = False
        (complete if ok else broken).append(str(rel))
    temps = [p.name for p in out.rglob(".*") if p.name != ".unidual-prepare.lock"]
    print(json.dumps({"complete": complete, "broken": broken, "temps": temps}))
    """
)


def _unshare_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_ok(), reason="needs `unshare -rm` (user namespaces) to mount a small tmpfs")
def test_disk_full_on_a_real_tmpfs_ends_in_one_line_and_counts_nothing_unfinished(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(1)
    for i in range(8):
        write_video(src / f"c{i % 2}" / f"v{i}.avi", rng.integers(0, 255, (40, 96, 96, 3), np.uint8), fps=10)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), np.uint8)).save(src / "c0" / "noise.png")
    (src / "list.txt").write_text("".join(f"c{i % 2}/v{i}.avi {i % 2}\n" for i in range(8)))
    (tmp_path / "verify.py").write_text(_VERIFY)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = _DISK_FULL.format(size="400k", mnt=mnt, src=src, tmp=tmp_path, py=sys.executable)
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=ENV, check=True, timeout=600)
    first, second = (json.loads((tmp_path / f"verify{i}").read_text()) for i in (1, 2))
    err1 = (tmp_path / "err1").read_text()
    assert int((tmp_path / "rc1").read_text()) == 1, err1
    assert "Traceback" not in err1 and len(err1.strip().splitlines()) == 1 and "no space left" in err1
    assert first["broken"] == [] and first["temps"] == [], first  # whatever has a final name is complete
    assert "list.txt" not in first["complete"]  # the list waits for a complete run
    assert int((tmp_path / "rc2").read_text()) == 0, (tmp_path / "err2").read_text()
    assert second["broken"] == [] and second["temps"] == [] and len(second["complete"]) == 10, second
    out2 = (tmp_path / "out2").read_text()
    done = len([c for c in first["complete"] if c.endswith((".mp4", ".png"))])
    assert f"{9 - done} written, {done} already done" in out2, out2


def test_disk_full_while_rewriting_a_list_is_one_line_and_leaves_no_list(tmp_path, monkeypatch, capsys):
    """Without a tmpfs: the list write is made to fail with ENOSPC (the tmpfs test covers media)."""
    import errno

    from unidual.data import prepare as prep

    src, dst = tmp_path / "src", tmp_path / "dst"
    write_video(src / "a" / "x.avi", counter_frames(6), fps=10)
    (src / "list.txt").write_text("a/x.avi 0\n")
    real = prep.write_atomic

    def full(path, data):
        if Path(path).name == "list.txt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(prep, "write_atomic", full)
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on device" in err[0] and "list.txt" in err[0]
    assert not (dst / "list.txt").exists() and (dst / "a" / "x.mp4").is_file()


def test_lists_never_name_a_video_that_was_not_written(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_video(src / "a" / "good.avi", counter_frames(6), fps=10)
    (src / "a" / "broken.mp4").write_bytes(b"junk" * 50)
    (src / "train.txt").write_text("a/good.avi 0\na/broken.mp4 1\nelsewhere/absent.mp4 1\n")
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]) == 0
    assert (dst / "train.txt").read_text() == "a/good.mp4 0\nelsewhere/absent.mp4 1\n"
    out = capsys.readouterr().out
    assert "1 list line dropped" in out and "1 list line names a video not in" in out
    unreadable = (dst / "prepare_unreadable.txt").read_text()
    assert "train.txt:2" in unreadable and "broken.mp4" in unreadable


def test_symlinked_sub_folders_are_followed_and_loops_reported(tmp_path, capsys):
    src, dst, elsewhere = tmp_path / "src", tmp_path / "dst", tmp_path / "elsewhere"
    write_video(elsewhere / "y.avi", counter_frames(6), fps=10)
    write_video(src / "a" / "x.avi", counter_frames(6), fps=10)
    (src / "linked").symlink_to(elsewhere, target_is_directory=True)
    (src / "a" / "loop").symlink_to(src, target_is_directory=True)
    (src / "list.txt").write_text("a/x.avi 0\nlinked/y.avi 1\n")
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert probe_video(dst / "linked" / "y.mp4").num_frames == 6
    assert "2 written" in out and "symlink loop" in out and "a/loop" in out
    assert (dst / "list.txt").read_text() == "a/x.mp4 0\nlinked/y.mp4 1\n"


def test_a_name_at_the_file_system_limit_is_prepared(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    src, dst = tmp_path / "src", tmp_path / "dst"
    name = "v" * (limit - 4) + ".mp4"
    write_video(src / name, counter_frames(6), fps=10)
    result = prepare_dataset(src, dst, PrepareOptions(short_side=16))
    assert result["written"] == 1 and not result["unreadable"]
    assert probe_video(dst / name).num_frames == 6


def test_a_non_utf8_name_is_listed_safely(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    bad = os.fsdecode(b"caf\xe9.mp4")
    (src / bad).write_bytes(b"not a video" * 20)
    write_video(src / "ok.mp4", counter_frames(6), fps=10)
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 written" in out and "caf\\xe9.mp4" in out
    text = (dst / "prepare_unreadable.txt").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert "caf\\xe9.mp4" in text


def test_ctrl_c_exits_in_one_line_and_leaves_nothing_indexable(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _noise_videos(src, 6, frames=120, side=160)
    proc = subprocess.Popen(
        _prepare_cmd(src, dst, "--workers", "2"),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the signal reaches it and its workers, as Ctrl-C does
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (dst.is_dir() and any(p.name.startswith(".") for p in dst.rglob("*"))):
        time.sleep(0.01)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "interrupted" in err
    left = [p for p in dst.rglob("*") if p.name.startswith(".") and p.name != ".unidual-prepare.lock"]
    assert left == []


def _after_threaded_swscale(video: Path, then: str) -> list[str]:
    """Run ``then`` in a fresh interpreter whose main thread first ran swscale with its default threads."""
    code = textwrap.dedent(
        f"""
        import av
        with av.open({str(video)!r}) as c:
            for frame in c.decode(video=0):
                frame.reformat(width=300, height=200, format="rgb24")
        """
    ) + textwrap.dedent(then)
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_pool_after_the_parent_decoded_does_not_hang(tmp_path):
    """Issue 28 item 17: forked workers deadlocked in swscale's slice threads (Python 3.12+, PyAV 19)."""
    src = tmp_path / "src"
    _noise_videos(src, 3, frames=10, side=64)
    then = f"""
        from unidual.data.prepare import PrepareOptions, prepare_dataset
        print(prepare_dataset({str(src)!r}, {str(tmp_path / "dst")!r}, PrepareOptions(short_side=16), workers=2)["written"])
        """
    assert _after_threaded_swscale(src / "c0" / "v0.avi", then) == ["3"]


def test_a_second_prepare_into_the_same_folder_is_refused_in_one_line(tmp_path, capsys):
    from unidual.data.mirror import locked

    src, dst = tmp_path / "src", tmp_path / "dst"
    write_video(src / "x.avi", counter_frames(4), fps=10)
    dst.mkdir()
    with locked(dst):
        assert main(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another `unidual data prepare`" in err[0] and f"pid {os.getpid()}" in err[0]
    assert main(["data", "prepare", str(src), str(dst), "--short-side", "16", "--workers", "1"]) == 0  # freed


def test_data_check_and_dataloader_workers_after_a_threaded_parent_do_not_hang(tmp_path):
    """The same for ``data check``'s pool (spawn) and DataLoader workers (fork by default on Linux:
    safe because the readers they run use single-threaded swscale contexts and decoders)."""
    src = tmp_path / "src"
    _noise_videos(src, 4, frames=10, side=64)
    then = f"""
        import pathlib, torch
        from unidual.data.check import check_dataset
        from unidual.data.decode import read_frames
        report = check_dataset({str(src)!r}, workers=2)
        files = sorted(pathlib.Path({str(src)!r}).rglob("*.avi"))
        loader = torch.utils.data.DataLoader(files, batch_size=None, num_workers=2, timeout=120,
                                             collate_fn=lambda p: read_frames(p, [0, 5]).shape)
        print(report["usable"], len(list(loader)))
        """
    assert _after_threaded_swscale(src / "c0" / "v0.avi", then) == ["True", "4"]
