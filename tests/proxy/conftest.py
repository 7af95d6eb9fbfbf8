"""Fixtures for the proxy tests (the shared data and photo fixtures live in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def detector():
    from fds.proxy.landmarks import FaceDetector

    return FaceDetector(method="hog")
