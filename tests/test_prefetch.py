"""Folder runs with the proxy stage in worker processes: the same files and reasons as one photo after the other,
a dying worker costs only its photo, and workers never hold the run's output lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize
from PIL import Image

from fds.outputs import OutputFolder
from fds.pipeline import infer
from fds.proxy.prefetch import ProxyWorkerError, prefetch_proxies
from fds.proxy.stage import ProxyStage

FAST = ["detail.resolution=256", "bake.max_triangles=20000", "preview.height=128", "device=cpu",
        "detail.float_format=npy"]


def _cfg(tmp: Path, inputs: Path, out: Path, ckpt: Path, *overrides: str):
    with initialize(version_base="1.3", config_path="../configs"):
        return compose(config_name="infer", overrides=[
            f"input={inputs}", f"output={out}", f"ckpt={ckpt}", f"cache_dir={tmp / 'cache'}",
            f"paths.output_dir={tmp}", *FAST, *overrides])


@pytest.fixture
def photos(tmp_path, astronaut, grace_hopper_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(astronaut).save(folder / "a_astronaut.png")
    (folder / "b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "c_wall.png")
    shutil.copy(grace_hopper_path, folder / "d_grace.jpg")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("result.json", "summary.json", ".fds-run.lock")}


@pytest.mark.slow
def test_workers_write_what_one_photo_after_the_other_writes(tmp_path, photos, tiny_checkpoint):
    """Each proxy computed in a worker (one torch thread, a fresh dlib/eos) gives the same bytes in every output
    file as the in-process run, the same failures with the same reasons, and the same summary."""
    runs = {}
    for workers in (0, 1):
        out = tmp_path / f"out{workers}"
        status = infer(_cfg(tmp_path / f"t{workers}", photos, out, tiny_checkpoint, f"workers={workers}"))
        assert status == 1  # the broken photo and the wall fail, the others do not
        runs[workers] = out
    a, b = _files(runs[0]), _files(runs[1])
    assert sorted({k.split("/")[0] for k in a}) == ["a_astronaut", "d_grace"]
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name
    summaries = [json.loads((runs[w] / "summary.json").read_text()) for w in (0, 1)]
    assert summaries[0]["failed"] == summaries[1]["failed"]
    reasons = {Path(f["image"]).name: f["reason"] for f in summaries[1]["failed"]}
    assert "cannot decode image" in reasons["b_broken.jpg"] and "no face detected" in reasons["c_wall.png"]
    for s in summaries:
        for e in s["succeeded"]:
            e["outputs"] = [Path(o).name for o in e["outputs"]]
    assert summaries[0]["succeeded"] == summaries[1]["succeeded"]


def test_a_dying_worker_fails_its_photo_only(tmp_path, photos, monkeypatch):
    """A worker killed in native code (here: it exits on c_wall.png) fails that photo with a reason that says
    so; a fresh pool computes the others, in order."""
    real = ProxyStage.__call__

    def crash_on_wall(self, path):
        if Path(path).name == "c_wall.png" and multiprocessing.parent_process() is not None:
            os._exit(1)
        return real(self, path)

    monkeypatch.setattr(ProxyStage, "__call__", crash_on_wall)  # inherited by the forked workers
    stage = ProxyStage(cache_dir=tmp_path / "cache")
    paths = sorted(photos.iterdir())
    outcomes = list(prefetch_proxies(stage, paths, workers=1))
    assert [o.path for o in outcomes] == paths
    by_name = {o.path.name: o for o in outcomes}
    assert isinstance(by_name["c_wall.png"].error, ProxyWorkerError)
    assert "died on this photo" in str(by_name["c_wall.png"].error)
    assert "cannot decode image" in str(by_name["b_broken.jpg"].error)
    for name in ("a_astronaut.png", "d_grace.jpg"):
        [face] = by_name[name].get()
        assert face.image_path.endswith(name) and face.reprojection_error_px < 10


def _sleep(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


def test_forked_workers_do_not_hold_the_output_lock(tmp_path):
    """A run's workers are forked while it holds output=; they must not keep the lock (a killed run would leave
    output= locked until its orphaned workers exit)."""
    folder = OutputFolder(tmp_path / "out").open()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        busy = pool.submit(_sleep, 3.0)
        folder.close()  # the run ends (or dies) while its worker is still busy
        with OutputFolder(tmp_path / "out"):  # the next run gets the folder at once
            assert not busy.done()
        assert busy.result() != os.getpid()
