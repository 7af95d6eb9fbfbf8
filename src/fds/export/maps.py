"""UV map files: displacement (16-bit PNG + JSON sidecar + float32 NPY) and normal maps (8-bit PNG).

All maps use the project's UV convention: ``[H, W]`` texel grids, column ↔ u (right), row ↔ v (**down**),
row 0 = v 0 = the top of the UV map; texel (r, c) has its centre at uv = ((c + ½)/W, (r + ½)/H). (OBJ ``vt``
store 1 − v; :mod:`fds.export.mesh_io` converts.)

Displacement (mm along the proxy's outward normal, positive = outward):

* ``NAME.png``: uint16 grey, q = round((clip(d_mm / scale_mm, −1, 1) + 1) / 2 · 65535); d_mm = (q / 65535 · 2
  − 1) · scale_mm, so one step is 2·scale_mm/65535 and a round trip is exact to half a step. With scale_mm
  the network's ``disp_scale_mm`` this is the paper's ``(d + 1)/2 · 65535`` of its network output d;
  uncovered texels hold 0 mm (q = 32768).
* ``NAME.json``: the sidecar (format, scale_mm, resolution, UV convention, encoding formula, file names).
* ``NAME.npy``: float32 ``[H, W]`` mm, exact (``float_format`` ``npy`` or ``both``).
* ``NAME.exr``: the same float32 ``[H, W]`` mm as a one-channel (``Y``) ZIP-compressed OpenEXR for DCC tools,
  bit-identical to the ``.npy`` (``float_format`` ``exr`` or ``both``; :mod:`fds.export.exr`).
* ``NAME_coverage.png`` (optional): uint8, 255 where the map holds a prediction.

Normal maps, 8-bit RGB: q = round((n + 1)/2 · 255) per channel, n = q/255 · 2 − 1 on read. Tangent space
(x along T = +u, y along B = up the map, z along the outward normal; OpenGL "green up"): flat = (128, 128,
255). Object space: the model frame (mm model: x right, y up, z to the viewer); uncovered texels = (128, 128,
128), a zero vector.

Every file is written through a temp file and renamed into place (:func:`fds.assets.atomic_write_bytes`).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fds.export.exr import read_exr, write_exr
from fds.fileio import BackgroundWrites, atomic_write_bytes

FLOAT_FORMATS = ("exr", "npy", "both")
DISPLACEMENT_FORMAT = "fds-displacement/1"
UV_CONVENTION = (
    "u -> column (right), v -> row (down), row 0 = v 0 = top of the UV map; texel (r, c) centre at "
    "uv = ((c + 0.5) / W, (r + 0.5) / H); OBJ vt = (u, 1 - v)"
)
PNG16_MAX = 65535
# zlib level of every PNG fds writes: level 1 encodes a 4096² normal map ~4x faster than PIL's default 6 for
# files ~5-20 % larger (benchmarks/bench_pipeline.py prints both; PNG is lossless at any level)
PNG_COMPRESS_LEVEL = 1


# ---------------------------------------------------------------------------------------------- PNG / NPY
def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``uint8 [H, W]``, ``[H, W, 3|4]`` or ``uint16 [H, W]`` as PNG, atomically."""
    path = Path(path)
    image = np.asarray(image)
    if image.dtype == np.uint16 and image.ndim != 2:
        raise ValueError(f"16-bit PNGs are grey only ([H, W] uint16), got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"write_png takes uint8 or uint16 images, got {image.dtype}; encode first")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"image must be [H, W], [H, W, 3] or [H, W, 4], got shape {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    atomic_write_bytes(path, [buf.getvalue()])
    return path


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG as written by :func:`write_png`: uint8 grey/RGB/RGBA or uint16 grey."""
    path = Path(path)
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return np.array(im, dtype=np.uint16)
        if im.mode == "I":
            return np.array(im).astype(np.uint16)
        if im.mode not in ("L", "RGB", "RGBA"):
            im = im.convert("RGB")
        return np.array(im)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` atomically (no pickles)."""
    path = Path(path)
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, [buf.getvalue()])
    return path


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    path = Path(path)
    atomic_write_bytes(path, [(json.dumps(data, indent=2, sort_keys=False) + "\n").encode()])
    return path


# ---------------------------------------------------------------------------------------------- displacement
def encode_displacement(displacement_mm: np.ndarray, scale_mm: float) -> tuple[np.ndarray, int]:
    """``float [H, W]`` mm → (``uint16 [H, W]``, number of texels clipped to ±scale_mm)."""
    if scale_mm <= 0:
        raise ValueError(f"scale_mm must be positive (mm at PNG value 65535), got {scale_mm}")
    d = np.asarray(displacement_mm, np.float64)
    if not np.isfinite(d).all():
        raise ValueError("displacement_mm holds NaN/inf values; set uncovered texels to 0 before encoding")
    t = d / scale_mm
    clipped = int(np.count_nonzero(np.abs(t) > 1.0))
    q = np.floor((np.clip(t, -1.0, 1.0) + 1.0) / 2.0 * PNG16_MAX + 0.5)
    return q.astype(np.uint16), clipped


def decode_displacement(q: np.ndarray, scale_mm: float) -> np.ndarray:
    """``uint16 [H, W]`` → float32 mm (inverse of :func:`encode_displacement` up to half a step)."""
    q = np.asarray(q)
    if q.dtype != np.uint16:
        raise TypeError(f"a displacement PNG must decode to uint16, got {q.dtype}; is it a 16-bit PNG?")
    return ((q.astype(np.float64) / PNG16_MAX * 2.0 - 1.0) * scale_mm).astype(np.float32)


def _paths(path: str | os.PathLike) -> dict[str, Path]:
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".png", ".json", ".npy", ".exr") else p
    return {
        "png": stem.with_name(stem.name + ".png"),
        "json": stem.with_name(stem.name + ".json"),
        "npy": stem.with_name(stem.name + ".npy"),
        "exr": stem.with_name(stem.name + ".exr"),
        "coverage": stem.with_name(stem.name + "_coverage.png"),
    }


