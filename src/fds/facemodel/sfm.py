"""Surrey Face Model (eos ``.bin`` files): the default face model, 3,448 vertices, already in mm."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from fds.assets import AssetError, resolve_asset
from fds.facemodel.model import FaceModel


def read_ibug_mapping(path: str | os.PathLike) -> np.ndarray:
    """Parse an eos ``[landmark_mappings]`` TOML file into ``[68]`` vertex indices (−1 = unmapped)."""
    text = Path(path).read_text()
    section = text.split("[landmark_mappings]", 1)[-1].split("[contour_landmarks]", 1)[0]
    out = np.full(68, -1, np.int64)
    for ibug, vertex in re.findall(r"^\s*(\d+)\s*=\s*(\d+)", section, flags=re.M):
        if 1 <= int(ibug) <= 68:
            out[int(ibug) - 1] = int(vertex)
    return out


def read_model_contours(path: str | os.PathLike) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """eos ``model_contours.json`` → (right, left) contour vertex lists."""
    body = json.loads(Path(path).read_text())["model_contour"]
    return tuple(map(int, body["right_contour"])), tuple(map(int, body["left_contour"]))


def load_sfm(assets_dir: str | os.PathLike | None = None, with_expressions: bool = True) -> FaceModel:
    """Load the shape-only Surrey Face Model with its 6 emotion blendshapes."""
    import eos

    shape_path = resolve_asset("sfm_shape", assets_dir)
    try:
        mm = eos.morphablemodel.load_model(str(shape_path))
    except RuntimeError as exc:
        raise AssetError(f"{shape_path} is not a readable eos model ({exc}); delete it and get it again "
                         "(see `fds.assets.REGISTRY['sfm_shape']`).") from exc
    shape = mm.get_shape_model()
    mean = np.asarray(shape.get_mean(), np.float32).reshape(-1, 3)
    basis = np.asarray(shape.get_orthonormal_pca_basis(), np.float32)  # [3V,K]
    n_v = mean.shape[0]
    triangles = np.asarray(shape.get_triangle_list(), np.int32)
    uv = np.asarray(mm.get_texture_coordinates(), np.float32)
    names: tuple[str, ...] = ()
    expr = np.zeros((0, n_v, 3), np.float32)
    files = [str(shape_path)]
    if with_expressions:
        bs_path = resolve_asset("sfm_expression_blendshapes", assets_dir)
        blendshapes = eos.morphablemodel.load_blendshapes(str(bs_path))
        names = tuple(b.name for b in blendshapes)
        expr = np.stack([np.asarray(b.deformation, np.float32).reshape(-1, 3) for b in blendshapes])
        files.append(str(bs_path))
    lm_path = resolve_asset("sfm_landmarks", assets_dir)
    contour_path = resolve_asset("sfm_contours", assets_dir)
    right, left = read_model_contours(contour_path)
    return FaceModel(
        name="sfm",
        mean_mm=mean,
        id_basis=basis.T.reshape(-1, n_v, 3).copy(),
        id_variance=np.asarray(shape.get_eigenvalues(), np.float32),
        expr_basis=expr,
        expr_names=names,
        expr_kind="blendshapes",
        triangles=triangles,
        uv=uv,
        uv_triangles=triangles.copy(),
        landmarks_ibug68=read_ibug_mapping(lm_path),
        contour_right=right,
        contour_left=left,
        source_files=tuple(files),
        eos_landmark_file=str(lm_path),
        eos_contour_file=str(contour_path),
        eos_edge_topology_file=str(resolve_asset("sfm_edge_topology", assets_dir)),
    )
