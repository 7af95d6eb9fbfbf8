"""fds.render — differentiable rendering: rasteriser backends, cameras, SH shading, normal maps."""

from fds.render.normals import (
    normals_from_displacement,
    normals_from_positions,
    object_to_tangent,
    tangent_frames,
    tangent_to_object,
    vertex_normals,
)
from fds.render.shading import (
    blinn_phong_specular,
    estimate_sh,
    estimate_sh_and_albedo,
    sh_basis,
    sh_irradiance,
    shade_lambert,
)

__all__ = [
    "blinn_phong_specular",
    "estimate_sh",
    "estimate_sh_and_albedo",
    "normals_from_displacement",
    "normals_from_positions",
    "object_to_tangent",
    "sh_basis",
    "sh_irradiance",
    "shade_lambert",
    "tangent_frames",
    "tangent_to_object",
    "vertex_normals",
]
