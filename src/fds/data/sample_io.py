"""The on-disk scan-sample format (one folder per sample), shared by procedural scans and real scans.

::

    <root>/<sample_id>/
        texture.png      uint8 RGB [R,R,3]  input UV texture (degraded unwrap), row 0 = v 0 = top of the chart
        maps.npz         displacement_mm float32 [R,R]  GT displacement along the proxy normal, mm, + = outward
                         mask            uint8   [R,R]  1 = valid GT texel
                         visibility      float16 [R,R]  [0, 1] visibility of the texel in the source photo
                         position_mm     float32 [R,R,3] proxy surface position, mm, model frame
                         normal          float16 [R,R,3] unit proxy normal, model frame
        albedo.png       uint8 RGB [R,R,3]  (optional) GT albedo used to render texture.png
        marks.png        uint8 L [R,R]      (optional) coverage (/255) of colour-only marks (eyebrows, hair
                                            strands, stubble, moles, eyes, lip line) painted into the albedo:
                                            texels where the input shows lines the GT relief does not have
        shadow_edges.png uint8 L [R,R]      (optional) the same for edges of cast shadows in the source photo
        sample.json      {"format": "fds-scan-sample", "version": 1, "resolution": R, "face_model": "sfm", ...}

``sample.json`` may carry anything else (seed, age, expression, SH lighting ``sh`` [3][9], wrinkles, …); the
reader needs only ``format``, ``version`` and ``resolution``. Files are written to a temporary folder and
renamed into place, so a crashed writer never leaves a half-written sample under its final name.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from fds.fileio import atomic_folder, atomic_write_bytes

FORMAT = "fds-scan-sample"
VERSION = 1
MAP_KEYS = {"displacement_mm": 2, "mask": 2, "visibility": 2, "position_mm": 3, "normal": 3}
#: Optional single-channel coverage maps (``<name>.png``, 0–255 for [0, 1]) of lines the GT relief does not have.
LINE_MAPS = ("marks", "shadow_edges")


class SampleFormatError(ValueError):
    """A sample folder does not follow the format; the message names the file and what is wrong."""


@dataclass
class ScanSample:
    """One scan sample in memory (arrays in the on-disk layout, see the module doc)."""

    texture: np.ndarray  # uint8 [R,R,3]
    displacement_mm: np.ndarray  # float32 [R,R]
    mask: np.ndarray  # bool [R,R]
    visibility: np.ndarray  # float32 [R,R]
    position_mm: np.ndarray  # float32 [R,R,3]
    normal: np.ndarray  # float32 [R,R,3]
    meta: dict[str, Any] = field(default_factory=dict)
    albedo: np.ndarray | None = None  # uint8 [R,R,3]
    marks: np.ndarray | None = None  # float32 [R,R] in [0, 1], colour-only marks' coverage (see module doc)
    shadow_edges: np.ndarray | None = None  # float32 [R,R] in [0, 1], cast-shadow edges of the photo

    def flat_lines(self) -> np.ndarray | None:
        """``float32 [R,R]`` in [0, 1]: dark lines the input shows and the GT relief does not have (the larger of
        ``marks`` and ``shadow_edges``); None when the sample has neither."""
        maps = [m for m in (self.marks, self.shadow_edges) if m is not None]
        return None if not maps else np.maximum.reduce([np.asarray(m, np.float32) for m in maps])

    @property
    def resolution(self) -> int:
        return int(self.texture.shape[0])


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` through a temp file renamed into place."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **cast(dict[str, Any], arrays))
    atomic_write_bytes(Path(path), [buf.getvalue()])


def write_sample(folder: str | os.PathLike, s: ScanSample, overwrite: bool = False,
                 extras: Callable[[Path], None] | None = None) -> Path:
    """Write ``s`` as ``folder`` atomically (temp sibling folder + rename). ``extras(tmp)`` may add more files
    to the temporary folder before the rename. Returns the folder."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"sample folder {folder} exists (pass overwrite=True to replace it)")
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        Image.fromarray(s.texture).save(tmp / "texture.png", compress_level=1)
        if s.albedo is not None:
            Image.fromarray(s.albedo).save(tmp / "albedo.png", compress_level=1)
        for name in LINE_MAPS:
            if getattr(s, name) is not None:
                Image.fromarray(coverage_to_uint8(getattr(s, name))).save(tmp / f"{name}.png", compress_level=1)
        np.savez_compressed(
            tmp / "maps.npz", displacement_mm=s.displacement_mm.astype(np.float32), mask=s.mask.astype(np.uint8),
            visibility=s.visibility.astype(np.float16), position_mm=s.position_mm.astype(np.float32),
            normal=s.normal.astype(np.float16))
        meta = {"format": FORMAT, "version": VERSION, "resolution": s.resolution, **s.meta}
        (tmp / "sample.json").write_text(json.dumps(meta, indent=1))
        if extras is not None:
            extras(tmp)
    return folder


