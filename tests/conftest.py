"""Shared fixtures: the read-only data kit beside the checkout (../shared/data) and real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fds.assets import shared_data_dir

SHARED_DATA = shared_data_dir()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Every test leaves torch's intra-op thread count as it found it: the detail network's float sums depend
    on it, so a leaked setting makes later bit-for-bit comparisons (a subprocess against this process) fail
    for reasons that have nothing to do with the test that fails."""
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data kit is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def labelled_dir(shared_data: Path) -> Path:
    return shared_data / "faces" / "labelled"


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """A real face photo that ships with matplotlib (public domain)."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, public domain), uint8 [512,512,3]."""
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def sfm():
    from fds.facemodel import load_face_model

    return load_face_model("sfm")


@pytest.fixture(scope="session")
def ict():
    from fds.facemodel import load_face_model

    return load_face_model("ict")


@pytest.fixture(scope="session")
def tiny_bfm_h5(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A BFM2017-layout HDF5 (statismo): a bumpy ellipsoid cap in mm, 3 orthonormal identity components,
    2 expression components, 53,149 vertices so the shared iBUG mapping applies. Returns (path, mean [N,3])."""
    import h5py

    n_v, rng = 53149, np.random.default_rng(0)
    theta, phi = rng.uniform(-1.2, 1.2, n_v), rng.uniform(-1.0, 1.0, n_v)
    mean = np.stack([70 * np.sin(theta), 90 * np.sin(phi), 80 * np.cos(theta) * np.cos(phi)], 1)
    q, _ = np.linalg.qr(rng.normal(size=(3 * n_v, 3)))
    path = tmp_path_factory.mktemp("bfm") / "model2017-1_bfm_nomouth.h5"
    with h5py.File(path, "w") as f:
        f["shape/model/mean"] = mean.reshape(-1).astype(np.float32)
        f["shape/model/pcaBasis"] = q.astype(np.float32)
        f["shape/model/pcaVariance"] = np.array([400.0, 100.0, 25.0], np.float32)
        f["shape/representer/cells"] = rng.integers(0, n_v, size=(3, 1000)).astype(np.int32)
        f["expression/model/mean"] = np.zeros(3 * n_v, np.float32)
        f["expression/model/pcaBasis"] = q[:, :2].astype(np.float32)
        f["expression/model/pcaVariance"] = np.array([9.0, 4.0], np.float32)
    return path, mean


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A weights-only DFDN checkpoint of a few thousand parameters (256² patches, 1024² maps, as the shipped one):
    for tests of what happens around the detail network, where its quality does not matter."""
    from fds.models.architecture import DFDNSpec
    from fds.models.checkpoint import save_detail_checkpoint

    def unet(cin: int, downs: int) -> dict:
        return {"_target_": "fds.models.unet.UNet", "in_channels": cin, "out_channels": 1, "num_downs": downs,
                "ngf": 4, "max_mult": 2}

    regions = {"_target_": "fds.models.generator.RegionModels", "regions": ["forehead", "mouth"], "shared": True}
    cfg = {
        "_target_": "fds.models.module.DFDNModule", "disp_scale_mm": 0.5,
        "generator": {**regions, "model": {
            "_target_": "fds.models.generator.DetailGenerator", "pdim": unet(1, 4), "pdrm": unet(2, 3),
            "head": {"_target_": "fds.models.heads.ConvPoolHead", "in_channels": 1, "channels": [4], "grid": 1, "k": 4},
            "basis": {"_target_": "fds.models.pca.PCABasis", "k": 4, "patch_size": 256, "unit_rms": True}}},
        "discriminator": {**regions, "model": {"_target_": "fds.models.discriminator.PatchDiscriminator",
                                               "in_channels": 2, "ndf": 4, "n_layers": 1}},
    }
    torch.manual_seed(0)
    module = DFDNSpec.parse(cfg, "model").build()
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_detail_checkpoint(tmp_path_factory.mktemp("tiny_ckpt") / "tiny.safetensors", module.state_dict(), cfg,
                                  map_resolution=1024)


@pytest.fixture(scope="module")
def proxy(sfm):
    """The SFM mean face as a ``MeshData`` (mm, its UV chart): the proxy mesh the bake and writer tests use."""
    from fds.mesh.meshdata import MeshData

    return MeshData(sfm.mean_mm, sfm.triangles, sfm.uv, sfm.uv_triangles)


@pytest.fixture(scope="module")
def ict_proxy(ict):
    """The ICT-FaceKit mean face as a ``MeshData``."""
    from fds.mesh.meshdata import MeshData

    return MeshData(ict.mean_mm, ict.triangles, ict.uv, ict.uv_triangles)
