"""Before/after on one real photo: the default (fast) detail and normal-map paths against the plain references
they replaced, with the shipped checkpoint on grace_hopper."""

from __future__ import annotations

import matplotlib.cbook
import numpy as np
import pytest
import torch

from fds.demo import SHIPPED_CHECKPOINT
from fds.detail import DetailPredictor
from fds.export.maps import encode_normal_map
from fds.export.normal_maps import normal_maps, normal_maps_reference
from fds.pipeline import DetailPipeline


@pytest.mark.slow
def test_grace_hopper_maps_match_the_reference_paths(tmp_path):
    """Displacement: the BN-folded channels-last network with shared windows predicted once against the module
    itself predicting every zone's windows. Float32 only: reordered sums in 26 layers (≤ 2,048 terms each,
    ~1.4e-5 relative, see tests/models/test_fusion.py) and in the Gaussian stitch (≤ 32 terms), on outputs in
    [−1, 1] network units: ≤ 5e-5 units = 2.5e-5 mm at 0.5 mm per unit. Normal maps of that displacement on the
    fitted proxy: the same formulas in another order, ≤ 1e-5, so the 8-bit files differ by at most one level."""
    torch.manual_seed(0)
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    pipe = DetailPipeline(SHIPPED_CHECKPOINT, cache_dir=tmp_path / "cache", device="cpu")
    result, fm = pipe.stage(photo)[0], pipe.stage.face_model
    fast = pipe.predictor.full_map(result.uv.texture, result.fit)  # what inference runs
    ref = DetailPredictor(pipe.predictor.module, fm, fused=False, shared_windows=False).full_map(result.uv.texture,
                                                                                                result.fit)
    np.testing.assert_array_equal(fast.coverage, ref.coverage)
    assert np.abs(ref.displacement_mm).max() > 0.05  # real relief to compare
    np.testing.assert_allclose(fast.displacement_mm, ref.displacement_mm, atol=2.5e-5)

    args = (ref.displacement_mm, result.fit.vertices_mm, fm.triangles, fm.uv, fm.uv_triangles, ref.coverage)
    a, b = normal_maps(*args), normal_maps_reference(*args)
    np.testing.assert_array_equal(a.coverage, b.coverage)
    for name in ("tangent", "object"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5)
        levels = np.abs(encode_normal_map(getattr(a, name)).astype(int) - encode_normal_map(getattr(b, name)))
        assert levels.max() <= 1 and (levels > 0).mean() < 1e-3


@pytest.mark.slow
def test_writer_threads_write_the_same_files(tmp_path):
    """Encoding the files on writer threads (the default) changes when they are written, not what: every file of
    grace_hopper's face is byte-identical to writing each in turn (result.json aside: it holds the timings)."""
    import dataclasses
    import json

    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    pipe = DetailPipeline(SHIPPED_CHECKPOINT, cache_dir=tmp_path / "cache", device="cpu")
    assert pipe.settings.writer_threads > 0  # the default uses threads
    result = pipe.stage(photo)[0]
    outs = {}
    for threads in (0, pipe.settings.writer_threads):
        pipe.settings = dataclasses.replace(pipe.settings, writer_threads=threads)
        out = tmp_path / f"w{threads}"
        out.mkdir()
        info = pipe.write_face(result, out)
        assert {"detail", "maps", "bake", "preview", "files"} <= set(info["timings_s"])
        outs[threads] = out
    a, b = outs.values()
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "detailed.glb" in names
    for name in names:
        if name != "result.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ja, jb = (json.loads((o / "result.json").read_text()) for o in (a, b))
    assert {k: v for k, v in ja.items() if k != "timings_s"} == {k: v for k, v in jb.items() if k != "timings_s"}
