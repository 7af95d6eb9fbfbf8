"""Normal maps and the preview render on CUDA (nvdiffrast) against the CPU (torch rasteriser), on the Surrey
Face Model's mean face with a displacement of known relief (skipped without CUDA or nvdiffrast).

Where they may differ follows from the rasterisers (tests/render/test_backends_cuda.py): a pixel centre within
1/16 px of a triangle edge may go to the neighbouring triangle, and barycentrics differ by float32 rounding.

- Normal maps: the UV chart is rasterised at 1024² and upsampled. Inside the chart, neighbouring triangles share
  their corner values, so an edge pixel that changes triangle changes only by rounding; only at the chart's
  border (and UV seams) may a texel be covered on one device and not on the other. So coverage may differ only
  within (factor + 1) texels of the CPU chart's border (the bilinear upsampling's reach), and elsewhere the
  normals agree to 1e-4: chart triangles span ~10+ texels at 1024², where float32 edge functions lose ~1e-6
  relative, and the frames vary by less than one unit per triangle.
- Preview: both devices shade the same formulas; pixels may differ along the silhouette (2 px) and by one grey
  level from rounding elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from fds.export.normal_maps import normal_maps
from fds.export.previews import frontal_view, render_proxy_and_detail

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cuda_nvdiffrast() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from fds.render import _raster_nvdiffrast

    if not _raster_nvdiffrast.available(torch.device("cuda")):
        pytest.skip("nvdiffrast does not build here")


def _relief(resolution: int) -> np.ndarray:
    """Wrinkle-like ridges in mm: 0.2 mm, a period of 1/40 of the map along u, slowly bent along v."""
    v, u = np.meshgrid(np.linspace(0, 1, resolution), np.linspace(0, 1, resolution), indexing="ij")
    return (0.2 * np.sin(2 * np.pi * (40 * u + 3 * np.sin(2 * np.pi * v)))).astype(np.float32)


def test_normal_maps_on_cuda_match_the_cpu(cuda_nvdiffrast, sfm) -> None:
    res, work = 2048, 1024
    args = (_relief(res), sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles, None, work)
    cpu, gpu = normal_maps(*args, device="cpu"), normal_maps(*args, device="cuda")
    border = cpu.coverage ^ ndimage.binary_erosion(cpu.coverage)
    near_border = ndimage.binary_dilation(border, iterations=res // work + 1)
    assert not (cpu.coverage != gpu.coverage)[~near_border].any()
    both = cpu.coverage & gpu.coverage & ~near_border
    assert both.mean() > 0.3  # most of the map is compared
    for name in ("tangent", "object"):
        assert np.abs(getattr(cpu, name) - getattr(gpu, name))[both].max() <= 1e-4, name


def test_preview_render_on_cuda_matches_the_cpu(cuda_nvdiffrast, proxy, sfm) -> None:
    maps = normal_maps(_relief(1024), sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)
    view = frontal_view(proxy.vertices, 512)
    cpu = render_proxy_and_detail(proxy, maps.object, view, device="cpu")
    gpu = render_proxy_and_detail(proxy, maps.object, view, device="cuda")
    for a, b in zip(cpu, gpu, strict=True):
        face = (a != 255).any(-1)
        rim = ndimage.binary_dilation(face ^ ndimage.binary_erosion(face), iterations=2)
        assert face.mean() > 0.2
        diff = np.abs(a.astype(int) - b.astype(int)).max(-1)
        assert diff[~rim].max() <= 1
