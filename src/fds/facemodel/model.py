"""One interface for every morphable face model fds can fit: :class:`FaceModel`.

Frames and units (the same for every loader):

- positions in **millimetres**, model frame: x to the image right when the face looks at the camera (the
  subject's left), y up, z toward the viewer;
- UVs ``[U,2]`` in [0, 1], **image convention**: u → column, v → row, v = 0 at the top (forehead) of a UV map;
  ``uv_triangles [T,3]`` index them per triangle corner (models with UV seams have more UVs than vertices);
- landmarks: ``landmarks_ibug68[k]`` is the vertex of iBUG point k+1 (0-based k), −1 where the model has no
  fixed vertex for it (the jaw contour is then fitted through ``contour_right`` / ``contour_left``).

eos objects are built lazily by the ``eos_*`` methods and cached per process: they hold the GIL and do not
pickle, so a :class:`FaceModel` itself pickles fine and can be sent to DataLoader workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fds.facemodel.topology import edge_topology

ExprKind = Literal["blendshapes", "pca"]


@dataclass(eq=False)
class FaceModel:
    """A linear 3D morphable model: ``mean_mm + Σ a_k id_basis[k] + Σ e_j expr_basis[j]``."""

    name: str
    mean_mm: np.ndarray  # [V,3] float32, mm
    id_basis: np.ndarray  # [K,V,3] float32; flattened columns orthonormal (eos convention)
    id_variance: np.ndarray  # [K] float32, mm², variance of the coefficient along each basis vector
    expr_basis: np.ndarray  # [E,V,3] float32, mm per unit coefficient
    expr_names: tuple[str, ...]
    expr_kind: ExprKind
    triangles: np.ndarray  # [T,3] int32
    uv: np.ndarray  # [U,2] float32, image convention
    uv_triangles: np.ndarray  # [T,3] int32 into uv
    landmarks_ibug68: np.ndarray  # [68] int64, −1 = not a fixed vertex
    contour_right: tuple[int, ...] = ()  # model contour vertices, subject's right side (x < 0)
    contour_left: tuple[int, ...] = ()
    expr_variance: np.ndarray | None = None  # [E] for PCA expression models
    source_files: tuple[str, ...] = ()
    eos_landmark_file: str | None = None  # an eos mapping file to reuse instead of writing one
    eos_contour_file: str | None = None
    eos_edge_topology_file: str | None = None
    units: str = "mm"
    _eos_cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # --- geometry -------------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.mean_mm.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def num_expression(self) -> int:
        return int(self.expr_basis.shape[0])

    def vertices(self, id_coeffs=None, expr_coeffs=None) -> np.ndarray:
        """Vertex positions [V,3] in mm.

        ``id_coeffs`` are in standard deviations (eos's convention, what ``fit_shape_and_pose`` returns):
        ``mean + Σ a_k √var_k · id_basis[k]``; ``expr_coeffs`` are blendshape weights, or for PCA expression
        models, standard deviations too.
        """
        v = self.mean_mm.astype(np.float32, copy=True)
        if id_coeffs is not None and len(id_coeffs):
            a = np.asarray(id_coeffs, np.float32)
            v += np.tensordot(a * np.sqrt(self.id_variance[: len(a)]), self.id_basis[: len(a)], axes=1)
        if expr_coeffs is not None and len(expr_coeffs):
            e = np.asarray(expr_coeffs, np.float32)
            if self.expr_kind == "pca" and self.expr_variance is not None:
                e = e * np.sqrt(self.expr_variance[: len(e)])
            v += np.tensordot(e, self.expr_basis[: len(e)], axes=1)
        return v

    def landmark_positions(self, vertices: np.ndarray | None = None) -> dict[int, np.ndarray]:
        """iBUG point number (1-based) → 3D position (mm) for the mapped landmarks."""
        v = self.mean_mm if vertices is None else vertices
        return {k + 1: v[i] for k, i in enumerate(self.landmarks_ibug68) if i >= 0}

    def uv_vertex_index(self) -> np.ndarray:
        """[U] vertex index of each UV (the first triangle corner that uses it)."""
        out = np.full(len(self.uv), -1, np.int64)
        out[self.uv_triangles.reshape(-1)] = self.triangles.reshape(-1)
        return out

    def fingerprint(self) -> str:
        """A short content hash, for cache keys."""
        h = hashlib.sha1()
        for arr in (self.mean_mm, self.triangles, self.uv, self.landmarks_ibug68):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(str((self.num_identity, self.num_expression, self.expr_names)).encode())
        return h.hexdigest()[:16]

    # --- eos (lazy, per process) ----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_eos_cache"] = {}
        return state

    def _cached(self, key: str, build):
        cache = self._eos_cache
        if cache.get("_pid") != os.getpid():  # a forked worker must not reuse the parent's objects
            cache.clear()
            cache["_pid"] = os.getpid()
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def eos_model(self):
        """This model as an ``eos.morphablemodel.MorphableModel`` (mm units, image-convention UVs), cached."""
        return self._cached("model", self.build_eos_model)

    def build_eos_model(self, mean_mm: np.ndarray | None = None, with_expression: bool = True):
        """A new eos ``MorphableModel`` of this model, optionally around another mean ``[V,3]`` (mm; e.g. with a prior
        expression baked in) and without expressions (eos needs an expression model: one all-zero blendshape
        then moves nothing). The one place fds builds eos models; :meth:`eos_model` caches the plain one."""
        import eos

        mm = eos.morphablemodel
        tri = self.triangles.tolist()
        mean = self.mean_mm if mean_mm is None else np.asarray(mean_mm)
        shape = mm.PcaModel(
            mean.reshape(-1).astype(np.float32),
            self.id_basis.reshape(self.num_identity, -1).T.astype(np.float32),
            self.id_variance.astype(np.float32),
            tri,
        )
        if not with_expression:
            expression = [mm.Blendshape("fixed", np.zeros(self.num_vertices * 3, np.float32))]
        elif self.expr_kind == "blendshapes":
            expression = [
                mm.Blendshape(n, self.expr_basis[j].reshape(-1).astype(np.float32))
                for j, n in enumerate(self.expr_names)
            ]
        else:
            expression = mm.PcaModel(
                np.zeros(self.num_vertices * 3, np.float32),
                self.expr_basis.reshape(self.num_expression, -1).T.astype(np.float32),
                np.asarray(self.expr_variance, np.float32),
                tri,
            )
        # eos keeps one UV per vertex unless texture triangle indices are given (models with seams).
        if len(self.uv) == self.num_vertices and np.array_equal(self.uv_triangles, self.triangles):
            uv, uv_tri = self.uv.tolist(), []
        else:
            uv, uv_tri = self.uv.tolist(), self.uv_triangles.tolist()
        return mm.MorphableModel(shape, expression, mm.PcaModel(), None, uv, uv_tri)

    def _eos_dir(self) -> Path:
        d = Path(tempfile.gettempdir()) / f"fds-eos-{self.name}-{self.fingerprint()}-{os.getpid()}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _landmark_file(self) -> str:
        if self.eos_landmark_file:
            return self.eos_landmark_file
        path = self._eos_dir() / "landmarks.txt"
        if not path.exists():
            # With contours, jaw points 1–8 and 10–17 are matched to the model contour each iteration.
            contour = set(range(0, 8)) | set(range(9, 17)) if self.has_contours else set()
            fixed = [f"{k + 1} = {int(i)}" for k, i in enumerate(self.landmarks_ibug68)
                     if i >= 0 and k not in contour]
            text = "[landmark_mappings]\n" + "\n".join(fixed) + "\n\n[contour_landmarks]\n"
            text += "right = [1, 2, 3, 4, 5, 6, 7, 8]\nleft = [10, 11, 12, 13, 14, 15, 16, 17]\n"
            path.write_text(text)
        return str(path)

    def eos_landmark_mapper(self):
        import eos

        return self._cached("mapper", lambda: eos.core.LandmarkMapper(self._landmark_file()))

    def eos_contour_landmarks(self):
        import eos

        return self._cached("contour_lm", lambda: eos.fitting.ContourLandmarks.load(self._landmark_file()))

    def eos_model_contour(self):
        import eos

        def build():
            path = self.eos_contour_file
            if path is None:
                p = self._eos_dir() / "contours.json"
                body = {"right_contour": list(map(int, self.contour_right)),
                        "left_contour": list(map(int, self.contour_left))}
                p.write_text(json.dumps({"model_contour": body}))
                path = str(p)
            return eos.fitting.ModelContour.load(path)

        return self._cached("model_contour", build)

    def eos_edge_topology(self):
        import eos

        def build():
            if self.eos_edge_topology_file:
                return eos.morphablemodel.load_edge_topology(self.eos_edge_topology_file)
            faces, verts = edge_topology(self.triangles)
            return eos.morphablemodel.EdgeTopology((faces + 1).tolist(), (verts + 1).tolist())

        return self._cached("edge_topology", build)

    @property
    def has_contours(self) -> bool:
        return bool(self.contour_right) and bool(self.contour_left)


def detect_mm_scale(eye_corner_distance: float) -> float:
    """The power of ten that brings an outer-eye-corner distance into the human range (≈ 80–110 mm)."""
    for scale in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0):
        if 50.0 <= eye_corner_distance * scale <= 150.0:
            return scale
    raise ValueError(
        f"Cannot infer the model's units: outer eye corners are {eye_corner_distance:g} units apart, "
        "which is no power-of-ten multiple of a human ~90 mm. Check the landmark mapping."
    )
