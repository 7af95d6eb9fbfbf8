"""Basel Face Model 2017 (``model2017-1_bfm_nomouth.h5``, users bring it; registration required).

HDF5 layout read (statismo format, as in the eos conversion script):
``shape/model/{mean [3N], pcaBasis [3N,K] orthonormal, pcaVariance [K]}``, ``shape/representer/cells [3,T]``,
``expression/model/{mean, pcaBasis, pcaVariance}``. The model has no UVs: pass ``uv_path`` (an ``.npy``
``[N,2]``, image convention) or get a cylindrical projection of the mean face. Units are detected from
the eye-corner distance (BFM2017 is in mm already).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fds.assets import AssetError, resolve_asset
from fds.facemodel.model import FaceModel, detect_mm_scale
from fds.facemodel.sfm import read_ibug_mapping, read_model_contours


def cylindrical_uv(vertices: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """UVs [N,2] (image convention) from a cylinder around the y axis: u ∝ azimuth, v ∝ −height."""
    c = vertices - vertices.mean(0)
    azimuth = np.arctan2(c[:, 0], c[:, 2])  # 0 straight ahead (+z), ± to the sides
    height = c[:, 1]
    u = (azimuth - azimuth.min()) / max(np.ptp(azimuth), 1e-9)
    v = (height.max() - height) / max(np.ptp(height), 1e-9)
    return (margin + (1 - 2 * margin) * np.stack([u, v], 1)).astype(np.float32)


def load_bfm2017(
    h5_path: str | os.PathLike | None = None,
    assets_dir: str | os.PathLike | None = None,
    uv_path: str | os.PathLike | None = None,
    landmark_path: str | os.PathLike | None = None,
    contour_path: str | os.PathLike | None = None,
) -> FaceModel:
    """Load BFM2017 from its HDF5 file as a :class:`FaceModel` (mm, PCA expressions)."""
    import h5py

    path = Path(h5_path) if h5_path else resolve_asset("bfm2017_nomouth", assets_dir)
    try:
        with h5py.File(path, "r") as f:
            mean = np.asarray(f["shape/model/mean"], np.float64).reshape(-1, 3)
            basis = np.asarray(f["shape/model/pcaBasis"], np.float64)  # [3N,K]
            variance = np.asarray(f["shape/model/pcaVariance"], np.float64)
            cells = np.asarray(f["shape/representer/cells"], np.int64)
            e_mean = np.asarray(f["expression/model/mean"], np.float64).reshape(-1, 3)
            e_basis = np.asarray(f["expression/model/pcaBasis"], np.float64)
            e_variance = np.asarray(f["expression/model/pcaVariance"], np.float64)
    except (OSError, KeyError) as exc:
        raise AssetError(f"{path} is not a BFM2017 HDF5 file in the statismo layout ({exc}); download "
                         "model2017-1_bfm_nomouth.h5 from https://faces.dmi.unibas.ch/bfm/bfm2017.html") from exc
    n_v = mean.shape[0]
    triangles = (cells.T if cells.shape[0] == 3 else cells).astype(np.int32)
    lm = read_ibug_mapping(landmark_path or resolve_asset("bfm2017_landmarks", assets_dir))
    if lm.max() >= n_v:
        raise AssetError(f"landmark mapping refers to vertex {lm.max()} but {path} has {n_v} vertices")
    scale = detect_mm_scale(float(np.linalg.norm(mean[lm[36]] - mean[lm[45]])))
    right, left = read_model_contours(contour_path or resolve_asset("bfm2017_contours", assets_dir))
    # The BFM expression mean is a (small) offset from the neutral face: fold it into the mean shape.
    mean_mm = (mean + e_mean) * scale
    uv = np.load(uv_path).astype(np.float32) if uv_path else cylindrical_uv(mean_mm)
    if uv.shape != (n_v, 2):
        raise ValueError(f"{uv_path}: UVs must be [{n_v},2], got {uv.shape}")
    return FaceModel(
        name="bfm2017",
        mean_mm=mean_mm.astype(np.float32),
        id_basis=(basis.T.reshape(-1, n_v, 3)).astype(np.float32),
        id_variance=(variance * scale**2).astype(np.float32),
        expr_basis=(e_basis.T.reshape(-1, n_v, 3)).astype(np.float32),
        expr_names=tuple(f"expr{j:03d}" for j in range(e_basis.shape[1])),
        expr_kind="pca",
        expr_variance=(e_variance * scale**2).astype(np.float32),
        triangles=triangles,
        uv=uv,
        uv_triangles=triangles.copy(),
        landmarks_ibug68=lm,
        contour_right=right,
        contour_left=left,
        source_files=(str(path),),
    )
