"""The real-photo half of the evaluation on the shared photos: held-out selection, face matching, the
re-render's photometric error and inference's detail fade."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from fds.evaluation_photos import (
    faded_detail,
    held_out_wild_photos,
    landmark_nme,
    photometric_l1,
    spread,
)

RES = 256


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, shared_data):
    """A real wild photo through the proxy stage at 256² and its UV appearance maps (as the evaluation uses)."""
    from fds.data.wild import appearance_maps
    from fds.proxy.stage import ProxyStage

    stage = ProxyStage({"unwrap": {"resolution": RES}}, cache_dir=tmp_path_factory.mktemp("proxy"))
    [result] = stage(shared_data / "faces" / "wild" / "smirk" / "test_image1.png")
    return result, appearance_maps(stage.face_model, result, RES)


def test_held_out_wild_photos_leave_out_the_training_draw(shared_data):
    from fds.data.wild import find_wild_photos

    wild = shared_data / "faces" / "wild"
    training = {"photo_dirs": [str(wild)], "include_library_photos": True, "max_photos": 24}
    photos, excluded = held_out_wild_photos([wild], 4, training)
    drawn = {p.resolve() for p in find_wild_photos([wild], True, 24)}
    assert len(photos) == 4 and not drawn & set(photos)
    assert set(excluded) == {p for p in drawn if wild.resolve() in p.parents}  # the library photos are elsewhere
    everything = find_wild_photos([wild], include_library=False)
    assert len(held_out_wild_photos([wild], None, training)[0]) == len(everything) - len(excluded)
    with pytest.raises(ValueError, match="no held-out wild photo"):
        held_out_wild_photos([wild], 4, {**training, "max_photos": None})  # the training drew them all


def test_spread_keeps_the_ends_in_order():
    assert spread(range(10), 3) == [0, 4, 9] and spread(range(3), 5) == [0, 1, 2]
    assert spread(range(4), None) == [0, 1, 2, 3]


def test_labelled_face_is_found_among_several(labelled_dir):
    """AFW photos hold several faces; the labelled one is scored, whatever its size."""
    from fds.proxy.landmarks import FaceDetector, load_image, nme, read_pts

    photo = labelled_dir / "afw_1130084326_1.jpg"
    detector = FaceDetector()
    faces = detector(load_image(photo), all_faces=True)
    gt = read_pts(photo.with_suffix(".pts"))
    assert len(faces) > 1
    [row] = landmark_nme([photo], detector)
    assert row["nme"] == pytest.approx(min(nme(f.landmarks_px, gt) for f in faces)) and row["nme"] < 0.08


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_rerender_of_the_proxy_itself_has_no_photometric_error(proxy):
    """A photo that *is* the proxy's re-render (its albedo and SH, no detail) scores ~0 with zero detail (8-bit
    rounding only); wrinkles that are not in the photo raise the error."""
    from fds.models.losses import reconstruct_texture

    _, maps = proxy

    def chw(a):
        return torch.from_numpy(np.array(a, np.float32)).permute(2, 0, 1)[None]

    zero = np.zeros((RES, RES), np.float32)
    render = reconstruct_texture(torch.from_numpy(zero)[None, None], chw(maps["position_mm"]), chw(maps["normal"]),
                                 chw(maps["albedo"]), torch.from_numpy(maps["sh"])[None])
    image = render[0].permute(1, 2, 0).numpy()
    in_range = ((image >= 0) & (image <= 1)).all(-1)  # texels an 8-bit photo can show
    own = {**maps, "texture": (image.clip(0, 1) * 255 + 0.5).astype(np.uint8),
           "visibility": np.asarray(maps["visibility"], np.float32) * in_range}
    assert own["visibility"].sum() > 0.9 * np.asarray(maps["visibility"], np.float32).sum()
    assert photometric_l1(zero, own) < 0.5 / 255 + 1e-6
    _, cols = np.mgrid[:RES, :RES]
    wrinkles = (0.5 * np.sin(cols / 1.5)).astype(np.float32)  # 0.5 mm furrows, 9.4 texels (~1 cm) apart
    assert photometric_l1(wrinkles, own) > 2 / 255  # > 4× the rounding bound
    assert photometric_l1(zero, maps) > 0.005  # the real photo is not the proxy's render


@pytest.mark.slow  # 45-75 s on a loaded 2-core CPU
def test_detail_fades_out_where_the_photo_does_not_see(proxy):
    result, _ = proxy
    disp = faded_detail(lambda tex, fit: np.ones(tex.shape[:2], np.float32), np.zeros((RES, RES, 3), np.uint8),
                        result.uv.confidence, edge_blur_texels=2.0)
    unseen = result.uv.confidence == 0
    assert unseen.any() and np.all(disp[unseen] == 0)
    deep = binary_erosion(~unseen, iterations=12)  # ≥ 12 texels (8-connected: ≥ 8.5) from unseen
    assert deep.any() and np.allclose(disp[deep], 1.0, atol=1e-3)
