"""3DMM proxy fitting to 68 landmarks with eos, plus a bounded expression refinement.

Camera (eos's scaled orthographic model): a model point ``v`` (mm, model frame x right, y up, z toward the
viewer) lands at image pixel (0-based centres, x = column, y = row DOWN)

    x_px = s · (R v + t)_x,        y_px = H − s · (R v + t)_y

with ``R`` the rotation, ``t`` the translation in mm (t_z = 0) and ``s`` in px/mm. ``project_px`` implements it.

Expression-prior modes (the paper's ``none`` / ``init`` / ``fix``). eos-py's fit with contours has no
arguments to start from or freeze expression coefficients, and for blendshape models it ignores
``lambda_expressions`` (non-negative least squares). So:

- ``none``: eos fits pose, identity and expression (with contour and occluding-edge fitting); then the
  expression is re-solved by bounded least squares on the fixed landmarks with pose and identity kept,
  regularised towards 0 (``lambda_expression``, mm² per unit², bounds ``expression_bounds``).
- ``init``: the prior expression is baked into the mean (so pose, contour and identity fitting start from the
  prior face), eos fits a non-negative expression change on top, and the refinement regularises the total
  expression towards the prior instead of 0.
- ``fix``: the prior expression is baked into the mean and eos gets no expression model: only pose and
  identity are fitted; the expression equals the prior exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fds.facemodel import FaceModel

__all__ = ["FitConfig", "FitResult", "fit_proxy", "project_px", "MODES"]

MODES = ("none", "init", "fix")
_CONTOUR_IBUG = set(range(0, 8)) | set(range(9, 17))  # jaw points matched to the model contour (0-based)


@dataclass(frozen=True)
class FitConfig:
    """Fitting options. ``lambda_identity`` is eos's (dimensionless, on coefficients in std units)."""

    num_iterations: int = 5
    num_identity: int | None = None  # None = all
    lambda_identity: float = 30.0
    lambda_expression: float = 5.0  # refinement regulariser, mm² per unit coefficient²
    expression_bounds: tuple[float, float] = (0.0, 1.0)  # blendshape weights; PCA models are unbounded
    use_contours: bool = True  # contour + occluding-edge fitting where the model has contours
    refine_expression: bool = True


