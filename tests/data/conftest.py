from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    if not path.is_dir():
        pytest.skip("shared data kit ../shared/data not present")
    return path.resolve()


@pytest.fixture(scope="session")
def fm():
    from fds.facemodel import load_face_model

    return load_face_model("sfm")
