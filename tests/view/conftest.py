"""A real inference output for the viewer tests: the shipped checkpoint on grace_hopper.jpg, written once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hopper_output(tmp_path_factory, grace_hopper_path) -> Path:
    """``infer``'s outputs for grace_hopper.jpg (shipped checkpoint; no flip averaging, a small baked mesh and
    preview: the viewer rebuilds its display meshes from proxy.obj and the displacement map anyway)."""
    from fds.pipeline import DetailPipeline, DetailSettings
    from fds.resources import shipped_checkpoint

    out = tmp_path_factory.mktemp("hopper_run")
    settings = DetailSettings(flip_average=False, max_triangles=30_000, formats=("obj",), preview_height=128)
    pipeline = DetailPipeline(shipped_checkpoint(), cache_dir=out / "cache", settings=settings, device="cpu")
    [outcome] = pipeline.run([grace_hopper_path], out / "run")
    assert outcome.ok, outcome.reason
    return out / "run"