def coverage_to_uint8(marks: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] → the pixels of a :data:`LINE_MAPS` PNG (uint8, 0–255)."""
    return np.round(np.clip(np.nan_to_num(np.asarray(marks, np.float32)), 0, 1) * 255).astype(np.uint8)


def _read_png(path: Path, r: int | None, mode: str = "RGB") -> np.ndarray:
    if not path.is_file():
        raise SampleFormatError(f"{path}: missing (a sample folder needs texture.png, maps.npz, sample.json)")
    try:
        arr = np.asarray(Image.open(path).convert(mode))
    except Exception as exc:
        raise SampleFormatError(f"{path}: not a readable image ({exc})") from exc
    if r is not None and arr.shape[:2] != (r, r):
        raise SampleFormatError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, sample.json says {r}x{r}")
    return arr


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """Parse and check ``sample.json`` of a sample folder."""
    path = Path(folder) / "sample.json"
    if not path.is_file():
        raise SampleFormatError(f"{path}: missing (not a sample folder?)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SampleFormatError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SampleFormatError(f"{path}: 'format' must be {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise SampleFormatError(f"{path}: unsupported version {meta.get('version')!r} (this reader: {VERSION})")
    if not isinstance(meta.get("resolution"), int) or meta["resolution"] < 8:
        raise SampleFormatError(f"{path}: 'resolution' must be an integer ≥ 8, got {meta.get('resolution')!r}")
    return meta


def read_sample(folder: str | os.PathLike, with_albedo: bool = False) -> ScanSample:
    """Load and validate a sample folder; any problem raises :class:`SampleFormatError` naming the file."""
    folder = Path(folder)
    meta = read_meta(folder)
    r = meta["resolution"]
    texture = _read_png(folder / "texture.png", r)
    path = folder / "maps.npz"
    if not path.is_file():
        raise SampleFormatError(f"{path}: missing")
    try:
        with np.load(path) as z:
            maps = {k: z[k] for k in MAP_KEYS if k in z}
    except Exception as exc:
        raise SampleFormatError(f"{path}: not a readable .npz ({exc})") from exc
    for key, ndim in MAP_KEYS.items():
        if key not in maps:
            raise SampleFormatError(f"{path}: array {key!r} is missing (has {sorted(maps)})")
        want = (r, r) if ndim == 2 else (r, r, 3)
        if maps[key].shape != want:
            raise SampleFormatError(f"{path}: {key!r} has shape {maps[key].shape}, expected {want}")
    if not np.isfinite(maps["displacement_mm"]).all():
        raise SampleFormatError(f"{path}: 'displacement_mm' holds NaN or inf")
    albedo = _read_png(folder / "albedo.png", r) if with_albedo and (folder / "albedo.png").is_file() else None
    lines = {name: _read_png(folder / f"{name}.png", r, "L").astype(np.float32) / 255.0
             for name in LINE_MAPS if (folder / f"{name}.png").is_file()}
    return ScanSample(texture=texture, displacement_mm=maps["displacement_mm"].astype(np.float32),
                      mask=maps["mask"] > 0, visibility=maps["visibility"].astype(np.float32),
                      position_mm=maps["position_mm"].astype(np.float32), normal=maps["normal"].astype(np.float32),
                      meta=meta, albedo=albedo, **lines)


def list_samples(root: str | os.PathLike) -> list[Path]:
    """Sample folders (those holding ``sample.json``) directly under ``root``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and
                  (p / "sample.json").is_file())
