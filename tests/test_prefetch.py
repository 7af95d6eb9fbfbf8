"""Folder runs with the proxy stage in worker processes (``workers=``): the same proxies, files and reasons as one
photo after the other, in input order; a bad photo or a dying worker costs only its photo; workers never hold the
run's output lock, and a stopped or killed run leaves no partial photo folder and no worker behind."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize
from PIL import Image

from fds.outputs import OutputFolder
from fds.pipeline import infer
from fds.proxy.prefetch import ProxyWorkerError, prefetch_proxies
from fds.proxy.stage import ProxyStage
from fds.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]
FAST = ["detail.resolution=256", "bake.max_triangles=20000", "preview.height=128", "device=cpu",
        "detail.float_format=npy"]
# small shared photos (≤ 510×800 px)
GOOD = ("helen_121204156_1.jpg", "lfpw_image_0002.png", "takeo.png")


def _cfg(tmp: Path, inputs: Path, out: Path, ckpt: Path, *overrides: str):
    with initialize(version_base="1.3", config_path="../configs"):
        return compose(config_name="infer", overrides=[
            f"input={inputs}", f"output={out}", f"ckpt={ckpt}", f"cache_dir={tmp / 'cache'}",
            f"paths.output_dir={tmp}", *FAST, *overrides])


@pytest.fixture
def photos(tmp_path, labelled_dir) -> Path:
    """A folder in walk order: a good photo, a broken JPEG, a good one, a wall (no face), a good one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    a, c, e = GOOD
    shutil.copy(labelled_dir / a, folder / f"a_{a}")
    (folder / "b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shutil.copy(labelled_dir / c, folder / f"c_{c}")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "d_wall.png")
    shutil.copy(labelled_dir / e, folder / f"e_{e}")
    return folder


def _same(a, b, where: str = "proxy") -> None:
    """``a`` and ``b`` equal bit for bit (arrays: dtype and every value, NaN where NaN), dataclasses field by field
    (timings excepted)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            if f.name != "timings_s":
                _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    else:
        assert a == b, where


def test_workers_give_the_in_process_proxies_in_input_order(photos):
    """Two workers (one torch thread each) against this process with two torch threads: the same proxies bit for
    bit, the same errors, in input order (the wall, quickly found faceless, is usually done before the photo
    ahead of it)."""
    paths = sorted(photos.iterdir())
    stage = ProxyStage()  # no cache: both runs compute every proxy
    with torch_threads(2):
        ref = list(prefetch_proxies(stage, paths, workers=0))
    got = list(prefetch_proxies(stage, paths, workers=2))
    assert [o.path for o in ref] == [o.path for o in got] == paths
    for r, g in zip(ref, got, strict=True):
        if r.error is not None:
            assert type(g.error) is type(r.error) and str(g.error) == str(r.error), r.path
            continue
        assert g.error is None, (g.path, g.error)
        rs, gs = r.get(), g.get()
        assert len(rs) == len(gs) == 1
        _same(rs[0], gs[0])
    errors = {o.path.name: str(o.error) for o in got if o.error is not None}
    assert errors.keys() == {"b_broken.jpg", "d_wall.png"}
    assert "cannot decode image" in errors["b_broken.jpg"] and "no face detected" in errors["d_wall.png"]


@pytest.mark.slow
def test_workers_write_what_one_photo_after_the_other_writes(tmp_path, photos, tiny_checkpoint):
    """Through infer: every output file of every photo the same bytes with and without workers, result.json the
    same but for timings, summary.json the same (the failures with their reasons, in input order)."""
    runs = {}
    for workers in (0, 1):
        out = tmp_path / f"out{workers}"
        status = infer(_cfg(tmp_path / f"t{workers}", photos, out, tiny_checkpoint, f"workers={workers}"))
        assert status == 1  # the broken photo and the wall fail, the others do not
        runs[workers] = out
    names = {w: sorted(p.name for p in runs[w].iterdir()) for w in runs}
    assert names[0] == names[1] == [".fds-run.lock", *(f"{k}_{Path(n).stem}" for k, n in zip("ace", GOOD, strict=True)),
                                     "summary.json"]
    for photo in names[0][1:-1]:
        files = sorted(p.name for p in (runs[0] / photo).iterdir())
        assert files == sorted(p.name for p in (runs[1] / photo).iterdir())
        for name in files:
            a, b = ((runs[w] / photo / name).read_bytes() for w in (0, 1))
            if name == "result.json":
                info = [json.loads(x) for x in (a, b)]
                for i in info:
                    del i["timings_s"]
                assert info[0] == info[1], photo
            else:
                assert a == b, f"{photo}/{name}"
    summaries = [json.loads((runs[w] / "summary.json").read_text()) for w in (0, 1)]
    for s in summaries:
        [run] = s.pop("runs")  # each record names its run: the two runs differ there only
        for e in s["succeeded"]:
            e["outputs"] = [Path(o).name for o in e["outputs"]]
        for e in s["succeeded"] + s["failed"] + s["skipped"]:
            assert e.pop("run") == run
    assert summaries[0] == summaries[1]
    assert [Path(f["image"]).name for f in summaries[1]["failed"]] == ["b_broken.jpg", "d_wall.png"]
    assert [Path(e["image"]).name for e in summaries[1]["succeeded"]] == [f"{k}_{n}"
                                                                         for k, n in zip("ace", GOOD, strict=True)]


CRASHING_STAGE = """
import multiprocessing
import os
from pathlib import Path

from fds.proxy.stage import ProxyStage


class CrashingStage(ProxyStage):
    def __call__(self, path):
        if Path(path).name == "d_wall.png" and multiprocessing.parent_process() is not None:
            os._exit(1)  # as a crash in native code (or the out-of-memory killer) ends a worker
        return super().__call__(path)
"""


def test_a_dying_worker_fails_its_photo_only(tmp_path, photos, monkeypatch):
    """A worker that dies on d_wall.png fails that photo with a reason that says so. The photo the other worker
    had in flight dies with the pool but is retried, not blamed; the rest go on in a fresh pool, in order."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "fds_crashing_stage.py").write_text(CRASHING_STAGE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))  # the workers import the stage's class by name
    from fds_crashing_stage import CrashingStage

    stage = CrashingStage(cache_dir=tmp_path / "cache")
    # c is computed here; a (the slowest) and d start together in the two workers
    paths = [photos / n for n in ("c_lfpw_image_0002.png", "a_helen_121204156_1.jpg", "d_wall.png",
                                  "b_broken.jpg", "e_takeo.png")]
    outcomes = list(prefetch_proxies(stage, paths, workers=2))
    assert [o.path for o in outcomes] == paths
    by_name = {o.path.name: o for o in outcomes}
    assert isinstance(by_name["d_wall.png"].error, ProxyWorkerError)
    assert "died on this photo" in str(by_name["d_wall.png"].error)
    assert "cannot decode image" in str(by_name["b_broken.jpg"].error)
    for name in ("c_lfpw_image_0002.png", "a_helen_121204156_1.jpg", "e_takeo.png"):
        [face] = by_name[name].get()
        assert face.image_path.endswith(name) and face.fit.reprojection_error_px < 10


def test_workers_do_not_hold_the_output_lock(tmp_path, photos):
    """The run holds output= while its workers run; closing it (or dying) frees output= at once, whatever the
    workers are doing (a worker that kept the lock would block the next run until it exits)."""
    folder = OutputFolder(tmp_path / "out").open()
    with closing(prefetch_proxies(ProxyStage(), sorted(photos.iterdir()), workers=1)) as proxies:
        next(proxies)  # the first photo here; the worker has the next ones in hand
        folder.close()
        with OutputFolder(tmp_path / "out"):
            pass


def test_workers_setting_is_checked_before_any_work(tmp_path, photos, tiny_checkpoint, capsys):
    assert infer(_cfg(tmp_path, photos, tmp_path / "out", tiny_checkpoint, "workers=-1")) == 2
    assert "workers=-1 is invalid" in capsys.readouterr().err


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (the fork server, its workers, multiprocessing's resource tracker)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += kids - found
            found |= kids
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited (PID 1 in a container may never reap it)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_a_stopped_run_leaves_no_partial_photo_and_no_worker(tmp_path, photos, tiny_checkpoint, how):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or SIGKILL while the first photo is
    written and its worker computes the next proxies: no photo folder that is not complete, no worker left
    running, output= free at once; Ctrl-C also leaves no temporary folder."""
    out = tmp_path / "out"
    args = [f"input={photos}", f"output={out}", f"ckpt={tiny_checkpoint}", f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}", "workers=1", *FAST]
    proc = subprocess.Popen([sys.executable, str(ROOT / "infer.py"), *args], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 1200
        while not any(out.glob(".a_*.part")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before its first photo was being written"
        workers = _descendants(proc.pid)
        assert workers, "no proxy worker is running"
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=600)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 60  # orphans notice within about a second
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(w) for w in workers), "a proxy worker outlived its run"
    for folder in (p for p in out.iterdir() if not p.name.startswith(".")):  # only photos complete before the signal
        assert folder.is_dir() and "result.json" in json.loads((folder / "result.json").read_text())["files"]
    leftovers = [p.name for p in out.iterdir() if p.name.endswith((".part", ".old"))]
    assert not leftovers or how == "kill", leftovers  # a killed run cannot clean up: the next run does
    with OutputFolder(out):  # free at once
        assert not any(p.name.endswith((".part", ".old")) for p in out.iterdir())
