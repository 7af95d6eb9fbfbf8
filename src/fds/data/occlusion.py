"""Cavity occlusion of a displacement map: how much of the sky a texel at the bottom of a groove still sees.

Order-2 SH shading of the detailed normals alone (``fds.render.shading``) shows a wrinkle only as a pair of
lit/unlit walls whose polarity flips with the light direction; in photos, wrinkles read mostly as *dark lines*
because the groove hides part of the hemisphere from its floor (ambient occlusion, inter-shadowing). The
procedural scans multiply the SH shading by this factor so that their textures show that cue too.

The estimate is the classic baked "cavity map": a texel lying ``c`` mm below the Gaussian-weighted mean height of
its neighbourhood (radius ``radius_mm``) sees a horizon raised by about ``atan(c / radius_mm)``, so the factor is
``1 − strength · clip(c / radius_mm, 0, 1)``, clipped to ``[1 − max_darkening, 1]``. Ridges and flat skin are
not occluded (factor 1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def cavity_occlusion(displacement_mm: np.ndarray, valid: np.ndarray, texel_mm: tuple[float, float],
                     radius_mm: float = 1.5, strength: float = 1.0, max_darkening: float = 0.6) -> np.ndarray:
    """Ambient-occlusion factor ``float32 [R, R]`` in ``[1 − max_darkening, 1]`` (1 off ``valid``).

    Args:
        displacement_mm: ``[R, R]`` heights along the normal in mm (grooves negative), UV rows = v.
        valid: ``[R, R]`` bool, the texels that carry surface (the neighbourhood mean ignores the rest).
        texel_mm: surface size of one texel (u, v) in mm.
        radius_mm: Gaussian σ (mm) of the neighbourhood whose mean height the texel is compared with.
        strength: darkening per unit of depth/radius (0 = no occlusion).
        max_darkening: the most light a cavity can lose (0.6: the floor keeps 40 %).
    """
    if radius_mm <= 0:
        raise ValueError(f"radius_mm must be a positive neighbourhood size in mm, got {radius_mm}")
    if strength <= 0:
        return np.ones(displacement_mm.shape, np.float32)
    du, dv = texel_mm
    sigma = (radius_mm / dv, radius_mm / du)  # (rows = v, cols = u) in texels
    w = valid.astype(np.float64)
    mean = ndimage.gaussian_filter(displacement_mm * w, sigma) / np.maximum(ndimage.gaussian_filter(w, sigma), 1e-6)
    cavity = np.clip((mean - displacement_mm) / radius_mm, 0.0, 1.0)
    factor = np.clip(1.0 - strength * cavity, 1.0 - max_darkening, 1.0)
    return np.where(valid, factor, 1.0).astype(np.float32)
