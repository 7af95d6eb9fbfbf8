"""A corpus of bad inputs and faults, built at test time, through infer: every entry reported with its reason,
nothing written outside output=, no partial photo folder, a killed run completed by a rerun bit for bit.

A tiny network (``tiny_checkpoint``) keeps the detail stage cheap: these tests are about what happens around it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize
from PIL import Image

from fds.pipeline import infer
from fds.proxy.quality import simulate_exposure

ROOT = Path(__file__).resolve().parents[1]


FAST = ["detail.flip_average=false", "detail.resolution=256", "bake.max_triangles=20000", "preview.height=128",
        "device=cpu"]


def _cfg(tmp: Path, inputs: Path, out: Path, ckpt: Path, *overrides: str):
    with initialize(version_base="1.3", config_path="../configs"):
        return compose(config_name="infer", overrides=[
            f"input={inputs}", f"output={out}", f"ckpt={ckpt}", f"cache_dir={tmp / 'cache'}",
            f"paths.output_dir={tmp}", *FAST, *overrides])


def build_corpus(root: Path, face: np.ndarray) -> dict[str, str]:
    """Every bad input of issue 16 (and two good photos); returns {relative path: expected reason fragment}."""
    for d in ("a", "b", "c", "x.jpg"):
        (root / d).mkdir(parents=True)
    Image.fromarray(face).save(root / "a" / "...jpg", format="JPEG", quality=95)  # stem "..": a traversal
    dark = simulate_exposure(face, -7)  # 7 stops under: median face luma 12 of 255
    Image.fromarray(dark).save(root / "b" / "...jpg", format="JPEG", quality=95)  # same stem, dark
    shutil.copy(root / "a" / "...jpg", root / "c" / "full.jpg")  # the disk fills while its outputs are written
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(root / "tiny.png")
    frames = [Image.fromarray(np.roll(face, s, 1)) for s in (0, 8, 16)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    (root / "random.heic").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(root / "wall.png")
    (root / "notes.txt").write_text("shoot list")
    (root / "x.jpg" / "readme.txt").write_text("a folder named like a photo")
    (root / "dangling.jpg").symlink_to(root / "deleted.jpg")
    (root / "a" / "loop").symlink_to(root)
    os.mkfifo(root / "pipe.png")
    return {
        "c/full.jpg": "No space left on device while writing",
        "tiny.png": "photo is 1×1 px: too small to hold a face",
        "anim.gif": "an animated or multi-page GIF (3 frames)",
        "random.heic": "not an identifiable image",
        "truncated.jpg": "cannot decode image",
        "wall.png": "no face detected",
        "dangling.jpg": "dangling symlink: points to",
        "pipe.png": "not a regular file (a fifo)",
        "notes.txt": "not an image",
        "x.jpg/readme.txt": "not an image",
        "a/loop": "symlink loop",
    }


def _disk_full_for(name: str, monkeypatch) -> None:
    """Writes into the temporary folder of the photo named ``name`` fail as on a full disk."""
    real = os.fdopen

    class FullDisk(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode and f"/.{name}." in os.readlink(f"/proc/self/fd/{fd}"):
            os.close(fd)
            return FullDisk()
        return real(fd, mode, *args, **kwargs)

    monkeypatch.setattr("fds.fileio.os.fdopen", fdopen)


@pytest.mark.slow
def test_bad_input_corpus_reports_every_entry(tmp_path, tiny_checkpoint, astronaut, monkeypatch):
    corpus, out = tmp_path / "runs" / "corpus", tmp_path / "runs" / "out"
    expected = build_corpus(corpus, astronaut)
    _disk_full_for("full", monkeypatch)
    assert infer(_cfg(tmp_path, corpus, out, tiny_checkpoint)) == 1
    summary = json.loads((out / "summary.json").read_text())

    def rel(p: str) -> str:
        return Path(p).relative_to(corpus).as_posix()

    reported = {rel(e["image"]): e["reason"] for e in summary["failed"]}
    reported |= {rel(e["path"]): e["reason"] for e in summary["skipped"]}
    for entry, reason in expected.items():
        assert reason in reported.get(entry, ""), (entry, reported.get(entry))
    succeeded = {rel(e["image"]): e for e in summary["succeeded"]}
    assert set(succeeded) == {"a/...jpg", "b/...jpg"}
    assert set(reported) | set(succeeded) == set(expected) | set(succeeded)  # nothing else, nothing missing
    # the "..jpg" stems became safe names inside output=; nothing was written beside it
    assert sorted(Path(p).name for e in succeeded.values() for p in e["outputs"]) == ["photo", "photo_2"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["corpus", "out"]
    assert all(Path(p).parent == out and (Path(p) / "result.json").is_file()
               for e in succeeded.values() for p in e["outputs"])
    # the photo that hit the full disk left no folder and no temporary behind, and its reason names the file
    assert str(out / "full") in reported["c/full.jpg"]
    assert sorted(p.name for p in out.iterdir()) == [".fds-run.lock", "photo", "photo_2", "summary.json"]
    # the dark copy succeeded with a warning in its result.json and in summary.json
    dark = succeeded["b/...jpg"]
    assert any("dark" in w for w in dark["warnings"]), dark
    assert dark["warnings"] == json.loads((Path(dark["outputs"][0]) / "result.json").read_text())["warnings"]
    assert not any("dark" in w or "bright" in w for w in succeeded["a/...jpg"]["warnings"])

    # without recursion the sub-folders are reported, not searched
    flat = tmp_path / "runs" / "flat"
    assert infer(_cfg(tmp_path, corpus, flat, tiny_checkpoint, "recursive=false")) == 1
    skipped = {Path(e["path"]).name: e["reason"] for e in json.loads((flat / "summary.json").read_text())["skipped"]}
    assert {k: skipped[k] for k in ("a", "b", "c", "x.jpg")} == dict.fromkeys(
        ("a", "b", "c", "x.jpg"), "a sub-folder: not searched (recursive=false)")


@pytest.mark.slow
def test_rerun_after_a_kill_completes_and_reproduces(tmp_path, tiny_checkpoint, astronaut, grace_hopper_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "p1.png")
    shutil.copy(grace_hopper_path, photos / "p2.jpg")
    cfg = _cfg(tmp_path, photos, out, tiny_checkpoint)
    args = [f"input={photos}", f"output={out}", f"ckpt={tiny_checkpoint}", f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'run'}", *FAST]
    proc = subprocess.Popen([sys.executable, str(ROOT / "infer.py"), *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 1200
        while not (out / "p1").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "p1").exists(), "the run ended before its first photo was written"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "p2").exists() and not (out / "summary.json").exists()
    first = {p.name: p.read_bytes() for p in (out / "p1").iterdir()}
    assert infer(cfg) == 0
    assert sorted(p.name for p in out.iterdir()) == [".fds-run.lock", "p1", "p2", "summary.json"]
    again = {p.name: p.read_bytes() for p in (out / "p1").iterdir()}
    assert set(again) == set(first)
    for name in sorted(set(first) - {"result.json"}):
        assert again[name] == first[name], name
    info = [json.loads(d["result.json"]) for d in (first, again)]
    for i in info:
        del i["timings_s"]
    assert info[0] == info[1]


@pytest.mark.slow
def test_summary_keeps_the_records_of_earlier_runs(tmp_path, tiny_checkpoint, astronaut, caplog):
    """Runs one after the other into one output=: summary.json describes the folder (every photo's latest record,
    each naming its run); a corrupt summary.json is logged and replaced, not fatal. The second run's photo is
    tilted 45°: only the fallback detector finds it, and its confidence warning is in result.json and summary.json."""
    one, two, out = tmp_path / "one", tmp_path / "two", tmp_path / "out"
    one.mkdir()
    two.mkdir()
    Image.fromarray(astronaut).save(one / "p1.png")
    (one / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.fromarray(astronaut).rotate(45, resample=Image.Resampling.BILINEAR, expand=True).save(two / "p2.jpg")

    def records() -> tuple[dict, dict[str, tuple[str, str]]]:
        s = json.loads((out / "summary.json").read_text())
        return s, {Path(r["image"]).name: (k, r["run"]) for k in ("succeeded", "failed") for r in s[k]}

    assert infer(_cfg(tmp_path, one, out, tiny_checkpoint)) == 1
    s, first = records()
    [run1] = s["runs"]
    assert first == {"p1.png": ("succeeded", run1), "broken.jpg": ("failed", run1)}
    assert infer(_cfg(tmp_path, two, out, tiny_checkpoint)) == 0  # this run's photos all worked
    s, second = records()
    run2 = next(r for r in s["runs"] if r != run1)
    assert second == {**first, "p2.jpg": ("succeeded", run2)}
    assert s["runs"][run1]["checkpoint"] == s["runs"][run2]["checkpoint"] == str(tiny_checkpoint)
    warned = {Path(r["image"]).name: r["warnings"] for r in s["succeeded"]}
    assert warned["p2.jpg"] == json.loads((out / "p2" / "result.json").read_text())["warnings"]
    detector = {k: [w.split(" (")[0] for w in ws if "detector" in w] for k, ws in warned.items()}
    assert detector == {"p1.png": [], "p2.jpg": ["the face was found only by the fallback CNN detector"]}
    # a rerun of one photo replaces its own record and nothing else
    assert infer(_cfg(tmp_path, one / "p1.png", out, tiny_checkpoint)) == 0
    s, third = records()
    [run3] = set(s["runs"]) - {run1, run2}
    assert third == {**second, "p1.png": ("succeeded", run3)}
    assert [r["outputs"] for r in s["succeeded"] if r["run"] == run3] == [[str(out / "p1")]]
    assert sorted(p.name for p in out.iterdir()) == [".fds-run.lock", "p1", "p2", "summary.json"]

    (out / "summary.json").write_bytes(b'{"succeeded": [{"image": ')  # e.g. written by hand, or by another tool
    assert infer(_cfg(tmp_path, one / "broken.jpg", out, tiny_checkpoint)) == 1
    s, fourth = records()
    assert list(fourth) == ["broken.jpg"] and fourth["broken.jpg"][1] not in (run1, run2, run3)
    assert "summary.json is unreadable or corrupt" in caplog.text