@dataclass
class FitResult:
    """A fitted proxy. Coefficients are in FaceModel units: ``fm.vertices(id_coeffs, expr_coeffs)``."""

    vertices_mm: np.ndarray  # float32 [V, 3] model frame, mm
    id_coeffs: np.ndarray  # float32 [K] identity coefficients in standard deviations (eos's convention)
    expr_coeffs: np.ndarray  # float32 [E] blendshape weights / expression PCA coefficients
    rotation: np.ndarray  # float32 [3, 3] model → camera (x right, y up, z toward viewer)
    translation_mm: np.ndarray  # float32 [3] camera frame, t_z = 0
    scale_px_per_mm: float
    image_size: tuple[int, int]  # (H, W) px
    yaw_pitch_roll_deg: tuple[float, float, float]
    modelview: np.ndarray  # float32 [4, 4] eos modelview (rotation + translation, mm)
    projection: np.ndarray  # float32 [4, 4] eos orthographic projection (mm → NDC, y up)
    landmark_error_px: np.ndarray  # float32 [68] reprojection error per iBUG point, NaN where unmapped
    reprojection_error_px: float  # mean over the fixed (non-contour) mapped landmarks

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Model points ``[N, 3]`` mm → pixels ``[N, 2]`` (0-based, y down)."""
        return project_px(points_mm, self.rotation, self.translation_mm, self.scale_px_per_mm, self.image_size)

    def camera_points(self, points_mm: np.ndarray) -> np.ndarray:
        """Model points ``[N, 3]`` → camera frame ``[N, 3]`` mm (x right, y up, z toward the viewer)."""
        return np.asarray(points_mm, np.float64) @ self.rotation.T.astype(np.float64) + self.translation_mm


def project_px(points_mm, rotation, translation_mm, scale_px_per_mm, image_size) -> np.ndarray:
    """Scaled orthographic projection (module docstring) → ``float64 [N, 2]`` 0-based pixels, y down."""
    cam = np.asarray(points_mm, np.float64) @ np.asarray(rotation, np.float64).T + np.asarray(translation_mm)
    h = image_size[0]
    return np.stack([scale_px_per_mm * cam[:, 0], h - scale_px_per_mm * cam[:, 1]], axis=1)


def fit_proxy(
    fm: FaceModel,
    landmarks_px: np.ndarray,
    image_size: tuple[int, int],
    mode: str = "none",
    prior_expr: np.ndarray | None = None,
    config: FitConfig = FitConfig(),
) -> FitResult:
    """Fit ``fm`` to 68 iBUG landmarks (0-based px, y down) of an image of ``image_size = (H, W)``.

    ``prior_expr [E]`` (FaceModel expression units) is required for ``init`` and ``fix`` (module docstring).
    """
    import eos

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    lm = np.asarray(landmarks_px, np.float32)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks_px must be finite [68, 2] pixels, got shape {lm.shape}")
    h, w = int(image_size[0]), int(image_size[1])
    prior = np.zeros(fm.num_expression, np.float32)
    if mode != "none":
        if prior_expr is None or len(prior_expr) != fm.num_expression:
            raise ValueError(
                f"mode {mode!r} needs prior_expr with {fm.num_expression} coefficients "
                f"(use fds.proxy.expression_prior), got {None if prior_expr is None else len(prior_expr)}"
            )
        prior = np.asarray(prior_expr, np.float32)

    base_mean = fm.vertices(None, prior) if mode != "none" else fm.mean_mm
    model = fm.eos_model() if mode == "none" else fm.build_eos_model(base_mean, with_expression=mode == "init")
    landmarks = [eos.core.Landmark(str(i + 1), p) for i, p in enumerate(lm)]
    n_id = config.num_identity
    if config.use_contours and fm.has_contours:
        mesh, rp, shape_c, expr_c = eos.fitting.fit_shape_and_pose(
            model,
            landmarks,
            fm.eos_landmark_mapper(),
            w,
            h,
            fm.eos_edge_topology(),
            fm.eos_contour_landmarks(),
            fm.eos_model_contour(),
            num_iterations=config.num_iterations,
            num_shape_coefficients_to_fit=n_id,
            lambda_identity=config.lambda_identity,
        )
    else:
        mesh, rp, shape_c, expr_c = eos.fitting.fit_shape_and_pose(
            model,
            landmarks,
            fm.eos_landmark_mapper(),
            w,
            h,
            num_iterations=config.num_iterations,
            num_shape_coefficients_to_fit=n_id,
            lambda_identity=config.lambda_identity,
        )
    id_coeffs = np.zeros(fm.num_identity, np.float32)  # eos units: standard deviations
    id_coeffs[: len(shape_c)] = np.asarray(shape_c, np.float32)
    expr = prior.copy()
    if mode != "fix" and len(expr_c):
        expr = (prior + np.asarray(expr_c, np.float32)).astype(np.float32)

    mv = np.asarray(rp.get_modelview(), np.float32)
    proj = np.asarray(rp.get_projection(), np.float32)
    rotation, translation = mv[:3, :3].copy(), mv[:3, 3].copy()
    scale = float(proj[0, 0] * w / 2.0)  # eos ortho: x_ndc = proj[0,0]·x_cam − 1 and x_px = (x_ndc + 1)·W/2

    mapped = np.array(
        [
            k
            for k, i in enumerate(fm.landmarks_ibug68)
            if i >= 0 and not (fm.has_contours and config.use_contours and k in _CONTOUR_IBUG)
        ]
    )
    if mode != "fix" and config.refine_expression and fm.num_expression:
        identity_mm = fm.vertices(id_coeffs, None)
        expr = _refine_expression(
            fm,
            identity_mm,
            lm,
            mapped,
            rotation,
            translation,
            scale,
            (h, w),
            prior if mode == "init" else np.zeros_like(prior),
            config,
        )
    vertices = fm.vertices(id_coeffs, expr)
    if mode == "fix" or not config.refine_expression:
        vertices = np.asarray(mesh.vertices, np.float32)

    proj_lm = project_px(vertices[np.maximum(fm.landmarks_ibug68, 0)], rotation, translation, scale, (h, w))
    err = np.linalg.norm(proj_lm - lm, axis=1).astype(np.float32)
    err[fm.landmarks_ibug68 < 0] = np.nan
    yaw, pitch, roll = (float(a) for a in rp.get_yaw_pitch_roll())
    ypr = (yaw, pitch, roll)
    return FitResult(
        vertices_mm=vertices.astype(np.float32),
        id_coeffs=id_coeffs,
        expr_coeffs=np.asarray(expr, np.float32),
        rotation=rotation,
        translation_mm=translation,
        scale_px_per_mm=scale,
        image_size=(h, w),
        yaw_pitch_roll_deg=ypr,
        modelview=mv,
        projection=proj,
        landmark_error_px=err,
        reprojection_error_px=float(np.nanmean(err[mapped])),
    )


def _refine_expression(fm, identity_mm, lm, idx, rotation, translation, scale, image_size, centre, config):
    """Bounded ridge least squares for the expression with pose and identity fixed (residuals in mm)."""
    from scipy.optimize import lsq_linear

    vid = fm.landmarks_ibug68[idx]
    r2 = rotation[:2].astype(np.float64)  # [2, 3]
    # image point ≈ s·R(identity + E e) + t (y flipped): divide by s to work in mm.
    target = lm[idx].astype(np.float64).copy()
    target[:, 1] = image_size[0] - target[:, 1]
    base = identity_mm[vid].astype(np.float64) @ r2.T + translation[:2]  # [N, 2] mm
    b = (target / scale - base).reshape(-1)  # [2N]
    a = np.einsum("evc,dc->vde", fm.expr_basis[:, vid].astype(np.float64), r2).reshape(-1, fm.num_expression)
    lam = np.sqrt(config.lambda_expression)
    a_aug = np.vstack([a, lam * np.eye(fm.num_expression)])
    b_aug = np.concatenate([b, lam * centre.astype(np.float64)])
    if fm.expr_kind == "blendshapes":
        lo, hi = config.expression_bounds
        return lsq_linear(a_aug, b_aug, bounds=(lo, hi)).x.astype(np.float32)
    return np.linalg.lstsq(a_aug, b_aug, rcond=None)[0].astype(np.float32)
