"""Which of the camera's effects changes what the network reads? Held-out photos with one effect at a time.

The photo-level benchmark's photos carry the generator's camera (:mod:`fds.data.photo_render`: optical blur,
white balance, sensor noise, resolution loss, JPEG). Given a held-out folder rendered by that camera (``--drawn``)
and the same heads rendered by a perfect camera (``--clean``: ``PhotoConfig.camera_effects=false``, written by
``eval/run.py '+data.scans.photo.photo={camera_effects:false}' photo_level.data_dir=...``), this script writes one
held-out folder per variant under ``--out``. Each photo is the perfect camera's with some of the drawn effects
applied again, and is unwrapped with the *drawn* photo's fit: the fit, the GT and the scored pixels stay those of
the camera's photo, and only the pixels the network reads change. Variants:

- ``clean``: the perfect camera's photo as it is;
- ``blur``: the drawn optical blur (σ px, in linear light);
- ``noise``: sensor noise of the drawn shot / read levels (a fresh draw, ``--seed``);
- ``jpeg``: JPEG at the drawn quality with 4:2:0 chroma, as the camera encodes;
- ``jpeg444``: JPEG at the drawn quality without chroma subsampling (only the quantisation);
- ``chroma420``: JPEG at quality 100 with 4:2:0 chroma (the chroma subsampling, almost no quantisation);
- ``jpegQ`` (e.g. ``jpeg95``): JPEG at quality Q with 4:2:0 chroma;
- ``blur_noise_jpeg``: the three, in the camera's order.

Blur and noise are applied to the perfect camera's 8-bit photo taken back to linear light, so they approximate
the camera's (which works on the unquantised image); white balance and resolution loss are not applied.

    python benchmarks/camera_effects_one_by_one.py --drawn data/heldout_photos --clean data/heldout_photos_perfect \\
        --out data/camera_variants [--variants clean jpeg jpeg95] [--photos photo_950004_soft_front ...]

then score a variant as the benchmark does (``photo_level.start_seed`` = the set's first seed)::

    python eval/run.py photo_level.data_dir=data/camera_variants/jpeg photo_level.start_seed=950000 ...
    python benchmarks/photo_level_bands.py --data-dir data/camera_variants/jpeg

Folders already written are kept (delete one to write it again); each is written to a temporary name, then renamed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fds.data.degrade import gaussian_blur
from fds.data.photo_render import jpeg_roundtrip, linear_to_srgb, sensor_noise, srgb_to_linear
from fds.facemodel import load_face_model
from fds.proxy.landmarks import load_image
from fds.proxy.stage import ProxyResult
from fds.proxy.unwrap import UnwrapConfig, UnwrapResult, unwrap_texture

VARIANTS = ("clean", "blur", "noise", "jpeg", "jpeg444", "chroma420", "jpeg95", "blur_noise_jpeg")


def variant_photo(name: str, clean: np.ndarray, effects: dict, rng: np.random.Generator) -> np.ndarray:
    """The perfect camera's photo ``clean`` (``uint8 [H, W, 3]`` sRGB) with the variant ``name``'s effects, drawn as
    ``effects`` (a sample.json's ``photo.camera_effects``) says; ``uint8 [H, W, 3]``."""
    def linear() -> np.ndarray:
        return srgb_to_linear(clean.astype(np.float32) / 255).astype(np.float32)

    def blur(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        return gaussian_blur(t, float(effects["blur_sigma_px"]))[0].numpy().transpose(1, 2, 0)

    def noise(x: np.ndarray) -> np.ndarray:
        return x + sensor_noise(rng, x, float(effects["noise"]["shot"]), float(effects["noise"]["read"]))

    def to_8bit(x: np.ndarray) -> np.ndarray:
        return (linear_to_srgb(np.clip(x, 0, 1)) * 255 + 0.5).astype(np.uint8)

    if effects["jpeg_quality"] is None and name != "clean":
        raise ValueError("this photo was kept without JPEG (PhotoConfig.lossless_fraction): render the held-out set "
                         "with every photo JPEG-compressed")
    quality = int(effects["jpeg_quality"] or 0)
    steps: dict[str, Callable[[], np.ndarray]] = {
        "clean": lambda: clean,
        "blur": lambda: to_8bit(blur(linear())),
        "noise": lambda: to_8bit(noise(linear())),
        "jpeg": lambda: jpeg_roundtrip(clean, quality),
        "jpeg444": lambda: jpeg_roundtrip(clean, quality, subsampling=0),
        "chroma420": lambda: jpeg_roundtrip(clean, 100),
        "blur_noise_jpeg": lambda: jpeg_roundtrip(to_8bit(noise(blur(linear()))), quality),
    }
    if name in steps:
        return steps[name]()
    m = re.fullmatch(r"jpeg(\d+)", name)
    if m and 1 <= int(m.group(1)) <= 100:
        return jpeg_roundtrip(clean, int(m.group(1)))
    raise ValueError(f"unknown variant {name!r}: one of {', '.join(VARIANTS)} or jpegQ with Q in 1–100")


def write_variant(drawn: Path, clean: Path, out: Path, variant: str, photos: list[str], seed: int, fm=None) -> int:
    """Write ``out/<photo>`` for each photo folder name; returns how many were written (existing ones are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    if (drawn / "skipped.json").is_file():  # the set's record of photos that found no face, as eval/run.py reads it
        shutil.copy(drawn / "skipped.json", out / "skipped.json")
    written = 0
    for name in photos:
        if (out / name).exists():
            continue
        sample = json.loads((drawn / name / "sample.json").read_text())
        rng = np.random.default_rng([seed, int(sample["seed"])])
        image = variant_photo(variant, load_image(clean / name / "photo.png"), sample["photo"]["camera_effects"], rng)
        proxy = ProxyResult.load(drawn / name / "proxy")
        fm = fm if fm is not None else load_face_model(proxy.face_model)
        uv = unwrap_texture(image, fm, proxy.fit, UnwrapConfig(resolution=proxy.uv.texture.shape[0]))
        proxy.uv = UnwrapResult(uv.texture, uv.visibility, uv.confidence)
        tmp = out / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(drawn / name, tmp, ignore=shutil.ignore_patterns("proxy", "photo.png", "texture.png"))
        (tmp / "proxy").mkdir()
        proxy.save(tmp / "proxy")
        Image.fromarray(image).save(tmp / "photo.png")
        tmp.rename(out / name)
        written += 1
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drawn", type=Path, required=True, help="held-out folder rendered by the benchmark's camera")
    ap.add_argument("--clean", type=Path, required=True, help="the same heads rendered by a perfect camera")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--photos", nargs="*", help="photo folder names (default: every photo_* in both folders)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the noise variant's draw (with each head's seed)")
    a = ap.parse_args()
    photos = a.photos or sorted(p.name for p in a.drawn.glob("photo_*") if (a.clean / p.name / "photo.png").is_file())
    if not photos:
        raise SystemExit(f"no photo_* folder is in both {a.drawn} and {a.clean}")
    unknown = [v for v in a.variants if v not in VARIANTS and not re.fullmatch(r"jpeg(100|[1-9]\d?)", v)]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: use {', '.join(VARIANTS)} or jpegQ with Q in 1–100")
    for v in a.variants:
        n = write_variant(a.drawn, a.clean, a.out / v, v, photos, a.seed)
        print(f"{v}: {n} photos written, {len(photos) - n} kept, in {a.out / v}", flush=True)


if __name__ == "__main__":
    main()
