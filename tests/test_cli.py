"""The `fds` command from a folder outside the checkout: help, shipped files found, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fds

SRC = Path(fds.__file__).resolve().parents[1]  # the fds under test (checkout src/, or site-packages)
REPO = Path(__file__).resolve().parents[1]


def _fds(args: list[str], cwd: Path, env: dict | None = None, pythonpath: Path = SRC, timeout: float = 1500):
    e = {**os.environ, "PYTHONPATH": str(pythonpath), "FDS_PROGRESS": "lines", **(env or {})}
    return subprocess.run([sys.executable, "-m", "fds", *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


def test_help_is_fds_own(tmp_path):
    top = _fds(["--help"], tmp_path)
    assert top.returncode == 0
    for word in ("infer", "train", "eval", "view", "demo", "examples:", "fds infer photo.jpg"):
        assert word in top.stdout
    infer = _fds(["infer", "--help"], tmp_path)
    assert infer.returncode == 0 and "--output" in infer.stdout and "fds infer photos/" in infer.stdout
    assert "powered by Hydra" not in top.stdout + infer.stdout
    view = _fds(["view", "--help"], tmp_path)
    assert view.returncode == 0 and "--port" in view.stdout and "fds view out/" in view.stdout
    # the Hydra scripts' --help names fds too
    script = subprocess.run([sys.executable, str(REPO / "infer.py"), "--help"], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=300)
    assert script.returncode == 0 and "fds infer" in script.stdout and "powered by Hydra" not in script.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # --help writes nothing


def test_config_resolves_shipped_files_from_anywhere(tmp_path):
    r = _fds(["infer", "photo.jpg", "--print-config"], tmp_path)
    assert r.returncode == 0, r.stderr
    ckpt = next(line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("ckpt:"))
    assert Path(ckpt).is_file() and Path(ckpt).name == "dfdn_lite.safetensors"
    assert f"output: {tmp_path / 'fds_output'}" in r.stdout
    assert str(tmp_path / "photo.jpg") in r.stdout  # the positional input, made absolute
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no logs/, no data/, no output yet
    bad = _fds(["infer"], tmp_path)
    assert bad.returncode != 0 and "give at least one photo" in bad.stderr


@pytest.mark.slow
def test_infer_from_another_folder_writes_only_the_output(tmp_path, grace_hopper_path):
    work = tmp_path / "somewhere"
    work.mkdir()
    root = tmp_path / "fds_root"  # caches go to the project root, not to the working directory
    r = _fds(["infer", str(grace_hopper_path), "-o", "out", "detail.flip_average=false", "bake.max_triangles=30000",
              "bake.formats=[obj]", "preview.height=128"], work, env={"FDS_ROOT": str(root)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    face = work / "out" / "grace_hopper"
    info = json.loads((face / "result.json").read_text())
    assert info["checkpoint"].endswith("dfdn_lite.safetensors")
    assert {"displacement.exr", "displacement.npy", "detailed.obj"} <= set(info["files"])
    assert (work / "out" / "infer.log").is_file()  # the run's log and config sit beside the results
    assert "\r" not in r.stderr and "photos: 1/1 (100%)" in r.stderr + (work / "out" / "infer.log").read_text()


@pytest.mark.slow
def test_wheel_carries_configs_and_checkpoints(tmp_path):
    """A wheel (not an editable install) finds its configs and checkpoint inside the package."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("fds-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        z.extractall(tmp_path / "site")
    assert {"fds/_resources/configs/infer.yaml", "fds/_resources/configs/hydra/default.yaml",
            "fds/_resources/checkpoints/dfdn_lite.safetensors"} <= names
    assert "fds = fds.cli:main" in entry_points
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = _fds(["infer", "p.jpg", "--print-config"], work, pythonpath=tmp_path / "site",
             env={"XDG_DATA_HOME": str(tmp_path / "xdg"), "FDS_ROOT": ""})
    assert r.returncode == 0, r.stderr
    assert f"ckpt: {tmp_path / 'site' / 'fds' / '_resources' / 'checkpoints' / 'dfdn_lite.safetensors'}" in r.stdout
    assert f"root_dir: {tmp_path / 'xdg' / 'fds'}" in r.stdout
