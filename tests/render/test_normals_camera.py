"""Normal maps (displacement, position maps, tangent frames) and cameras (eos, perspective, UV space)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fds.render import (
    eos_pose_to_clip,
    interpolate,
    normals_from_displacement,
    normals_from_positions,
    object_to_tangent,
    perspective_to_clip,
    rasterize_uv,
    tangent_frames,
    tangent_to_object,
    uv_sphere,
    uv_to_clip,
)


@pytest.mark.parametrize(("sx", "sy", "texel"), [(0.2, 0.0, 0.5), (0.0, -0.3, 0.25), (0.1, 0.05, (0.5, 0.25))])
def test_displacement_ramp_gives_analytic_normal(sx: float, sy: float, texel) -> None:
    du, dv = (texel, texel) if isinstance(texel, float) else texel
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(40.0), indexing="ij")
    # Height along N in mm, slope sx along u (right) and sy along the bitangent (up the map = −row).
    disp = sx * cols * du + sy * (-rows * dv)
    n = normals_from_displacement(disp[None, None], texel)
    expected = F.normalize(torch.tensor([-sx, -sy, 1.0]), dim=0)
    inner = n[0, :, 2:-2, 2:-2]
    assert torch.allclose(inner, expected[:, None, None].expand_as(inner), atol=1e-5)


def test_displacement_bad_input() -> None:
    with pytest.raises(ValueError, match="displacement_mm"):
        normals_from_displacement(torch.zeros(1, 3, 4, 4), 0.5)
    with pytest.raises(ValueError, match="texel_mm"):
        normals_from_displacement(torch.zeros(1, 1, 4, 4), 0.0)


def _sphere_maps(res: int = 64):
    v, t, uv = uv_sphere(32, 64, dtype=torch.float64)
    rast = rasterize_uv(uv, t, (res, res), backend="torch")
    return v, t, uv, rast


def test_uv_rasterisation_rows_are_top_down() -> None:
    v, t, uv, rast = _sphere_maps(32)
    uv_map = interpolate(uv, rast, t)[0]  # [H, W, 2]
    covered = rast[0, ..., 3] > 0
    assert bool(covered.all())  # the chart covers [0, 1]²
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    assert torch.allclose(uv_map[..., 0], (cols + 0.5).double() / 32, atol=1e-9)
    assert torch.allclose(uv_map[..., 1], (rows + 0.5).double() / 32, atol=1e-9)  # row 0 = v ≈ 0 (top)
    # Top rows of the map hold the north pole (object +y).
    pos_map = interpolate(v, rast, t)[0]
    assert float(pos_map[0, :, 1].mean()) > 0.9 and float(pos_map[-1, :, 1].mean()) < -0.9


def test_normals_from_position_map_are_outward() -> None:
    v, t, uv, rast = _sphere_maps(64)
    pos_map = interpolate(v, rast, t).permute(0, 3, 1, 2)  # [1, 3, H, W]
    n = normals_from_positions(pos_map)
    radial = F.normalize(pos_map, dim=1)
    cos = (n * radial).sum(1)[0, 4:-4, 2:-2]  # away from the poles' degenerate rows and the seam
    assert float(cos.min()) > 0.99


def test_tangent_frames_on_sphere_and_round_trip() -> None:
    v, t, uv = uv_sphere(24, 48, dtype=torch.float64)
    tan, bit, nrm = tangent_frames(v, uv, t)
    theta = torch.acos(v[:, 1].clamp(-1, 1))
    keep = (theta > 0.3) & (theta < math.pi - 0.3)
    phi = torch.atan2(v[:, 0], v[:, 2])
    east = torch.stack([phi.cos(), torch.zeros_like(phi), -phi.sin()], -1)  # ∂P/∂u direction
    north = torch.linalg.cross(F.normalize(v, dim=-1), east, dim=-1)  # up the map
    assert float((tan[keep] * east[keep]).sum(-1).min()) > 0.99
    assert float((bit[keep] * north[keep]).sum(-1).min()) > 0.99
    # Seam vertices (the duplicated column) see half a one-ring, hence not exactly radial.
    assert float((nrm[keep] * F.normalize(v[keep], dim=-1)).sum(-1).min()) > 0.99
    # Round trip tangent → object → tangent, and a flat map gives the vertex normal.
    g = torch.Generator().manual_seed(0)
    n_ts = F.normalize(
        torch.randn(len(v), 3, generator=g, dtype=torch.float64) + torch.tensor([0, 0, 2.0]).double(), dim=-1
    )
    back = object_to_tangent(tangent_to_object(n_ts, tan, bit, nrm), tan, bit, nrm)
    assert torch.allclose(back[keep], n_ts[keep], atol=1e-9)
    flat = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(len(v), 3)
    assert torch.allclose(tangent_to_object(flat, tan, bit, nrm), nrm, atol=1e-12)


def test_displacement_normal_maps_to_object_space_tilt() -> None:
    # A height ramp rising to the east tilts the object-space normal to the west (−T).
    disp = torch.arange(16.0).repeat(16, 1)[None, None] * 0.1
    n_ts = normals_from_displacement(disp, 1.0)[0, :, 8, 8]
    t_, b_, n_ = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]), torch.tensor([0, 0, 1.0])
    n_os = tangent_to_object(n_ts, t_, b_, n_)
    assert float(n_os[0]) < -0.09 and float(n_os[2]) > 0.99


def test_eos_pose_matches_eos_affine_camera() -> None:
    eos = pytest.importorskip("eos")
    rng = np.random.default_rng(0)
    x3 = (rng.normal(size=(20, 3)) * 50).astype(np.float32)
    th = 0.3
    rot = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]], np.float32)
    s, tx, ty, width, height = 2.0, 320.0, 200.0, 640, 480
    p = (s * (x3 @ rot.T))[:, :2] + [tx, ty]
    img = np.stack([p[:, 0], height - p[:, 1]], 1).astype(np.float32)
    pose = eos.fitting.estimate_orthographic_projection_linear(
        [q.reshape(2, 1) for q in img], [np.append(q, 1).astype(np.float32).reshape(4, 1) for q in x3], True, height
    )
    affine = eos.fitting.get_3x4_affine_camera_matrix(
        eos.fitting.RenderingParameters(pose, width, height), width, height
    )
    eos_xy = np.c_[x3, np.ones(20)] @ affine.T  # [20, 3]
    clip = eos_pose_to_clip(torch.from_numpy(x3).double(), pose, width, height)[0]
    x_img = ((clip[:, 0] + 1) * width - 1) / 2
    y_img = ((clip[:, 1] + 1) * height - 1) / 2
    assert np.allclose(x_img.numpy(), eos_xy[:, 0], atol=1e-2)
    assert np.allclose(y_img.numpy(), eos_xy[:, 1], atol=1e-2)
    assert float(clip[:, 2].abs().max()) <= 1.0  # depth auto-scaled into the clip volume
    # Nearer points (larger camera-space z, eos looks along −z) get smaller z/w.
    z_cam = x3 @ rot.T[:, 2]
    assert np.corrcoef(z_cam, clip[:, 2].numpy())[0, 1] < -0.999


def test_perspective_projection_lands_on_pixel() -> None:
    pts = torch.tensor([[0.1, -0.2, 2.0], [-0.3, 0.25, 3.0]], dtype=torch.float64)
    fx, fy, cx, cy, width, height = 500.0, 480.0, 320.0, 240.0, 640, 480
    clip = perspective_to_clip(pts, fx, fy, cx, cy, width, height, near=0.5, far=10.0)[0]
    ndc = clip[:, :3] / clip[:, 3:]
    x_img = ((ndc[:, 0] + 1) * width - 1) / 2
    y_img = ((ndc[:, 1] + 1) * height - 1) / 2
    assert torch.allclose(x_img, fx * pts[:, 0] / pts[:, 2] + cx)
    assert torch.allclose(y_img, fy * pts[:, 1] / pts[:, 2] + cy)
    z = perspective_to_clip(
        torch.tensor([[0, 0, 0.5], [0, 0, 10.0]], dtype=torch.float64), fx, fy, cx, cy, width, height, 0.5, 10.0
    )[0]
    assert torch.allclose(z[:, 2] / z[:, 3], torch.tensor([-1.0, 1.0], dtype=torch.float64))


def test_uv_to_clip_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uv"):
        uv_to_clip(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="uv"):
        uv_to_clip(torch.zeros(4, 2, dtype=torch.int64))
