"""Atomic writes (``bayesgmm._io.atomic_write`` and ``write_atomically``) and what uses them."""

import errno
import os
import stat

import pytest

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM
from bayesgmm._io import atomic_write, read_kind, write_atomically


def disk_full():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("name", ["fit.nc", "table.csv.gz", "no-extension"])
def test_the_temporary_file_is_beside_the_destination_with_its_suffix(tmp_path, name):
    path = tmp_path / name
    with atomic_write(path) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp != path
        # savefig and to_csv read the extension
        assert tmp.suffix == os.path.splitext(tmp)[1] == path.suffix
        assert tmp.name.startswith(f".{name}-")  # a leftover names its file
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_successful_write_replaces_the_file_with_ordinary_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_bytes(b"old contents")
    os.chmod(path, 0o600)
    mask = os.umask(0o022)
    try:
        with atomic_write(path) as tmp:
            tmp.write_bytes(b"new")
            assert path.read_bytes() == b"old contents"  # not before the block ends
    finally:
        os.umask(mask)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("error", [disk_full(), KeyboardInterrupt()],
                         ids=["OSError", "KeyboardInterrupt"])
def test_a_write_that_fails_half_way_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path, error):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"the user's result \x00\xff")
    before = path.stat()
    with pytest.raises(type(error)):
        with atomic_write(path) as tmp:
            tmp.write_bytes(b"half of the new")
            raise error
    assert path.read_bytes() == b"the user's result \x00\xff"
    assert path.stat().st_ino == before.st_ino  # the same file, not a copy
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_write_atomically_keeps_the_old_file_when_the_writer_raises(tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"earlier")

    def write(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"\x89HDF\r\n\x1a\n half")
        raise disk_full()

    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, write)
    assert path.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]
    with pytest.raises(FileNotFoundError, match="there is no folder"):
        write_atomically(tmp_path / "missing" / "fit.nc", write)


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"earlier")

    def refuse(src, dst):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="Permission denied"):
        with atomic_write(path) as tmp:
            tmp.write_bytes(b"new")
    assert path.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_em_save_writes_a_checked_file_that_loads(faithful, tmp_path):
    model = GaussianMixtureEM(2, random_state=0).fit(faithful)
    path = tmp_path / "em.nc"
    path.write_text("an older result")
    assert model.save(path) == path
    _, kind = read_kind(path)  # verifies the checksum line first
    assert kind == "bayesgmm.GaussianMixtureEM"
    assert path.read_bytes().endswith(b"\n") and b"bayesgmm-sha256:" in path.read_bytes()[-90:]
    assert GaussianMixtureEM.load(path).get_params() == model.get_params()
    assert [p.name for p in tmp_path.iterdir()] == ["em.nc"]


def test_bayes_save_writes_a_file_that_loads(faithful, tmp_path):
    model = GaussianMixtureBayes(2, random_state=0).fit(faithful, method="map",
                                                       progressbar=False)
    path = model.save(tmp_path / "map.nc")
    loaded = GaussianMixtureBayes.load(path)
    assert (loaded.predict(faithful) == model.predict(faithful)).all()
    assert [p.name for p in tmp_path.iterdir()] == ["map.nc"]
