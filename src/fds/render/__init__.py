"""fds.render — differentiable rendering: rasteriser backends, cameras, SH shading, normal maps.

Conventions are written down in ``fds.render.raster`` (pixel centres, row order, rast channels,
gradients), ``fds.render.camera`` (image y-down, row 0 = top), ``fds.render.shading`` (SH basis and
radiance convention) and ``fds.render.normals`` (UV chart and tangent frame).
"""

from fds.render.camera import (
    PinholeCamera,
    eos_pose_to_clip,
    perspective_to_clip,
    pixels_to_clip,
    rasterize_uv,
    scaled_ortho_to_clip,
    uv_to_clip,
)
from fds.render.meshes import uv_sphere
from fds.render.normals import (
    normals_from_displacement,
    normals_from_positions,
    object_to_tangent,
    tangent_frames,
    tangent_to_object,
    vertex_normals,
)
from fds.render.raster import (
    BACKENDS,
    antialias,
    interpolate,
    rasterize,
    resolve_backend,
    texture,
    uv_derivatives,
)
from fds.render.shading import (
    blinn_phong_specular,
    estimate_sh,
    estimate_sh_and_albedo,
    ggx_specular,
    sh_basis,
    sh_irradiance,
    shade_lambert,
)

__all__ = [
    "PinholeCamera",
    "BACKENDS",
    "antialias",
    "blinn_phong_specular",
    "eos_pose_to_clip",
    "estimate_sh",
    "estimate_sh_and_albedo",
    "ggx_specular",
    "interpolate",
    "normals_from_displacement",
    "normals_from_positions",
    "object_to_tangent",
    "perspective_to_clip",
    "pixels_to_clip",
    "rasterize",
    "rasterize_uv",
    "resolve_backend",
    "scaled_ortho_to_clip",
    "sh_basis",
    "sh_irradiance",
    "shade_lambert",
    "tangent_frames",
    "tangent_to_object",
    "texture",
    "uv_derivatives",
    "uv_sphere",
    "uv_to_clip",
    "vertex_normals",
]
