"""Shared fixtures: the read-only data kit beside the checkout (../shared/data) and real photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data kit is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def labelled_dir(shared_data: Path) -> Path:
    return shared_data / "faces" / "labelled"


@pytest.fixture(scope="session")
def sfm():
    from fds.facemodel import load_face_model

    return load_face_model("sfm")


@pytest.fixture(scope="session")
def ict():
    from fds.facemodel import load_face_model

    return load_face_model("ict")
