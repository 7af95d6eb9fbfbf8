import numpy as np
import pytest

from fds.facemodel import REGIONS, region_masks
from fds.facemodel.regions import region_labels, uv_attribute_map


@pytest.mark.parametrize("model", ["sfm", "ict"])
def test_region_masks_cover_the_chart_disjointly(model, request):
    fm = request.getfixturevalue(model)
    masks = region_masks(fm, 256)
    assert set(masks) == set(REGIONS) | {"face"}
    stack = np.stack([masks[r] for r in REGIONS])
    assert (stack.sum(0) <= 1).all()  # disjoint
    np.testing.assert_array_equal(stack.any(0), masks["face"])  # their union is the chart
    for name in REGIONS:
        assert masks[name].sum() > 0.002 * 256 * 256, name
    # inside the UV chart: no region texel outside the triangles' UV footprint
    _, covered = uv_attribute_map(fm, fm.mean_mm, 256)
    assert not (stack.any(0) & ~covered).any()


@pytest.mark.parametrize("model", ["sfm", "ict"])
def test_regions_are_anatomically_placed(model, request):
    """Regions sit where their landmarks are: each landmark's UV falls in its region's mask."""
    fm = request.getfixturevalue(model)
    res = 512
    masks = region_masks(fm, res)
    uv_of_vertex = np.zeros((fm.num_vertices, 2))
    uv_of_vertex[fm.triangles.reshape(-1)] = fm.uv[fm.uv_triangles.reshape(-1)]

    def region_at(ibug: int) -> str:
        u, v = uv_of_vertex[fm.landmarks_ibug68[ibug - 1]]
        r, c = min(int(v * res), res - 1), min(int(u * res), res - 1)
        return next(name for name in REGIONS if masks[name][r, c])

    assert region_at(31) == "nose"
    assert region_at(38) == "eyes" and region_at(45) == "eyes"
    assert region_at(20) == "brows" and region_at(25) == "brows"
    assert region_at(52) == "mouth" and region_at(58) == "mouth"
    assert region_at(9) == "chin"
    # the forehead lies above the brows on the face: larger mean model-space y
    xyz, covered = uv_attribute_map(fm, fm.mean_mm, res)
    assert xyz[masks["forehead"], 1].mean() > xyz[masks["brows"], 1].mean() > xyz[masks["mouth"], 1].mean()


def test_masks_at_any_resolution_agree(sfm):
    small, large = region_labels(sfm, 128), region_labels(sfm, 512)
    down = large[2::4, 2::4]  # texel centres of the 128 grid fall between 512-texels; compare nearby ones
    assert (down == small).mean() > 0.97


def test_resolution_too_small(sfm):
    with pytest.raises(ValueError, match="resolution"):
        region_masks(sfm, 4)
