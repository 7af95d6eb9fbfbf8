"""Sample folder format: round trip, atomic writes, clear errors for malformed folders."""

import json

import numpy as np
import pytest

from fds.data.sample_io import SampleFormatError, ScanSample, list_samples, read_sample, write_sample


def _sample(r=16):
    rng = np.random.default_rng(0)
    return ScanSample(texture=rng.integers(0, 255, (r, r, 3), dtype=np.uint8),
                      displacement_mm=rng.normal(0, 0.1, (r, r)).astype(np.float32), mask=np.ones((r, r), bool),
                      visibility=np.ones((r, r), np.float32),
                      position_mm=rng.normal(0, 50, (r, r, 3)).astype(np.float32),
                      normal=np.tile(np.array([0, 0, 1], np.float32), (r, r, 1)), meta={"seed": 3})


def test_round_trip(tmp_path):
    s = _sample()
    write_sample(tmp_path / "a", s)
    t = read_sample(tmp_path / "a")
    assert np.array_equal(t.texture, s.texture)
    assert np.array_equal(t.displacement_mm, s.displacement_mm)
    assert np.array_equal(t.position_mm, s.position_mm)
    assert t.meta["seed"] == 3 and t.meta["resolution"] == 16
    assert list_samples(tmp_path) == [tmp_path / "a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    with pytest.raises(FileExistsError):
        write_sample(tmp_path / "a", s)


@pytest.mark.parametrize("damage, needle", [
    (lambda d: (d / "maps.npz").unlink(), "maps.npz"),
    (lambda d: (d / "texture.png").write_bytes(b"not a png"), "texture.png"),
    (lambda d: (d / "sample.json").write_text("{broken"), "sample.json"),
    (lambda d: (d / "sample.json").write_text(json.dumps({"format": "fds-scan-sample", "version": 1,
                                                          "resolution": 32})), "texture.png"),
    (lambda d: np.savez(d / "maps.npz", displacement_mm=np.zeros((16, 16))), "maps.npz"),
])
def test_malformed_sample_names_the_file(tmp_path, damage, needle):
    folder = write_sample(tmp_path / "s", _sample())
    damage(folder)
    with pytest.raises(SampleFormatError, match=needle):
        read_sample(folder)
