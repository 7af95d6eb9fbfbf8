"""Random order-2 SH lighting environments (radiance coefficients in ``fds.render.shading``'s convention).

An environment is an ambient term plus 1–3 distant lights, projected exactly onto the 9 real SH: a distant
light of radiance I from direction d has L_lm = I·Y_lm(d). Directions are in the model frame (x right, y up,
z toward the viewer), drawn from the front hemisphere and mostly from above, like indoor/outdoor photos.
"""

from __future__ import annotations

import numpy as np
import torch

from fds.render.shading import SH_C0, sh_basis


def random_sh(rng: np.random.Generator, colour_jitter: float = 0.08) -> np.ndarray:
    """One environment → ``float32 [3, 9]`` (RGB radiance SH). Mean shading of a frontal face ≈ 0.6–1.1."""
    tint = 1 + rng.uniform(-colour_jitter, colour_jitter, 3)
    sh = np.zeros((3, 9), np.float64)
    sh[:, 0] = rng.uniform(0.25, 0.6) / SH_C0 * tint  # ambient: shading = L00·Y00
    n_lights = int(rng.integers(1, 4))
    for i in range(n_lights):
        theta = rng.uniform(0, np.deg2rad(70))  # angle from the view axis
        phi = rng.uniform(0, 2 * np.pi)
        d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi) * 0.8 + 0.25, np.cos(theta)])
        d /= np.linalg.norm(d)
        y = sh_basis(torch.tensor(d, dtype=torch.float64).view(1, 3, 1, 1))[0, :, 0, 0].numpy()
        power = rng.uniform(0.6, 1.6) * (1.0 if i == 0 else rng.uniform(0.2, 0.5))
        light_tint = 1 + rng.uniform(-colour_jitter, colour_jitter, 3)
        sh += power * light_tint[:, None] * y[None, :] * (4 * np.pi / 9)  # a light of solid-angle-ish weight
    return sh.astype(np.float32)
