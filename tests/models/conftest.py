"""Shared fixtures for the model tests: real image patches, furrow-like target displacements, configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from skimage.color import rgb2hsv
from skimage.data import astronaut

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PATCH = 128


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a small, shared CPU, two threads contending with other jobs run ~5x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def furrows(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, size, size]`` furrow fields in network units: parallel Gaussian grooves (depth 0.5, width ~2 px)
    with random spacing, phase and a sinusoidal bend, like forehead lines."""
    rows = torch.arange(size, dtype=torch.float32)[:, None]
    cols = torch.arange(size, dtype=torch.float32)[None]
    out = []
    for _ in range(n):
        period, phase, amp, tilt = torch.rand(4, generator=generator).tolist()
        period = 10 + 20 * period
        bend = (2 + 8 * amp) * torch.sin(2 * math.pi * cols / size + 6 * tilt)
        dist = torch.remainder(rows + bend + phase * period, period) - period / 2
        out.append(-0.5 * torch.exp(-(dist**2) / 4.0))
    return torch.stack(out)


@pytest.fixture(scope="session")
def geo_batch() -> dict:
    """4 geometry samples: V-channel crops of skimage's astronaut (paper preprocessing) + furrow targets."""
    v = rgb2hsv(astronaut())[..., 2]
    crops = [v[r : r + PATCH, c : c + PATCH] for r, c in [(0, 0), (100, 200), (250, 50), (300, 300)]]
    x = torch.tensor(np.stack([(c - c.mean()) * 2 for c in crops]), dtype=torch.float32)[:, None]
    y = furrows(4, PATCH, torch.Generator().manual_seed(0))[:, None]
    texel_mm = torch.tensor([[0.28, 0.19]]).expand(4, 2)  # mm per texel (u, v): an SFM map at 1024²
    return {"input": x, "displacement": y, "mask": torch.ones_like(y), "region": ["forehead", "mouth"] * 2,
            "texel_mm": texel_mm}


@pytest.fixture(scope="session")
def furrow_basis(geo_batch) -> torch.Tensor:
    """A 64-component PCA basis of furrow patches whose span holds the 4 targets (as a basis built from the
    training set would)."""
    extra = furrows(60, PATCH, torch.Generator().manual_seed(1))
    patches = torch.cat([geo_batch["displacement"][:, 0], extra]).flatten(1)  # [64, H*W]
    _, _, vh = torch.linalg.svd(patches, full_matrices=False)
    return vh[:64].reshape(64, PATCH, PATCH)


def compose_model(name: str, overrides: list[str] | None = None):
    """The ``model`` node of the train config with ``model=name`` (it reads ``${units.*}`` from there); overrides
    are model keys (``gan_weight=0``) or units (``units.patch_size=128``)."""
    overrides = [o if o.startswith("units.") else f"model.{o}" for o in overrides or []]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[f"model={name}", *overrides]).model


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cylinder_proxy(batch: int, size: int, texel_mm: float = 0.1, radius_mm: float = 80.0):
    """Proxy position map ``[B, 3, H, W]`` (mm) of a vertical cylinder seen from +z, top at row 0, and its
    analytic outward unit normals."""
    rows = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size)
    cols = torch.arange(size, dtype=torch.float32)[None].expand(size, size)
    theta = (cols - size / 2) * texel_mm / radius_mm
    pos = torch.stack([radius_mm * theta.sin(), -rows * texel_mm, radius_mm * theta.cos()])
    normal = torch.stack([theta.sin(), torch.zeros_like(theta), theta.cos()])
    return pos.expand(batch, -1, -1, -1).clone(), normal.expand(batch, -1, -1, -1).clone()


def studio_sh(batch: int) -> torch.Tensor:
    """``[B, 3, 9]`` radiance SH: ambient plus a key light from the upper right front."""
    sh = torch.zeros(batch, 3, 9)
    sh[:, :, 0] = 2 * math.sqrt(math.pi) * 0.5  # uniform radiance 0.5
    sh[:, :, 3] = 0.6  # Y11 ~ x
    sh[:, :, 1] = 0.3  # Y1-1 ~ y
    sh[:, :, 2] = 0.8  # Y10 ~ z
    return sh