def write_displacement(
    path: str | os.PathLike,
    displacement_mm: np.ndarray,
    scale_mm: float,
    coverage: np.ndarray | None = None,
    metadata: dict[str, Any] | None = None,
    float_format: str = "both",
    writes: BackgroundWrites | None = None,
) -> dict[str, Path]:
    """Write ``NAME.png`` (16-bit), ``NAME.json``, the float map as ``NAME.exr`` and/or ``NAME.npy`` (and
    ``NAME_coverage.png``); returns the paths.

    ``path`` is ``NAME`` or ``NAME.png``; ``displacement_mm [H, W]`` mm along the outward normal; ``scale_mm``
    the mm at PNG value 65535 (use the network's ``disp_scale_mm``); ``metadata`` is added to the sidecar;
    ``float_format`` one of ``exr``, ``npy``, ``both`` (float32 mm, exact). With ``writes`` the files are
    encoded on its threads (wait on it before reading them); the arrays must not change until then.
    """
    if float_format not in FLOAT_FORMATS:
        raise ValueError(f"float_format must be one of {', '.join(FLOAT_FORMATS)}, got {float_format!r}")
    d = np.asarray(displacement_mm, np.float32)
    if d.ndim != 2:
        raise ValueError(f"displacement_mm must be a [H, W] map in mm, got shape {d.shape}")
    q, clipped = encode_displacement(d, scale_mm)
    submit = (writes if writes is not None else BackgroundWrites(0)).submit  # 0 threads: each write runs now
    out = _paths(path)
    floats = ("exr", "npy") if float_format == "both" else (float_format,)
    for kind in {"exr", "npy"} - set(floats):
        out.pop(kind)
    files = {"png": out["png"].name, **{kind: out[kind].name for kind in floats}}
    if coverage is not None:
        cov = np.asarray(coverage, bool)
        if cov.shape != d.shape:
            raise ValueError(f"coverage must match the map's shape {d.shape}, got {cov.shape}")
        submit(write_png, out["coverage"], cov.astype(np.uint8) * 255)
        files["coverage"] = out["coverage"].name
    else:
        out.pop("coverage")
    if "npy" in floats:
        submit(write_npy, out["npy"], d)
    if "exr" in floats:
        submit(write_exr, out["exr"], d, {"fds_units": "mm along the outward normal", "fds_sidecar": out["json"].name})
    submit(write_png, out["png"], q)
    sidecar = {
        "format": DISPLACEMENT_FORMAT,
        "units": "mm",
        "direction": "along the proxy's outward (smooth, interpolated) vertex normal; positive = outward",
        "scale_mm": float(scale_mm),
        "encoding": "png = round((clip(d_mm / scale_mm, -1, 1) + 1) / 2 * 65535), uint16 grey",
        "decoding": "d_mm = (png / 65535 * 2 - 1) * scale_mm",
        "step_mm": 2.0 * float(scale_mm) / PNG16_MAX,
        "resolution": [int(d.shape[0]), int(d.shape[1])],
        "uv_convention": UV_CONVENTION,
        "uncovered": "0 mm (png 32768); see the coverage mask",
        "clipped_texels": clipped,
        "range_mm": [float(d.min()), float(d.max())] if d.size else [0.0, 0.0],
        "files": files,
        **(metadata or {}),
    }
    submit(write_json, out["json"], sidecar)
    return out


