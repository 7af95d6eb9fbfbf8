"""In-the-wild photos for the appearance loss: photo → proxy (``fds.proxy.ProxyStage``, cached) → UV maps.

Per photo (largest face), cached as ``<cache_dir>/appearance_R<R>/<proxy cache key>.npz``:

- ``texture`` uint8 [R,R,3] — the proxy's UV unwrap, resized to R (row 0 = top of the chart);
- ``visibility`` float16 [R,R] in [0, 1] — the proxy's confidence (occlusion-tested, n·view ramp);
- ``position_mm`` float32 [R,R,3] — proxy surface in mm, **model frame** (x right, y up, z to the viewer);
- ``normal`` float16 [R,R,3] — unit proxy normals, model frame;
- ``albedo`` float16 [R,R,3], ``sh`` float32 [3,9] — ``fds.render.estimate_sh_and_albedo`` on the visible
  texels with the model-frame normals, so I ≈ albedo · sh_irradiance(normal, sh) in the same frame as
  ``position_mm`` (what the appearance loss re-renders with the detailed normals);
- ``photo_scale`` float16 [R,R] — log2 photo pixels per texel of the fit (:mod:`fds.proxy.photo_scale`); a
  cache file written before it existed is written again (the proxy itself comes from its own cache).

Photos the proxy stage rejects (unreadable, no face, …) are skipped and listed in
``<cache_dir>/appearance_R<R>/skipped.json``; they never stop a run.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from fds.data.patches import Channels, candidate_origins, crop, needs_cue, needs_scale, preprocess, random_origin
from fds.data.sample_io import atomic_save_npz
from fds.facemodel.uvchart import uv_chart
from fds.progress import progress
from fds.proxy.photo_scale import photo_scale_of_fit
from fds.render import estimate_sh_and_albedo, vertex_normals

log = logging.getLogger(__name__)


def library_photos() -> list[Path]:
    """Face photos shipped inside installed packages (public domain): matplotlib's Grace Hopper and
    scikit-image's astronaut (Eileen Collins), when those packages are installed."""
    out = []
    try:
        import matplotlib.cbook

        out.append(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:  # matplotlib missing or its sample data stripped
        pass
    try:
        import skimage

        p = Path(skimage.__file__).parent / "data" / "astronaut.png"
        if p.is_file():
            out.append(p)
    except ImportError:
        pass
    return [p for p in out if p.is_file()]


def find_wild_photos(dirs: Sequence[str | os.PathLike], include_library: bool = True,
                     max_photos: int | None = None) -> list[Path]:
    """Images under ``dirs`` (recursive, sorted) + the library photos; ``max_photos`` keeps an evenly
    spread subset."""
    from fds.data.skin import find_photos

    photos = find_photos(dirs) + (library_photos() if include_library else [])
    if max_photos is not None and len(photos) > max_photos:
        photos = [photos[i] for i in np.linspace(0, len(photos) - 1, int(max_photos)).astype(int)]
    return photos


@dataclass
class Prepared:
    """Result of :func:`prepare_wild`: cached appearance files and the photos that were skipped."""

    files: list[Path]
    sources: list[str]
    skipped: list[tuple[str, str]]  # (photo, reason)


def appearance_maps(fm, result, resolution: int) -> dict[str, np.ndarray]:
    """UV appearance maps of one ``fds.proxy.ProxyResult`` (see module doc)."""
    chart = uv_chart(fm, resolution)
    tex = torch.from_numpy(np.array(result.uv.texture)).permute(2, 0, 1)[None].float() / 255
    conf = torch.from_numpy(np.array(result.uv.confidence, np.float32) * np.array(result.uv.visibility))[None, None]
    if tex.shape[-1] != resolution:
        tex = F.interpolate(tex, size=(resolution, resolution), mode="area" if tex.shape[-1] > resolution
                            else "bilinear")
        conf = F.interpolate(conf, size=(resolution, resolution), mode="bilinear", align_corners=False)
    conf = conf * torch.from_numpy(chart.covered)[None, None]
    verts = np.asarray(result.fit.vertices_mm, np.float32)
    position = chart.interpolate(verts)
    n_v = vertex_normals(torch.from_numpy(verts), torch.from_numpy(fm.triangles.astype(np.int64)))
    normal = F.normalize(torch.from_numpy(chart.interpolate(n_v.numpy())).permute(2, 0, 1)[None], dim=1)
    mask = conf * (tex.mean(1, keepdim=True) > 0.02)
    sh, albedo = estimate_sh_and_albedo(tex, normal, mask, sigma_px=resolution / 64)
    scale = photo_scale_of_fit(fm, result.fit, resolution)[0]
    return {"photo_scale": scale.numpy().astype(np.float16),
            "texture": (tex[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8),
            "visibility": conf[0, 0].numpy().astype(np.float16), "position_mm": position.astype(np.float32),
            "normal": normal[0].permute(1, 2, 0).numpy().astype(np.float16),
            "albedo": albedo[0].permute(1, 2, 0).clamp(0, 1).numpy().astype(np.float16),
            "sh": sh[0].numpy().astype(np.float32)}


def _has_all_maps(path: Path) -> bool:
    """A cache file exists and holds every map of this version (older ones lack ``photo_scale``)."""
    if not path.is_file():
        return False
    with np.load(path) as z:
        return "photo_scale" in z.files


def prepare_wild(photos: Sequence[Path], cache_dir: str | os.PathLike, resolution: int = 512,
                 proxy: dict | None = None, assets_dir=None, stage=None) -> Prepared:
    """Run (or reuse) the proxy for each photo and cache its appearance maps; skip and list failures."""
    from fds.proxy.stage import ProxyStage

    cache_dir = Path(cache_dir)
    out_dir = cache_dir / f"appearance_R{resolution}"
    stage = stage or ProxyStage(proxy, cache_dir=cache_dir / "proxy", assets_dir=assets_dir)
    files, sources, skipped = [], [], []
    for photo in progress(photos, "wild photos (proxy + appearance maps)", unit="photo"):
        try:
            from fds.proxy.stage import file_sha1

            key = stage.cache_key(file_sha1(Path(photo)))
            path = out_dir / f"{key}.npz"
            if not _has_all_maps(path):
                results = stage(photo)
                if not results:
                    raise RuntimeError("no face")
                atomic_save_npz(path, **appearance_maps(stage.face_model, results[0], resolution),
                                source=np.array(str(photo)))
            files.append(path)
            sources.append(str(photo))
        except Exception as exc:  # rejected photo: skipped and listed, never fatal
            skipped.append((str(photo), f"{type(exc).__name__}: {exc}"))
            log.warning("wild photos: skipped %s (%s)", photo, exc)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "skipped.json").write_text(json.dumps([{"photo": p, "reason": r} for p, r in skipped], indent=1))
    return Prepared(files, sources, skipped)


class WildPatches(Dataset):
    """Random appearance patches from prepared photos. Item ``i`` is drawn for ``regions[i % len]``::

        input        float32 [Cin,P,P]  preprocessed texture (fds.data.patches.preprocess)
        texture      float32 [3,P,P]    in [0, 1]
        visibility   float32 [1,P,P]    in [0, 1]
        position_mm  float32 [3,P,P]    proxy positions, mm, model frame
        normal       float32 [3,P,P]    unit proxy normals, model frame
        albedo       float32 [3,P,P]    estimated albedo
        sh           float32 [3,9]      estimated SH radiance (fds.render.shading convention, model frame)
        region       str
    """

    def __init__(self, files: Sequence[str | os.PathLike], face_model: str = "sfm",
                 regions: Sequence[str] = ("forehead", "mouth"), patch_size: int = 256, num_patches: int = 1000,
                 channels: Channels = "v", min_visible: float = 0.5, cache_size: int = 32,
                 assets_dir=None) -> None:
        if not files:
            raise ValueError("WildPatches: no prepared photos (did every photo fail the proxy stage?)")
        self.files, self.face_model, self.regions = [Path(f) for f in files], face_model, list(regions)
        self.patch_size, self.num_patches, self.channels = int(patch_size), int(num_patches), channels
        self.min_visible, self.cache_size, self.assets_dir = float(min_visible), cache_size, assets_dir
        self._cache: OrderedDict = OrderedDict()
        self._cands: dict = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_cands"] = OrderedDict(), {}
        return state

    def __len__(self) -> int:
        return self.num_patches

    def _load(self, k: int) -> dict[str, torch.Tensor]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        with np.load(self.files[k]) as z:
            def chw(a: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(np.array(a, np.float32)).permute(2, 0, 1)

            item = {"texture": chw(z["texture"]) / 255, "visibility": torch.from_numpy(
                np.array(z["visibility"], np.float32))[None], "position_mm": chw(z["position_mm"]),
                "normal": chw(z["normal"]), "albedo": chw(z["albedo"]), "sh": torch.from_numpy(np.array(z["sh"]))}
            scale = None
            if needs_scale(self.channels):  # the fit's, stored by prepare_wild
                if "photo_scale" not in z.files:
                    raise ValueError(f"{self.files[k]} has no photo_scale map (written by an older fds): run "
                                     "training again to prepare the wild photos, or delete the file")
                scale = torch.from_numpy(np.array(z["photo_scale"], np.float32))[None]
        extra = []  # the extra input channels, as inference computes them: cue (from the texture), photo scale
        if needs_cue(self.channels):
            from fds.data.scans import _face_model
            from fds.proxy.shading_cue import shading_cue

            extra.append(shading_cue(item["texture"], _face_model(self.face_model, self.assets_dir)))
        if scale is not None:
            extra.append(scale)
        if extra:
            item["extra"] = torch.cat(extra)
        self._cache[k] = item
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return item

    def _candidates(self, k: int, region: str, vis: torch.Tensor) -> np.ndarray:
        if (k, region) not in self._cands:
            from fds.data.scans import region_zone

            r = vis.shape[-1]
            valid = vis[0].numpy() > 0.5
            zone = region_zone(self.face_model, r, region, self.assets_dir) & valid
            try:
                self._cands[(k, region)] = candidate_origins(zone, valid, self.patch_size, self.min_visible)
            except ValueError:  # this photo shows too little of the region: fall back to the whole face
                self._cands[(k, region)] = candidate_origins(valid, valid, self.patch_size, 0.0)
        return self._cands[(k, region)]

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        region = self.regions[index % len(self.regions)]
        k = int(rng.integers(len(self.files)))
        maps = self._load(k)
        r = maps["texture"].shape[-1]
        top, left = random_origin(rng, self._candidates(k, region, maps["visibility"]), r, self.patch_size)
        out = {key: crop(maps[key], top, left, self.patch_size).contiguous()
               for key in ("texture", "visibility", "position_mm", "normal", "albedo")}
        image = torch.cat([out["texture"], crop(maps["extra"], top, left, self.patch_size)]) if "extra" in maps \
            else out["texture"]
        out["input"] = preprocess(image[None], self.channels)[0]
        out["sh"] = maps["sh"].clone()
        out["region"] = region
        return out
