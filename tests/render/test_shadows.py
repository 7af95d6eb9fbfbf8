"""Shadow maps (fds.render.shadows) with a known occluder, and the GGX specular lobe."""

from __future__ import annotations

import math

import pytest
import torch

from fds.render import ggx_specular
from fds.render.shadows import area_light_visibility, cone_directions, shadow_map


def _quad(x0: float, x1: float, y0: float, y1: float, z: float) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=torch.float32)
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A 200 × 200 ground square at z = 0 and a 40 × 40 occluder square 30 units above it at z = 30."""
    g_v, g_t = _quad(-100, 100, -100, 100, 0.0)
    o_v, o_t = _quad(-20, 20, -20, 20, 30.0)
    return torch.cat([g_v, o_v]), torch.cat([g_t, o_t + 4])


@pytest.mark.parametrize("tilt_deg", [0.0, 30.0])
def test_known_occluder_casts_its_footprint_shifted_by_height_times_tan(tilt_deg: float) -> None:
    verts, tri = _scene()
    t = math.radians(tilt_deg)
    light = torch.tensor([math.sin(t), 0.0, math.cos(t)])  # tilted toward +x: the shadow moves to −x
    smap = shadow_map(verts, tri, light, resolution=256)
    shift = -30.0 * math.tan(t)  # the occluder's footprint on the ground, along x
    xs = torch.linspace(-90, 90, 181)
    ground = torch.stack([xs, torch.zeros_like(xs), torch.zeros_like(xs)], 1)
    up = torch.tensor([[0.0, 0.0, 1.0]]).expand_as(ground)
    vis = smap.visibility(ground, up)
    margin = 3 * smap.texel + 1.0  # PCF window and texel rounding around the exact edge
    inside = (xs - shift).abs() < 20 - margin
    outside = (xs - shift).abs() > 20 + margin
    assert inside.sum() > 20 and outside.sum() > 100
    assert torch.all(vis[inside] == 0), vis[inside]
    assert torch.all(vis[outside] == 1), vis[outside]
    # the occluder's own lit top is not shadowed by itself (bias against acne)
    top = torch.tensor([[0.0, 0.0, 30.0], [10.0, -5.0, 30.0]])
    assert torch.all(smap.visibility(top, torch.tensor([[0.0, 0.0, 1.0]]).expand_as(top)) == 1)


def test_area_light_softens_the_shadow_edge() -> None:
    verts, tri = _scene()
    light = torch.tensor([0.0, 0.0, 1.0])
    xs = torch.linspace(-40, 40, 161)
    ground = torch.stack([xs, torch.zeros_like(xs), torch.zeros_like(xs)], 1)
    hard = area_light_visibility(verts, tri, ground, None, light, 0.0, resolution=256)
    soft = area_light_visibility(verts, tri, ground, None, light, math.radians(10), samples=8, resolution=256)
    # penumbra width ≈ 2 · height · tan(radius) = 10.6 units: the soft edge has many partial values
    partial = lambda v: int(((v > 0.05) & (v < 0.95)).sum())  # noqa: E731
    assert partial(soft) > 3 * max(partial(hard), 1)
    assert float(soft[80]) == 0.0  # the centre is in the umbra of every sample direction
    assert float(soft[0]) == 1.0 and float(soft[-1]) == 1.0
    d = cone_directions(light, math.radians(10), 8)
    assert torch.allclose(d.norm(dim=1), torch.ones(8))
    assert float((d @ light).min()) >= math.cos(math.radians(10)) - 1e-6


def test_ggx_peaks_at_the_mirror_direction_and_narrows_with_smoothness() -> None:
    n = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    v = torch.tensor([[0.0, math.sin(0.5), math.cos(0.5)]])
    angles = torch.linspace(-1.2, 0.2, 57)
    def lobe(rough: float) -> torch.Tensor:
        return torch.cat([ggx_specular(n, torch.tensor([[0.0, math.sin(a), math.cos(a)]]), v, rough)[0, 0, 0]
                          for a in angles.tolist()])
    smooth, rough = lobe(0.3), lobe(0.7)
    assert abs(float(angles[int(smooth.argmax())]) + 0.5) < 0.03  # mirror of the view direction
    assert float(smooth.max()) > 3 * float(rough.max())
    # light behind the surface gives nothing
    assert float(ggx_specular(n, torch.tensor([[0.0, 0.0, -1.0]]), v)[0, 0, 0, 0]) == 0.0
