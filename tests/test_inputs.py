"""Folder input: every entry is a photo or reported with its own reason; sub-folders are searched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fds.inputs import NoInputError, expand_inputs


def _png(path: Path, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    d = tmp_path / "in"
    _png(d / "a" / "p.png")
    _png(d / "b" / "p.png", 100)
    _png(d / "x.jpg" / "inside.png", 110)  # a folder named like a photo
    _png(d / "IMG_0001", 120)  # an image without a suffix: identified by content
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    (d / "random.heic").write_bytes(os.urandom(256))
    (d / "notes.txt").write_text("not a photo")
    (d / "dangling.jpg").symlink_to(d / "gone.jpg")
    (d / "a" / "loop").symlink_to(d)  # leads back up
    (d / "self.png").symlink_to(d / "self.png")  # a link to itself
    os.mkfifo(d / "pipe.png")
    (d / "out").mkdir()
    _png(d / "out" / "texture.png")  # a previous run's output inside the input folder
    return d


def test_walk_reports_every_entry(tree):
    found = expand_inputs(str(tree), exclude=[tree / "out"])
    names = sorted(p.relative_to(tree).as_posix() for p in found.photos)
    # photos by name are kept even when unreadable: the pipeline says why (animated, not an image)
    assert names == ["IMG_0001", "a/p.png", "anim.gif", "b/p.png", "random.heic", "x.jpg/inside.png"]
    reasons = {e.path.relative_to(tree).as_posix(): (e.reason, e.photo) for e in found.rejected}
    assert set(reasons) == {"notes.txt", "dangling.jpg", "a/loop", "self.png", "pipe.png"}
    assert reasons["notes.txt"][0].startswith("not an image") and not reasons["notes.txt"][1]
    assert "dangling symlink" in reasons["dangling.jpg"][0] and "gone.jpg" in reasons["dangling.jpg"][0]
    assert reasons["dangling.jpg"][1]  # named like a photo: a failed photo
    assert "symlink loop" in reasons["a/loop"][0] and not reasons["a/loop"][1]
    assert "symlink loop" in reasons["self.png"][0] and reasons["self.png"][1]
    assert "not a regular file (a fifo)" in reasons["pipe.png"][0]


def test_recursion_can_be_turned_off(tree):
    found = expand_inputs(str(tree), recursive=False, exclude=[tree / "out"])
    assert sorted(p.name for p in found.photos) == ["IMG_0001", "anim.gif", "random.heic"]
    reasons = {e.path.name: e.reason for e in found.rejected}
    assert reasons["a"] == reasons["x.jpg"] == "a sub-folder: not searched (recursive=false)"


def test_files_globs_and_nothing(tree, tmp_path):
    assert [p.name for p in expand_inputs(str(tree / "a" / "p.png")).photos] == ["p.png"]
    assert len(expand_inputs(str(tree / "*" / "p.png")).photos) == 2
    assert len(expand_inputs([str(tree / "b"), str(tree / "b" / "p.png")]).photos) == 1  # each photo once
    with pytest.raises(NoInputError, match="matches no image"):
        expand_inputs(str(tmp_path / "nothing*.jpg"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("x")
    with pytest.raises(NoInputError, match=r"found only readme.txt: not an image"):
        expand_inputs(str(tmp_path / "docs"))


def test_unreadable_sub_folder_does_not_stop_the_walk(tree, monkeypatch):
    real = os.listdir

    def listdir(path):
        if Path(path).name == "b":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr("fds.inputs.os.listdir", listdir)
    found = expand_inputs(str(tree), exclude=[tree / "out"])
    assert "a/p.png" in {p.relative_to(tree).as_posix() for p in found.photos}
    assert {e.path.name: e.reason for e in found.rejected}["b"] == "cannot list the folder: Permission denied"
