"""The proxy cache is keyed by content, exact, and heals: a bad entry is logged, recomputed and replaced."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest

from fds.proxy.cache import ARRAYS, CACHE_VERSION, SCALARS, CacheEntryError, read_entry
from fds.proxy.stage import ProxyResult, ProxyStage, file_sha1

CFG = {"unwrap": {"resolution": 128, "backend": "torch"}, "expression": {"mode": "init", "source": "geometry"}}


def _assert_same(a, b, image_path=None, ignore=()):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ignore:
            continue
        if f.name == "image_path":
            assert y == (image_path if image_path is not None else x)
        elif dataclasses.is_dataclass(x):  # the fit and the unwrap, field by field
            assert type(x) is type(y), f.name
            _assert_same(x, y, ignore=ignore)
        elif f.name == "landmark_error_px":
            np.testing.assert_array_equal(x, y)  # NaN where unmapped, equal elsewhere
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y and type(x) is type(y), f.name


@pytest.fixture(scope="module")
def cached(tmp_path_factory, labelled_dir):
    tmp = tmp_path_factory.mktemp("cache")
    photo = tmp / "a.png"
    shutil.copy(labelled_dir / "lfpw_image_0002.png", photo)
    stage = ProxyStage(CFG, cache_dir=tmp / "cache")
    (fresh,) = stage(photo)
    folder = tmp / "cache" / stage.cache_key(file_sha1(photo))
    return tmp, photo, stage, fresh, folder


def test_cached_result_equals_the_fresh_one_bit_for_bit(cached):
    tmp, photo, stage, fresh, folder = cached
    (again,) = stage(photo)
    _assert_same(fresh, again)
    assert fresh.uv.confidence.dtype == np.float32 and 0 < fresh.uv.confidence.mean() < 1


def test_entry_remembers_content_not_paths(cached):
    tmp, photo, stage, fresh, folder = cached
    assert str(photo) not in "".join(p.read_text(errors="ignore") for p in folder.iterdir() if p.suffix == ".json")
    moved = tmp / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    shutil.copy(photo, moved)
    (again,) = stage(moved)  # same content: the same entry, naming the photo it was asked for
    _assert_same(fresh, again, image_path=str(moved))


def test_files_keep_the_version_2_layout(cached, tmp_path):
    """Every field of the result, its fit and its unwrap is stored, under the flat names CACHE_VERSION 2 has always
    used (version 3 added ``detector_score``): entries written before the result held a FitResult and an
    UnwrapResult (and photo-scan samples' ``proxy/`` folders, the same files) stay readable, version-2 files with
    ``detector_score`` None. Renaming a stored field needs a new CACHE_VERSION."""
    _, _, _, fresh, folder = cached
    stored = {(part, name) for part, name in (ARRAYS | SCALARS).values()}
    fields = {("", f.name) for f in dataclasses.fields(fresh) if f.name not in ("image_path", "fit", "uv")}
    fields |= {(part, f.name) for part in ("fit", "uv") for f in dataclasses.fields(getattr(fresh, part))}
    assert stored == fields and len(stored) == len(ARRAYS) + len(SCALARS)
    with np.load(folder / "face0.npz") as z:
        assert set(z.files) == {"box_px", "landmarks_px", "prior_expr", "vertices_mm", "id_coeffs", "expr_coeffs",
                                "rotation", "translation_mm", "modelview", "projection", "landmark_error_px",
                                "uv_texture", "visibility", "confidence"}
    assert set(json.loads((folder / "face0.json").read_text())) == {
        "image_sha1", "face_index", "image_size", "detector", "detector_score", "emotion_probs", "expression_mode",
        "face_model", "scale_px_per_mm", "yaw_pitch_roll_deg", "reprojection_error_px", "timings_s"}
    assert CACHE_VERSION == 3 and isinstance(fresh.detector_score, float) and fresh.detector_score > 0
    v2 = tmp_path / "v2"  # a photo-scan sample's proxy/ folder written by version 2
    shutil.copytree(folder, v2)
    meta = json.loads((v2 / "face0.json").read_text())
    del meta["detector_score"]
    (v2 / "face0.json").write_text(json.dumps(meta))
    _assert_same(fresh, ProxyResult.load(v2, image_path=fresh.image_path), ignore=("detector_score",))
    assert ProxyResult.load(v2).detector_score is None


@pytest.mark.parametrize("damage", ["truncated npz", "empty done.json", "edited json", "old version",
                                    "other photo", "missing file"])
def test_bad_entries_are_refused_with_a_reason(cached, tmp_path, damage):
    _, photo, _, _, folder = cached
    bad = tmp_path / folder.name
    shutil.copytree(folder, bad)
    done = json.loads((bad / "done.json").read_text())
    if damage == "truncated npz":
        data = (bad / "face0.npz").read_bytes()
        (bad / "face0.npz").write_bytes(data[: len(data) // 2])
    elif damage == "empty done.json":
        (bad / "done.json").write_text("")
    elif damage == "edited json":
        meta = json.loads((bad / "face0.json").read_text())
        meta["scale_px_per_mm"] *= 1.01
        (bad / "face0.json").write_text(json.dumps(meta))
    elif damage == "old version":
        (bad / "done.json").write_text(json.dumps({"num_faces": 1, "version": 1}))
    elif damage == "other photo":
        (bad / "done.json").write_text(json.dumps({**done, "image_sha1": "0" * 40}))
    else:
        (bad / "face0.json").unlink()
    with pytest.raises(CacheEntryError):
        read_entry(bad, file_sha1(photo), str(photo), ProxyResult)


def test_a_corrupt_entry_is_logged_recomputed_and_replaced(cached, caplog):
    tmp, photo, stage, fresh, folder = cached
    data = (folder / "face0.npz").read_bytes()
    (folder / "face0.npz").write_bytes(data[: len(data) // 3])
    with caplog.at_level(logging.WARNING, logger="fds.proxy.stage"):
        (healed,) = stage(photo)
    assert "unusable" in caplog.text and folder.name in caplog.text and "checksum" in caplog.text
    _assert_same(fresh, healed, image_path=str(photo), ignore=("timings_s",))  # recomputed: other timings
    assert read_entry(folder, fresh.image_sha1, str(photo), ProxyResult) is not None  # replaced by a valid entry
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []  # no temporaries left
