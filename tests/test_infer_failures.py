"""infer's exit status: configuration and output problems are found before any photo (2, one line), photo
failures are 1, success 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize
from PIL import Image

from fds.outputs import OutputFolder
from fds.pipeline import infer

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, *overrides, ckpt, output=None):
    with initialize(version_base="1.3", config_path="../configs"):
        return compose(config_name="infer", overrides=[
            f"input={tmp_path / 'photos'}", f"ckpt={ckpt}", f"output={output or tmp_path / 'out'}",
            f"cache_dir={tmp_path / 'cache'}", "device=cpu", f"paths.output_dir={tmp_path}", *overrides])


@pytest.fixture
def photos(tmp_path, astronaut):
    (tmp_path / "photos").mkdir()
    Image.fromarray(astronaut).save(tmp_path / "photos" / "astronaut.png")
    return tmp_path / "photos"


@pytest.mark.parametrize("override, message", [
    ("detail.resolution=0", "detail.resolution=0 is invalid: use a power of two from 256 to 8192"),
    ("detail.resolution=-5", "detail.resolution=-5 is invalid"),
    ("detail.resolution=1000", "detail.resolution=1000 is invalid"),
    ("detail.batch_size=0", "detail.batch_size=0 is invalid"),
    ("bake.formats=[stl]", "bake.formats=['stl'] is invalid"),
    ("detail.mode=fast", "detail.mode='fast' is invalid"),
    ("proxy.detector.method=magic", "proxy settings: method must be"),
])
def test_bad_settings_stop_before_any_photo(tmp_path, photos, tiny_checkpoint, capsys, override, message):
    assert infer(_cfg(tmp_path, override, ckpt=tiny_checkpoint)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cache").exists()  # no photo was touched


def test_unusable_outputs_stop_before_any_photo(tmp_path, photos, tiny_checkpoint, capsys):
    (tmp_path / "a_file").write_text("x")
    for output, message in ((tmp_path / "a_file", "is a file, not a folder"),
                            ("/proc/fds-nowhere/out", "cannot be created or written")):
        assert infer(_cfg(tmp_path, ckpt=tiny_checkpoint, output=output)) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_second_run_into_a_busy_output_stops_at_once(tmp_path, photos, tiny_checkpoint, capsys):
    with OutputFolder(tmp_path / "out"):  # another run holds the folder
        assert infer(_cfg(tmp_path, ckpt=tiny_checkpoint)) == 2
    assert "is in use by another fds run" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".fds-run.lock"]


def test_unreadable_checkpoint_and_empty_input_stop_before_any_photo(tmp_path, photos, tiny_checkpoint, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"\0" * 64)
    assert infer(_cfg(tmp_path, ckpt=tmp_path / "bad.safetensors")) == 2
    assert "bad.safetensors is not a readable safetensors file" in capsys.readouterr().err
    assert infer(_cfg(tmp_path, f"input={tmp_path / 'none*.png'}", ckpt=tiny_checkpoint)) == 2
    assert "matches no image" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_exit_status_2_prints_one_line_and_no_traceback(tmp_path, photos):
    cmd = [sys.executable, str(ROOT / "infer.py"), f"input={photos}", f"output={tmp_path / 'out'}",
           "detail.resolution=0", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "fds infer: detail.resolution=0 is invalid: use a power of two from 256 to " \
                                  "8192 texels (1024, 2048, 4096)"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_only_failed_photos_give_status_1(tmp_path, tiny_checkpoint, capsys):
    """Every photo failing (before the detail stage) is status 1 with a summary, not 2."""
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(tmp_path / "photos" / "wall.png")
    assert infer(_cfg(tmp_path, ckpt=tiny_checkpoint)) == 1
    assert "FAILED" in capsys.readouterr().out and (tmp_path / "out" / "summary.json").is_file()


def test_fds_infer_refuses_a_file_as_output_folder(tmp_path, capsys):
    from fds.cli import main

    (tmp_path / "results").write_text("x")
    assert main(["infer", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "results")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
