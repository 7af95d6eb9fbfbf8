"""fds.fileio: a file or folder is complete or absent, never half-written."""

import pytest

from fds.fileio import atomic_folder, atomic_write_bytes


def test_atomic_write_bytes_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, [b"old"])

    def chunks():
        yield b"new, partial"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, chunks())
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temp file left behind


def test_atomic_folder_replaces_complete_folder_or_nothing(tmp_path):
    folder = tmp_path / "photo"
    with atomic_folder(folder) as tmp:
        (tmp / "x.txt").write_text("first")
        assert not folder.exists()  # readers see nothing until the block succeeds
    assert (folder / "x.txt").read_text() == "first"

    with pytest.raises(RuntimeError), atomic_folder(folder) as tmp:
        (tmp / "x.txt").write_text("second, half")
        raise RuntimeError("killed")
    assert (folder / "x.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo"]

    with atomic_folder(folder) as tmp:
        (tmp / "y.txt").write_text("third")
    assert sorted(p.name for p in folder.iterdir()) == ["y.txt"]  # replaced, not merged

    with pytest.raises(FileExistsError), atomic_folder(folder, overwrite=False):
        pass


def test_a_failed_write_names_its_file(tmp_path, monkeypatch):
    """A write that fails (disk full) raises an OSError naming the file, not the anonymous temp file."""
    import errno
    import io
    import os

    class FullDisk(io.BytesIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    real = os.fdopen
    monkeypatch.setattr("fds.fileio.os.fdopen", lambda fd, mode: (real(fd, mode).close(), FullDisk())[1])
    with pytest.raises(OSError, match=r"No space left on device while writing: '.*texture.png'") as err:
        atomic_write_bytes(tmp_path / "texture.png", [b"x"])
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "texture.png")
    assert list(tmp_path.iterdir()) == []