def read_displacement(path: str | os.PathLike, prefer: str = "npy") -> tuple[np.ndarray, dict[str, Any]]:
    """Read a displacement written by :func:`write_displacement` → (float32 ``[H, W]`` mm, sidecar dict).

    ``path`` is ``NAME`` or any of its files. ``prefer="npy"`` returns the exact float map (the ``.npy``, else
    the ``.exr``) when present, ``"exr"`` the ``.exr`` (else the ``.npy``), ``"png"`` always decodes the 16-bit
    PNG with the sidecar's scale. The sidecar gets a ``coverage`` entry (``bool [H, W]``) when the coverage PNG
    exists.
    """
    if prefer not in ("npy", "exr", "png"):
        raise ValueError(f"prefer must be 'npy', 'exr' or 'png', got {prefer!r}")
    out = _paths(path)
    if not out["json"].is_file():
        raise FileNotFoundError(f"{out['json']}: displacement sidecar missing (it holds the mm scale)")
    meta = json.loads(out["json"].read_text())
    if meta.get("format") != DISPLACEMENT_FORMAT:
        raise ValueError(f"{out['json']}: format {meta.get('format')!r}, expected {DISPLACEMENT_FORMAT!r}")
    floats = [k for k in ((prefer, "exr" if prefer == "npy" else "npy") if prefer != "png" else ())
              if out[k].is_file()]
    if floats and floats[0] == "npy":
        d = np.load(out["npy"], allow_pickle=False).astype(np.float32)
    elif floats:
        d = read_exr(out["exr"])[0]
    else:
        d = decode_displacement(read_png(out["png"]), float(meta["scale_mm"]))
    if list(d.shape) != list(meta["resolution"]):
        raise ValueError(f"{out['png']}: map is {d.shape}, sidecar says {meta['resolution']}")
    if out["coverage"].is_file():
        meta["coverage"] = read_png(out["coverage"]) > 127
    return d, meta


# ---------------------------------------------------------------------------------------------- normals
def encode_normal_map(normals: np.ndarray, coverage: np.ndarray | None = None, fill=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Unit normals ``float [H, W, 3]`` in [−1, 1] → ``uint8 [H, W, 3]`` = round((n + 1)/2 · 255).

    Texels outside ``coverage`` get ``fill`` (use (0, 0, 1) for tangent maps: (128, 128, 255)). Computed in
    float32 in place (a 4096² map is 50M values): a value within ~1e-5 of a rounding boundary may land one level
    from a float64 evaluation's.
    """
    n = np.asarray(normals)
    if n.ndim != 3 or n.shape[2] != 3:
        raise ValueError(f"normals must be [H, W, 3], got shape {n.shape}")
    q = np.nan_to_num(n.astype(np.float32, copy=True), nan=0.0)
    np.clip(q, -1.0, 1.0, out=q)
    q += 1.0
    q *= 127.5
    q += 0.5
    out = np.floor(q, out=q).astype(np.uint8)
    if coverage is not None:
        out[~np.asarray(coverage, bool)] = np.floor((np.clip(np.asarray(fill, np.float64), -1, 1) + 1) * 127.5 + 0.5)
    return out


def decode_normal_map(q: np.ndarray, normalize: bool = True) -> np.ndarray:
    """``uint8 [H, W, 3]`` → float32 [−1, 1] (unit length if ``normalize``; zero vectors stay as decoded)."""
    q = np.asarray(q)
    if q.dtype != np.uint8 or q.ndim != 3 or q.shape[2] < 3:
        raise ValueError(f"a normal map PNG must be uint8 RGB, got {q.dtype} {q.shape}")
    n = q[..., :3].astype(np.float32) / 255.0 * 2.0 - 1.0
    if normalize:
        length = np.linalg.norm(n, axis=-1, keepdims=True)
        n = np.where(length > 0.5, n / np.maximum(length, 1e-12), n)
    return n


def write_normal_map(
    path: str | os.PathLike, normals: np.ndarray, space: str, coverage: np.ndarray | None = None
) -> Path:
    """Write a ``tangent`` or ``object`` space normal map ``[H, W, 3]`` as 8-bit RGB PNG (see module doc)."""
    if space not in ("tangent", "object"):
        raise ValueError(f"space must be 'tangent' or 'object', got {space!r}")
    fill = (0.0, 0.0, 1.0) if space == "tangent" else (0.0, 0.0, 0.0)
    return write_png(path, encode_normal_map(normals, coverage, fill))


def read_normal_map(path: str | os.PathLike, normalize: bool = True) -> np.ndarray:
    """Read a normal map PNG → float32 ``[H, W, 3]``."""
    return decode_normal_map(read_png(path), normalize)
