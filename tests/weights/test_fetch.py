"""Fetching published weights: hash checks, the cache, offline and interrupted downloads.

Every URL is a ``file://`` URL (torch.hub's downloader reads them through urllib); the files are
random bytes, since fetching never looks inside them. Nothing touches the network.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest
import torch.hub

from unidual.cli import main as cli
from unidual.weights import WEIGHTS, WeightsError, cache_dir, fetch_weights


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("UNIDUAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def _published(folder: Path, stem: str = "tiny", size: int = 300_000) -> tuple[Path, str]:
    """Random bytes saved torch.hub-style as ``<stem>-<sha256[:8]>.pth``; returns (path, full digest)."""
    data = torch.randint(0, 256, (size,), dtype=torch.uint8, generator=torch.Generator().manual_seed(size)).numpy()
    digest = hashlib.sha256(data.tobytes()).hexdigest()
    path = folder / f"{stem}-{digest[:8]}.pth"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())
    return path, digest


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def test_registry_names_the_published_files():
    tv = WEIGHTS["r2plus1d_18_kinetics400"]
    assert tv.url == "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth" and tv.hash == "91a641e6"
    ig = {w.filename: w.hash for w in WEIGHTS.values() if w.name.startswith("r2plus1d_34")}
    assert ig == {
        "r2plus1d_34_clip8_ig65m_from_scratch-9bae36ae.pth": "9bae36ae",
        "r2plus1d_34_clip8_ft_kinetics_from_ig65m-0aa0550b.pth": "0aa0550b",
        "r2plus1d_34_clip32_ig65m_from_scratch-449a7af9.pth": "449a7af9",
        "r2plus1d_34_clip32_ft_kinetics_from_ig65m-ade133f1.pth": "ade133f1",
    }
    assert {WEIGHTS[n].classes for n in ("r2plus1d_34_8_ig65m", "r2plus1d_34_32_ig65m")} == {359, 487}


def test_right_hash_downloads_once_into_the_cache(tmp_path, cache, register):
    src, digest = _published(tmp_path / "server")
    register("test_weights", src.as_uri())
    got = fetch_weights("test_weights")
    assert got.path == cache / src.name and got.path.read_bytes() == src.read_bytes()
    assert got.sha256 == digest and got.entry is WEIGHTS["test_weights"]
    assert cache_dir() == cache
    src.unlink()  # the second use reads the cache: no download
    assert fetch_weights("test_weights").path == got.path
    assert _leftovers(cache) == [src.name]


def test_wrong_hash_is_refused_and_nothing_is_kept(tmp_path, cache, capsys, register):
    src, _ = _published(tmp_path / "server")
    register("test_weights", src.as_uri(), sha256="0" * 64)
    with pytest.raises(WeightsError, match="refused and removed, the download does not match its hash"):
        fetch_weights("test_weights")
    assert _leftovers(cache) == []  # neither the file nor its .partial
    code = cli(["convert", "test_weights", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not match its hash" in err and "Traceback" not in err
    assert not (tmp_path / "x.pt").exists() and _leftovers(cache) == []


def test_url_outside_the_registry_needs_a_hash(tmp_path, cache):
    src, digest = _published(tmp_path / "server")
    plain = src.with_name("plain.pth")
    src.rename(plain)
    with pytest.raises(WeightsError, match="no hash to check the download against; pass --sha256"):
        fetch_weights(plain.as_uri())
    with pytest.raises(WeightsError, match="does not match its hash"):
        fetch_weights(plain.as_uri(), sha256="ab" * 32)
    assert _leftovers(cache) == []
    assert fetch_weights(plain.as_uri(), sha256=digest.upper()).sha256 == digest  # full digest, any case
    with pytest.raises(WeightsError, match="expected 8 to 64 hexadecimal digits"):
        fetch_weights(plain.as_uri(), sha256="xyz")


def test_url_with_a_hash_prefix_in_its_name_is_checked(tmp_path, cache):
    src, _ = _published(tmp_path / "server")
    bad = src.with_name("tiny-deadbeef.pth")
    src.rename(bad)  # torch.hub-style name whose prefix the content does not have
    with pytest.raises(WeightsError, match='expected "deadbeef"'):
        fetch_weights(bad.as_uri())
    assert _leftovers(cache) == []


def test_missing_file_fails_in_one_line_naming_url_and_where_to_put_it(tmp_path, cache, capsys, register):
    url = (tmp_path / "server" / "gone-12345678.pth").as_uri()
    register("test_weights", url)
    code = cli(["convert", "test_weights", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot download {url}" in err
    assert f"put it at {cache / 'gone-12345678.pth'}" in err
    assert _leftovers(cache) == []


def _cut_after(keep: int):
    """urlopen whose response drops the connection once ``keep`` bytes went through (a real file:// read)."""
    real = urllib.request.urlopen

    def urlopen(req, *args, **kwargs):
        response = real(req, *args, **kwargs)
        sent, read = 0, response.read

        def cut_read(n: int = -1) -> bytes:
            nonlocal sent
            if sent >= keep:
                raise ConnectionResetError(104, "Connection reset by peer")
            chunk = read(n)
            sent += len(chunk)
            return chunk

        response.read = cut_read
        return response

    return urlopen


def test_interrupted_download_leaves_nothing_then_a_retry_succeeds(tmp_path, monkeypatch, cache, register):
    src, digest = _published(tmp_path / "server", size=3_000_000)
    register("test_weights", src.as_uri())
    with monkeypatch.context() as m:
        m.setattr(torch.hub, "urlopen", _cut_after(1_000_000))
        with pytest.raises(WeightsError, match="ConnectionResetError"):
            fetch_weights("test_weights")
    assert _leftovers(cache) == []  # the partial temp file was removed, no file took the final name
    got = fetch_weights("test_weights")  # retry
    assert got.sha256 == digest and got.path.read_bytes() == src.read_bytes()


def test_truncated_file_in_the_cache_is_replaced(tmp_path, cache, capsys, register):
    """A file cut short at the final name (copied by hand, a foreign tool) and a stale temp of a killed run."""
    src, digest = _published(tmp_path / "server")
    register("test_weights", src.as_uri())
    cache.mkdir(parents=True)
    (cache / src.name).write_bytes(src.read_bytes()[:1000])
    (cache / f"{src.name}.0123abcd.partial").write_bytes(src.read_bytes()[:500])
    got = fetch_weights("test_weights")
    assert got.sha256 == digest and got.path.read_bytes() == src.read_bytes()
    assert "fails its hash" in capsys.readouterr().err


def test_local_file_is_used_in_place_and_checked(tmp_path, cache):
    src, digest = _published(tmp_path / "mine")
    got = fetch_weights(src)
    assert got.path == src and got.sha256 == digest and _leftovers(cache) == []
    assert fetch_weights(src, sha256=digest[:12]).path == src
    with pytest.raises(WeightsError, match="does not match the expected 00000000"):
        fetch_weights(src, sha256="00000000")
    renamed = src.with_name("tiny-00000000.pth")  # a name-prefix the content lacks
    src.rename(renamed)
    with pytest.raises(WeightsError, match="does not match the expected 00000000"):
        fetch_weights(renamed)


def test_unknown_name_is_one_clear_line(capsys, tmp_path):
    code = cli(["convert", "no_such_weights", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "no such weights file, URL or known weights name" in err and "r2plus1d_18_kinetics400" in err


def test_weights_command_lists_the_registry(tmp_path, cache, capsys, register):
    import json

    src, _ = _published(tmp_path / "server")
    register("test_weights", src.as_uri())
    fetch_weights("test_weights")
    assert cli(["weights"]) == 0
    out = capsys.readouterr().out
    for w in WEIGHTS.values():
        assert w.name in out and w.url in out
    assert "licence:" in out and "112" in out
    assert cli(["weights", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["test_weights"]["cached"] is True and rows["r2plus1d_18_kinetics400"]["cached"] is False
    assert rows["r2plus1d_34_32_kinetics"]["frames"] == 32 and rows["r2plus1d_34_32_kinetics"]["hash"] == "ade133f1"
