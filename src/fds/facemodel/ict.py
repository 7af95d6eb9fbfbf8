"""ICT-FaceKit (ICT Face Model Light), face area only: 9,409 vertices, 100 identity + 53 ARKit-style shapes.

The arrays come from ``ict_facekit_face_area.npz`` (centimetres, OBJ UV convention), which
:func:`convert_facexmodel` writes from the original ``FaceXModel`` folder of ICT-FaceKit:

    python -m fds.facemodel.ict <ICT-FaceKit>/FaceXModel <assets_dir>/ict/ict_facekit_face_area.npz
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import numpy as np

from fds.assets import AssetError, resolve_asset
from fds.facemodel.model import FaceModel, detect_mm_scale
from fds.fileio import atomic_write_bytes
from fds.mesh.meshdata import read_obj

FACE_AREA_VERTICES = 9409  # ICT-FaceKit README, "Face Area Details": vertices 0..9408
FACE_AREA_POLYGONS = 9230  # polygons 0..9229 (material M_Face)
CONTOUR_RIGHT = range(0, 8)  # iBUG 1..8 (0-based 0..7), the subject's right jaw
CONTOUR_LEFT = range(9, 17)  # iBUG 10..17


def orthonormalise(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Morph targets ``[K,V,3]`` whose weights are ~N(0, 1) → eos's (orthonormal basis [K,V,3], variances [K]).

    With ``B = U S Vᵀ`` the shape covariance is ``B Bᵀ = U S² Uᵀ``: the same distribution of shapes.
    """
    k, n_v, _ = offsets.shape
    u, s, _ = np.linalg.svd(offsets.reshape(k, -1).T.astype(np.float64), full_matrices=False)
    return u.T.reshape(k, n_v, 3).astype(np.float32), (s**2).astype(np.float32)


def load_ict(assets_dir: str | os.PathLike | None = None, npz_path: str | os.PathLike | None = None) -> FaceModel:
    """Load the ICT face area as a :class:`FaceModel` in mm."""
    path = Path(npz_path) if npz_path else resolve_asset("ict_face_area", assets_dir)
    try:
        d = np.load(path)
        vertices, identity, expression = d["vertices"], d["identity_shapes"], d["expression_shapes"]
        lm = d["landmarks_ibug68"].astype(np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise AssetError(f"{path} is not a valid ICT face-area npz ({exc}); rebuild it with "
                         "`python -m fds.facemodel.ict <ICT-FaceKit>/FaceXModel <out.npz>`.") from exc
    scale = detect_mm_scale(float(np.linalg.norm(vertices[lm[36]] - vertices[lm[45]])))
    basis, variance = orthonormalise(identity * scale)
    uv = d["uvs"].astype(np.float32).copy()
    uv[:, 1] = 1.0 - uv[:, 1]  # OBJ (v up) → image convention (v down)
    return FaceModel(
        name="ict",
        mean_mm=(vertices * scale).astype(np.float32),
        id_basis=basis,
        id_variance=variance,
        expr_basis=(expression * scale).astype(np.float32),
        expr_names=tuple(str(n) for n in d["expression_names"]),
        expr_kind="blendshapes",
        triangles=d["faces"].astype(np.int32),
        uv=uv,
        uv_triangles=d["faces_uv"].astype(np.int32),
        landmarks_ibug68=lm,
        contour_right=tuple(int(i) for i in d["jawline_right_extended"]),
        contour_left=tuple(int(i) for i in d["jawline_left_extended"]),
        source_files=(str(path),),
    )


def _face_area(obj_path: Path):
    mesh = read_obj(obj_path, max_polygons=FACE_AREA_POLYGONS)
    if len(mesh.vertices) < FACE_AREA_VERTICES:
        raise ValueError(f"{obj_path}: {len(mesh.vertices)} vertices, expected the full ICT head "
                         f"(≥ {FACE_AREA_VERTICES})")
    return mesh


def convert_facexmodel(folder: str | os.PathLike, out_npz: str | os.PathLike) -> Path:
    """Convert an ICT-FaceKit ``FaceXModel`` folder into the face-area npz that :func:`load_ict` reads.

    Needs ``generic_neutral_mesh.obj``, ``vertex_indices.json`` (``idx_to_landmark_verts``, optional
    ``expressions``), ``identityNNN.obj`` and one OBJ per expression; all must share the neutral topology.
    """
    folder = Path(folder)
    neutral_path = folder / "generic_neutral_mesh.obj"
    index_path = folder / "vertex_indices.json"
    for p in (neutral_path, index_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing: point the converter at ICT-FaceKit's FaceXModel folder")
    neutral = _face_area(neutral_path)
    meta = json.loads(index_path.read_text())
    n = FACE_AREA_VERTICES
    if not (neutral.triangles < n).all():
        raise ValueError(f"{neutral_path}: face-area polygons reference vertices beyond {n}")
    used = np.unique(neutral.uv_triangles)
    remap = np.full(len(neutral.uv), -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    uv = neutral.uv[used].copy()
    uv[:, 1] = 1.0 - uv[:, 1]  # the npz keeps OBJ's v-up convention
    base = neutral.vertices[:n]

    def offsets(paths: list[Path]) -> np.ndarray:
        if not paths:
            return np.zeros((0, n, 3), np.float32)
        return np.stack([_face_area(p).vertices[:n] - base for p in paths]).astype(np.float32)

    identity_paths = sorted(folder.glob("identity[0-9][0-9][0-9].obj"))
    expr_names = meta.get("expressions") or sorted(
        p.stem for p in folder.glob("*.obj") if not p.stem.startswith(("identity", "generic"))
    )
    expr_paths = [folder / f"{name}.obj" for name in expr_names]
    missing = [str(p) for p in expr_paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"expression OBJs named in {index_path} are missing: {missing[:3]}")
    landmarks = np.asarray(meta["idx_to_landmark_verts"], np.int32)
    payload = {
        "vertices": base.astype(np.float32),
        "faces": neutral.triangles.astype(np.int32),
        "uvs": uv.astype(np.float32),
        "faces_uv": remap[neutral.uv_triangles],
        "identity_shapes": offsets(identity_paths),
        "identity_names": np.array([p.stem for p in identity_paths]),
        "expression_shapes": offsets(expr_paths),
        "expression_names": np.array(expr_names),
        "landmarks_ibug68": landmarks,
        "jawline_right_extended": np.asarray(meta.get("jawline_right_extended", landmarks[CONTOUR_RIGHT]),
                                             np.int32),
        "jawline_left_extended": np.asarray(meta.get("jawline_left_extended", landmarks[CONTOUR_LEFT]),
                                            np.int32),
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    out = Path(out_npz)
    atomic_write_bytes(out, [buf.getvalue()])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert ICT-FaceKit's FaceXModel folder for fds")
    parser.add_argument("facexmodel", help="path to ICT-FaceKit/FaceXModel")
    parser.add_argument("out_npz", help="output, e.g. <assets_dir>/ict/ict_facekit_face_area.npz")
    args = parser.parse_args(argv)
    print(convert_facexmodel(args.facexmodel, args.out_npz))


if __name__ == "__main__":
    main()
