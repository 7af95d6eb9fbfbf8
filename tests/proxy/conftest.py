"""Fixtures for the proxy tests: the shared real data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _shared_data() -> Path:
    try:
        from fds.assets import shared_data_dir  # type: ignore[attr-defined]

        return Path(shared_data_dir())
    except Exception:
        return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = _shared_data()
    if not (root / "faces" / "labelled").is_dir():
        pytest.skip(f"shared data kit not found at {root}")
    return root


@pytest.fixture(scope="session")
def labelled_dir(shared_data: Path) -> Path:
    return shared_data / "faces" / "labelled"


@pytest.fixture(scope="session")
def detector():
    from fds.proxy.landmarks import FaceDetector

    return FaceDetector(method="hog")


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()
