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


def test_background_writes_reraise_a_failed_write_after_the_others_finish(tmp_path):
    import threading

    from fds.fileio import BackgroundWrites

    release = threading.Event()

    def slow(path):
        release.wait(10)
        atomic_write_bytes(path, [b"slow"])

    def failing():
        raise OSError("disk full")

    writes = BackgroundWrites(2)
    writes.submit(slow, tmp_path / "slow.bin")
    writes.submit(failing)
    release.set()
    with pytest.raises(OSError, match="disk full"):
        writes.wait()
    assert (tmp_path / "slow.bin").read_bytes() == b"slow"  # the other write was waited for, not abandoned
    writes.__exit__(None, None, None)


def test_a_failed_block_waits_for_its_writers_and_keeps_its_own_error(tmp_path):
    import time

    from fds.fileio import BackgroundWrites

    def late(path):
        time.sleep(0.2)
        atomic_write_bytes(path, [b"late"])

    with pytest.raises(KeyError), BackgroundWrites(2) as writes:
        writes.submit(late, tmp_path / "late.bin")
        raise KeyError("the caller's own failure")
    assert (tmp_path / "late.bin").read_bytes() == b"late"  # written before the block's exception left it


def test_background_writes_without_threads_write_at_once(tmp_path):
    from fds.fileio import BackgroundWrites

    with BackgroundWrites(0) as writes:
        writes.submit(atomic_write_bytes, tmp_path / "a.bin", [b"a"])
        assert (tmp_path / "a.bin").read_bytes() == b"a"
        with pytest.raises(OSError, match="now"):
            writes.submit(lambda: (_ for _ in ()).throw(OSError("now")))
    with pytest.raises(ValueError, match="threads"):
        BackgroundWrites(-1)
