"""fds.render rasteriser (torch backend on CPU): coverage, barycentrics, ids, depth, gradients, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from fds.render import interpolate, rasterize, texture, uv_derivatives

H, W = 48, 64


def _brute_force(pos: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference coverage of one triangle with w = 1 by screen-space barycentrics: (inside, near_edge)."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    px = (2 * cols.double() + 1) / w - 1
    py = (2 * rows.double() + 1) / h - 1
    (x0, y0), (x1, y1), (x2, y2) = pos[:, :2].double().tolist()
    det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    b1 = ((px - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) / det
    b2 = ((x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)) / det
    b0 = 1 - b1 - b2
    bs = torch.stack([b0, b1, b2])
    return (bs >= 0).all(0), (bs.abs() < 1e-6).any(0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_single_triangle_coverage_matches_area_and_reference(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(3, 2, generator=g, dtype=torch.float64) * 1.8 - 0.9
    pos = torch.cat([xy, torch.zeros(3, 1, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)], 1)
    rast = rasterize(pos[None], torch.tensor([[0, 1, 2]]), (H, W), backend="torch")
    covered = rast[0, ..., 3] > 0
    inside, near_edge = _brute_force(pos, H, W)
    assert torch.equal(covered[~near_edge], inside[~near_edge])
    # Area in pixels vs covered count: within one pixel per pixel of edge length (lattice-count bound).
    pts = torch.stack([(xy[:, 0] + 1) * W / 2, (xy[:, 1] + 1) * H / 2], 1)
    area = 0.5 * abs(
        float((pts[1, 0] - pts[0, 0]) * (pts[2, 1] - pts[0, 1]) - (pts[2, 0] - pts[0, 0]) * (pts[1, 1] - pts[0, 1]))
    )
    perimeter = float((pts - pts.roll(1, 0)).norm(dim=1).sum())
    assert abs(int(covered.sum()) - area) <= perimeter / 2 + 3
    assert torch.all(rast[0, ..., 3][covered] == 1)
    assert torch.all(rast[0][~covered] == 0)


def test_quad_ids_and_barycentrics_exact_at_chosen_pixels() -> None:
    # Square [-0.5, 0.5]² split along the diagonal (0)-(2); affine (w = 1) so barycentrics are screen-space.
    pos = torch.tensor(
        [[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.5, 0.5, 0.0, 1.0], [-0.5, 0.5, 0.0, 1.0]]],
        dtype=torch.float64,
    )
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    rast = rasterize(pos, tri, (H, W), backend="torch")
    for row, col in [(20, 40), (30, 25), (13, 17), (34, 46)]:
        x = (2 * col + 1) / W - 1
        y = (2 * row + 1) / H - 1
        if abs(x) > 0.5 or abs(y) > 0.5:
            assert rast[0, row, col, 3] == 0
            continue
        if x > y:  # below the diagonal: triangle 0 (v0, v1, v2), p = u·v0 + v·v1 + (1−u−v)·v2
            tid, u, v = 1, 0.5 - x, x - y
        else:  # triangle 1 (v0, v2, v3)
            tid, u, v = 2, 0.5 - y, x + 0.5
        assert int(rast[0, row, col, 3]) == tid
        assert float(rast[0, row, col, 0]) == pytest.approx(u, abs=1e-12)
        assert float(rast[0, row, col, 1]) == pytest.approx(v, abs=1e-12)
        assert float(rast[0, row, col, 2]) == pytest.approx(0.0, abs=1e-12)
    # The pixel centres strictly inside the square are all covered; nothing outside is.
    covered = rast[0, ..., 3] > 0
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    xs, ys = (2 * cols + 1) / W - 1, (2 * rows + 1) / H - 1
    inside = (xs.abs() < 0.5) & (ys.abs() < 0.5)
    assert torch.equal(covered, inside)


def test_perspective_correct_barycentrics_and_depth() -> None:
    # Vertices with different w: the interpolated clip point must project onto the pixel centre.
    pos = torch.tensor(
        [[[-0.8, -0.6, 0.1, 1.3], [0.7, -0.5, 0.2, 0.9], [0.1, 0.9, -0.3, 1.1]]], dtype=torch.float64
    ) * torch.tensor([[[1.0], [1.4], [0.7]]], dtype=torch.float64)
    rast = rasterize(pos, torch.tensor([[0, 1, 2]]), (H, W), backend="torch")
    rows, cols = torch.nonzero(rast[0, ..., 3] > 0, as_tuple=True)
    assert rows.numel() > 100
    u, v = rast[0, rows, cols, 0], rast[0, rows, cols, 1]
    p = torch.stack([u, v, 1 - u - v], -1) @ pos[0]  # [N, 4] clip-space point on the triangle
    assert torch.allclose(p[:, 0] / p[:, 3], (2 * cols.double() + 1) / W - 1, atol=1e-12)
    assert torch.allclose(p[:, 1] / p[:, 3], (2 * rows.double() + 1) / H - 1, atol=1e-12)
    assert torch.allclose(rast[0, rows, cols, 2], p[:, 2] / p[:, 3], atol=1e-12)


def test_nearest_triangle_wins_in_any_order() -> None:
    near = [[-0.9, -0.9, -0.5, 1.0], [0.9, -0.9, -0.5, 1.0], [0.0, 0.9, -0.5, 1.0]]
    far = [[-0.9, 0.9, 0.5, 1.0], [0.9, 0.9, 0.5, 1.0], [0.0, -0.9, 0.5, 1.0]]
    pos = torch.tensor([near + far])
    for tri in (torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[3, 4, 5], [0, 1, 2]])):
        rast = rasterize(pos, tri, (32, 32), backend="torch")
        near_id = int((tri[:, 0] == 0).nonzero()) + 1
        centre = rast[0, 16, 16]
        assert int(centre[3]) == near_id
        assert float(centre[2]) == pytest.approx(-0.5, abs=1e-6)


def test_outside_clip_and_behind_eye_are_empty() -> None:
    tri = torch.tensor([[0, 1, 2]])
    beyond_far = torch.tensor([[[-0.9, -0.9, 1.5, 1.0], [0.9, -0.9, 1.5, 1.0], [0.0, 0.9, 1.5, 1.0]]])
    behind = torch.tensor([[[-0.9, -0.9, 0.0, -1.0], [0.9, -0.9, 0.0, -1.0], [0.0, 0.9, 0.0, -1.0]]])
    for pos in (beyond_far, behind):
        assert rasterize(pos, tri, (16, 16), backend="torch").abs().sum() == 0
    # A triangle crossing w = 0: only the part in front of the eye is drawn, and nothing blows up.
    crossing = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, -0.5]]])
    rast = rasterize(crossing, tri, (32, 32), backend="torch")
    assert torch.isfinite(rast).all()
    assert int((rast[..., 3] > 0).sum()) > 0


def test_batch_items_are_independent() -> None:
    pos0 = torch.tensor([[-0.9, -0.9, 0.0, 1.0], [0.9, -0.9, 0.0, 1.0], [0.0, 0.9, 0.0, 1.0]])
    pos1 = pos0 * torch.tensor([0.3, 0.3, 1.0, 1.0])
    rast = rasterize(torch.stack([pos0, pos1]), torch.tensor([[0, 1, 2]]), (32, 32), backend="torch")
    single = rasterize(pos1[None], torch.tensor([[0, 1, 2]]), (32, 32), backend="torch")
    assert torch.equal(rast[1], single[0])
    assert (rast[0, ..., 3] > 0).sum() > (rast[1, ..., 3] > 0).sum()


def test_interpolate_reproduces_linear_attribute_and_gradcheck() -> None:
    pos = torch.tensor([[[-0.8, -0.7, 0.1, 1.0], [0.8, -0.6, 0.2, 1.0], [0.0, 0.9, -0.3, 1.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]])
    rast = rasterize(pos, tri, (16, 16), backend="torch")
    # Attribute = clip x, y: interpolated value equals the pixel centre (w = 1).
    out = interpolate(pos[0, :, :2], rast, tri)
    rows, cols = torch.nonzero(rast[0, ..., 3] > 0, as_tuple=True)
    assert torch.allclose(out[0, rows, cols, 0], (2 * cols.double() + 1) / 16 - 1, atol=1e-12)
    assert torch.all(out[0][rast[0, ..., 3] == 0] == 0)
    attr = torch.randn(1, 3, 2, dtype=torch.float64, requires_grad=True)
    r = rasterize(pos, tri, (6, 6), backend="torch").requires_grad_(True)  # small: gradcheck is O(numel)
    assert torch.autograd.gradcheck(lambda a, q: interpolate(a, q, tri), (attr, r), fast_mode=True)


def test_rasterize_gradients_through_barycentrics_match_finite_differences() -> None:
    pos = torch.tensor(
        [[[-0.8, -0.6, 0.1, 1.3], [0.7, -0.5, 0.2, 0.9], [0.1, 0.9, -0.3, 1.1]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    tri = torch.tensor([[0, 1, 2]])
    # Pixel centres lie far from the edges here (8×8 grid vs this triangle), so visibility is constant.
    assert torch.autograd.gradcheck(
        lambda p: rasterize(p, tri, (8, 8), backend="torch")[..., :2], (pos,), fast_mode=True
    )


def test_texture_bilinear_clamp() -> None:
    tex = torch.arange(12, dtype=torch.float64).view(1, 3, 4, 1)  # value = 4·row + col
    # Texel centres return texel values; beyond the border the edge value (clamp).
    uv = torch.tensor([[[[0.125, 1 / 6], [0.875, 5 / 6], [1.5, -0.5], [0.25, 1 / 3]]]], dtype=torch.float64)
    out = texture(tex, uv)[0, 0, :, 0]
    assert out.tolist() == pytest.approx([0.0, 11.0, 3.0, 2.5])
    t = torch.randn(1, 5, 6, 2, dtype=torch.float64, requires_grad=True)
    uv2 = torch.rand(1, 4, 4, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: texture(x, uv2), (t,))


def test_empty_mesh_gives_empty_image() -> None:
    pos = torch.zeros(2, 0, 4)
    rast = rasterize(pos, torch.zeros(0, 3, dtype=torch.int32), (8, 12))
    assert rast.shape == (2, 8, 12, 4) and rast.abs().sum() == 0
    pos = torch.rand(1, 5, 4)
    rast = rasterize(pos, torch.zeros(0, 3, dtype=torch.int64), (8, 12))
    assert rast.abs().sum() == 0
    assert interpolate(torch.rand(5, 3), rast, torch.zeros(0, 3, dtype=torch.int64)).abs().sum() == 0


def test_int32_and_int64_indices_agree() -> None:
    pos = torch.tensor([[[-0.8, -0.6, 0.1, 1.0], [0.7, -0.5, 0.2, 1.0], [0.1, 0.9, -0.3, 1.0]]])
    a = rasterize(pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (16, 16), backend="torch")
    b = rasterize(pos, torch.tensor([[0, 1, 2]], dtype=torch.int64), (16, 16), backend="torch")
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("pos", "tri", "res", "backend", "exc", "words"),
    [
        (torch.zeros(3, 4), [[0, 1, 2]], (8, 8), "torch", ValueError, "pos_clip"),
        (torch.zeros(1, 3, 3), [[0, 1, 2]], (8, 8), "torch", ValueError, "pos_clip"),
        (torch.zeros(1, 3, 4, dtype=torch.int64), [[0, 1, 2]], (8, 8), "torch", TypeError, "pos_clip"),
        (torch.zeros(1, 3, 4), torch.tensor([[0.0, 1.0, 2.0]]), (8, 8), "torch", TypeError, "tri"),
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 3]]), (8, 8), "torch", ValueError, "tri"),
        (torch.zeros(1, 3, 4), torch.tensor([0, 1, 2]), (8, 8), "torch", ValueError, "tri"),
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]), (0, 8), "torch", ValueError, "resolution"),
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]), (8, 8), "opengl", ValueError, "backend"),
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]), (8, 8), "nvdiffrast", ValueError, "CUDA"),
    ],
)
def test_bad_input_names_the_argument(pos, tri, res, backend, exc, words) -> None:
    with pytest.raises(exc, match=words):
        rasterize(pos, tri if isinstance(tri, torch.Tensor) else torch.tensor(tri), res, backend=backend)


def test_auto_backend_on_cpu_is_torch() -> None:
    from fds.render import resolve_backend

    assert resolve_backend("auto", torch.device("cpu")) == "torch"


def test_interpolate_and_texture_bad_input() -> None:
    rast = torch.zeros(1, 4, 4, 4)
    with pytest.raises(ValueError, match="attr"):
        interpolate(torch.zeros(3), rast, torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="rast"):
        interpolate(torch.zeros(3, 2), torch.zeros(4, 4, 4), torch.tensor([[0, 1, 2]]))
    with pytest.raises(TypeError, match="tex"):
        texture(torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="uv"):
        texture(torch.zeros(1, 4, 4, 3), torch.zeros(1, 2, 2, 3))


def test_sphere_silhouette_area() -> None:
    from fds.render import uv_sphere

    v, t, _ = uv_sphere(48, 96)
    r = 0.7
    pos = torch.cat([v * r, torch.ones(len(v), 1)], 1)
    pos[:, 2] = -pos[:, 2] * 0.5
    rast = rasterize(pos[None], t, (128, 128), backend="torch")
    frac = float((rast[..., 3] > 0).float().mean())
    assert frac == pytest.approx(math.pi * r * r / 4, rel=0.01)
    # Only front-facing triangles (outward normal towards the viewer, object z > 0) are visible.
    tid = rast[0, ..., 3].long() - 1
    centroid_z = v[t[tid[tid >= 0]]].mean(1)[:, 2]
    assert bool((centroid_z > 0).all())


def _pixel_grid(n: int) -> torch.Tensor:
    """UVs of the centres of an n × n pixel grid spanning the texture: ``[1, n, n, 2]`` (u along columns)."""
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    v, u = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([u, v], -1)[None]


def _box(tex: torch.Tensor, k: int) -> torch.Tensor:
    """``tex [1, R, R, C]`` averaged over blocks of 2^k × 2^k texels (written out: block means)."""
    _, r, _, ch = tex.shape
    s = 2**k
    return tex.reshape(1, r // s, s, r // s, s, ch).mean(dim=(2, 4))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_mipmapped_texture_averages_the_texels_each_pixel_covers(k: int) -> None:
    tex = torch.rand(1, 64, 64, 2, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    uv = _pixel_grid(64 // 2**k)  # each pixel spans 2^k × 2^k texels, centred on its block
    out = texture(tex, uv, uv_derivatives(uv))
    assert torch.allclose(out, _box(tex, k), atol=1e-12)
    if k == 3:  # the plain bilinear lookup reads the 4 texels at the block's centre, the mip all 64: white noise
        point = texture(tex, uv)  # keeps 1/4 of its variance there, 1/64 here (16×; half of that is asked)
        assert point.var() > 8 * out.var()


def test_mipmapped_texture_blends_the_two_levels_around_the_footprint() -> None:
    tex = torch.rand(1, 64, 64, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    uv = _pixel_grid(64)[:, :23, :23] * (2**1.5)  # 2^1.5 texels per pixel: λ = 1.5, halfway between levels 1 and 2
    want = 0.5 * texture(_box(tex, 1), uv) + 0.5 * texture(_box(tex, 2), uv)
    assert torch.allclose(texture(tex, uv, uv_derivatives(uv)), want, atol=1e-12)
    t = tex.clone().requires_grad_(True)
    da = uv_derivatives(uv[:, :6, :6])
    assert torch.autograd.gradcheck(lambda x: texture(x, uv[:, :6, :6], da), (t,))


def test_uv_derivatives_are_exact_for_affine_uvs_and_ignore_seams() -> None:
    h, w = 9, 12
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    uv = torch.stack([0.01 * x + 0.002 * y, -0.003 * x + 0.02 * y], -1)[None]
    want = torch.tensor([0.01, 0.002, -0.003, 0.02], dtype=torch.float64)
    assert torch.allclose(uv_derivatives(uv), want.expand(1, h, w, 4), atol=1e-15)  # borders one-sided
    seam = uv.clone()
    seam[:, :, 6:, 0] += 0.5  # a UV seam between columns 5 and 6: both sides keep the slope of their own side
    assert torch.allclose(uv_derivatives(seam), want.expand(1, h, w, 4), atol=1e-15)
    valid = torch.zeros(1, h, w, dtype=torch.bool)
    valid[0, 2:5, 3:8] = True
    valid[0, 7, 10] = True  # a lone pixel: no valid neighbour, no footprint (plain bilinear)
    da = uv_derivatives(uv, valid)
    assert torch.allclose(da[valid & ~(torch.arange(w) == 10)[None, None]], want.expand(15, 4), atol=1e-15)
    assert da[0, 7, 10].abs().sum() == 0
    with pytest.raises(ValueError, match="uv_da"):
        texture(torch.zeros(1, 4, 4, 1), torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))
