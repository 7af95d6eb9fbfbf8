"""Scan samples as PyTorch datasets: sample sources (a folder, or procedural generation) and patch datasets.

A *source* maps an index to a :class:`~fds.data.sample_io.ScanSample`:

- :class:`ScanFolder`: sample folders on disk (procedural or real scans, ``fds.data.sample_io`` format);
- :class:`ProceduralSource`: generates the sample of ``seeds[i]`` on demand (inside DataLoader workers).

:class:`GeometryPatches` draws random patches (training); :class:`GeometryGridPatches` walks the full-map
grid of every sample (validation / inference order). Both yield the geometry batch contract::

    input         float32 [Cin,P,P]  preprocessed texture patch (fds.data.patches.preprocess)
    displacement  float32 [1,P,P]    GT in network units, clip(mm / disp_scale_mm, −1, 1)
    mask          float32 [1,P,P]    1 = valid GT texel
    region        str                zone the patch was drawn for (forehead, mouth, face, …)

:class:`GeometryPatches` with ``flat_line_weight > 0`` adds ``weight`` float32 [1,P,P] (loss weight per texel, ≥ 1:
more on dark lines the input shows and the GT relief does not have), and the grid dataset adds
``sample_index`` (int64) and ``top_left`` (int64 [2], texel row/col).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fds.data.patches import (
    Channels,
    candidate_origins,
    crop,
    grid_windows_in,
    needs_cue,
    needs_scale,
    patch_grid,
    preprocess,
    random_origin,
    to_network_units,
)
from fds.data.procedural import ProceduralScanGenerator
from fds.data.sample_io import ScanSample, coverage_to_uint8, list_samples, read_meta, read_sample
from fds.facemodel import load_face_model, zone_mask
from fds.proxy.photo_scale import mirror_scale
from fds.proxy.shading_cue import mirror_cue


class ScanFolder:
    """Sample folders under ``root`` (or the given ``folders``), validated when read."""

    def __init__(self, root: str | os.PathLike | None = None, folders: Sequence[str | os.PathLike] | None = None):
        if folders is None:
            if root is None:
                raise ValueError("ScanFolder needs root (a folder of sample folders) or an explicit folders list")
            folders = list_samples(root)
        self.folders = [Path(f) for f in folders]

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> ScanSample:
        return read_sample(self.folders[i])

    def chart_key(self, i: int) -> tuple[str, int]:
        meta = read_meta(self.folders[i])
        return str(meta.get("face_model", "sfm")), int(meta["resolution"])

    def valid_mask(self, i: int) -> np.ndarray:
        """Sample ``i``'s GT mask (bool ``[R, R]``), read alone from its ``maps.npz`` (no texture, no validation)."""
        with np.load(self.folders[i] / "maps.npz") as z:
            return np.asarray(z["mask"]) > 0

    def fit(self, i: int):
        """The fitted proxy (:class:`fds.proxy.fit.FitResult`) of photo-level sample ``i`` (its ``proxy/`` folder,
        as ``fds.data.photo_scans`` writes it)."""
        from fds.proxy.cache import load_result
        from fds.proxy.stage import ProxyResult

        folder = self.folders[i] / "proxy"
        if not (folder / "face0.npz").is_file():
            raise FileNotFoundError(f"{self.folders[i]} has no fitted proxy ({folder}/face0.npz): the photo scale "
                                    "(units.photo_scale) needs photo-level samples (data.scans.kind=photo)")
        return load_result(folder, ProxyResult, image_path=str(self.folders[i] / "photo.png")).fit


class ProceduralSource:
    """The procedural samples of ``seeds`` generated on demand (picklable, for DataLoader workers)."""

    def __init__(self, generator: ProceduralScanGenerator, seeds: Sequence[int]) -> None:
        self.generator, self.seeds = generator, [int(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> ScanSample:
        return self.generator.generate(self.seeds[i])

    def chart_key(self, i: int) -> tuple[str, int]:
        return self.generator.face_model_name, self.generator.resolution


class _Maps:
    """Per-process LRU cache of the arrays a patch needs, as torch tensors kept compact (9 MB per 1024² sample
    instead of 25 as floats): texture uint8 [3,R,R] (0–255), displacement float32 [1,R,R] (mm), mask bool
    [1,R,R], texel size [2] (mm), flat-line coverage uint8 [1,R,R] (0–255, ``ScanSample.flat_lines``; None
    when the sample has none), and the extra input channels float16 (None without): with ``cue`` the shading cue
    [2,R,R] (:mod:`fds.proxy.shading_cue`, computed from the texture as inference does), then with ``scale`` the
    photo scale [1,R,R] (:mod:`fds.proxy.photo_scale`, from the sample's fitted proxy as inference computes it);
    :func:`_geometry_item` converts a patch after cropping (the same values as converting first)."""

    def __init__(self, source, size: int, cue: bool = False, assets_dir=None, scale: bool = False) -> None:
        self.source, self.size, self.cue, self.assets_dir = source, max(int(size), 1), bool(cue), assets_dir
        self.scale = bool(scale)
        self._cache: OrderedDict[int, tuple] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"source": self.source, "size": self.size, "cue": self.cue, "assets_dir": self.assets_dir,
                "scale": self.scale, "_cache": OrderedDict()}

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None,
                                   torch.Tensor | None]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        s = self.source[i]
        item = (torch.from_numpy(np.array(s.texture, dtype=np.uint8)).permute(2, 0, 1).contiguous(),
                torch.from_numpy(s.displacement_mm)[None].float(), torch.from_numpy(s.mask.astype(bool))[None],
                torch.tensor(sample_texel_mm(s), dtype=torch.float32),
                None if (lines := s.flat_lines()) is None else torch.from_numpy(coverage_to_uint8(lines))[None],
                self._extra(i, s.texture))
        self._cache[i] = item
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return item

    def _extra(self, i: int, texture: np.ndarray) -> torch.Tensor | None:
        if not (self.cue or self.scale):
            return None
        from fds.proxy.shading_cue import shading_cue

        fm = _face_model(self.source.chart_key(i)[0], self.assets_dir)
        extra = [shading_cue(texture, fm)] if self.cue else []
        if self.scale:
            from fds.proxy.photo_scale import photo_scale_of_fit

            if not hasattr(self.source, "fit"):
                raise ValueError("the photo scale (units.photo_scale) needs photo-level samples with a fitted proxy "
                                 f"(data.scans.kind=photo), not a {type(self.source).__name__}")
            extra.append(photo_scale_of_fit(fm, self.source.fit(i), int(texture.shape[0])))
        return torch.cat(extra).half()


def sample_texel_mm(sample) -> list[float]:
    """Surface size (mm) of one texel along u and v: ``sample.json``'s ``texel_mm``, else the median spacing
    of the position map over valid texels (real scans written without it)."""
    if "texel_mm" in sample.meta:
        return [float(x) for x in sample.meta["texel_mm"]]
    p, m = sample.position_mm, sample.mask.astype(bool)
    du = np.linalg.norm(np.diff(p, axis=1), axis=-1)[m[:, 1:] & m[:, :-1]]
    dv = np.linalg.norm(np.diff(p, axis=0), axis=-1)[m[1:] & m[:-1]]
    return [float(np.median(du)), float(np.median(dv))]


def _valid_mask(source, k: int) -> np.ndarray:
    """Sample ``k``'s GT mask: cheaply where the source can read it alone (:meth:`ScanFolder.valid_mask`)."""
    return source.valid_mask(k) if hasattr(source, "valid_mask") else np.asarray(source[k].mask, bool)


def region_zone(face_model: str, resolution: int, region: str, assets_dir=None) -> np.ndarray:
    """``bool [R, R]`` UV zone of ``region`` for the face model named ``face_model`` (loaded once per process; both
    data streams place their patches in it)."""
    return zone_mask(_face_model(face_model, assets_dir), resolution, region)


_FM_CACHE: dict[tuple[str, str | None], object] = {}


def _face_model(name: str, assets_dir=None):
    key = (name, None if assets_dir is None else str(assets_dir))
    if key not in _FM_CACHE:
        _FM_CACHE[key] = load_face_model(name, assets_dir)
    return _FM_CACHE[key]


def _geometry_item(tex, disp_mm, mask, top, left, p, channels, scale, flip, quarter_turns: int = 0,
                   lines=None, flat_line_weight: float = 0.0, flat_line_reach: int = 2, extra=None) -> dict:
    """One patch; ``flip`` mirrors it left-right, then ``quarter_turns`` rotates it by 90° steps (input, GT and
    mask together: a texture patch and its relief seen under a rotated light). With ``flat_line_weight > 0`` the
    item also holds ``weight = 1 + flat_line_weight · coverage``, the flat-line coverage (uint8 ``lines [1,R,R]``,
    None: none) spread by a max filter over ``flat_line_reach`` texels (a false groove's walls flank the line).
    ``extra``: the extra input channels ``[C,R,R]`` of ``channels`` (the shading cue for "v_cue", the cue and the
    photo scale for "v_cue_scale", the scale for "v_scale"), which ride behind the texture's RGB; a mirrored patch
    gets the mirrored texture's cue (:func:`fds.proxy.shading_cue.mirror_cue`) and scale
    (:func:`fds.proxy.photo_scale.mirror_scale`); quarter turns are not defined for them."""
    t, d, m = crop(tex, top, left, p).float().div_(255), crop(disp_mm, top, left, p), crop(mask, top, left, p).float()
    if extra is not None and quarter_turns % 4:
        raise ValueError(f"rot90 augmentation is not defined for the extra input channels of {channels!r} (shading "
                         "cue, photo scale): set rot90=false")
    arrays = [t, d, m]
    if flat_line_weight > 0:
        c = crop(lines, top, left, p).float().div_(255) if lines is not None else torch.zeros_like(m)
        if flat_line_reach > 0:
            c = torch.nn.functional.max_pool2d(c[None], 2 * flat_line_reach + 1, stride=1, padding=flat_line_reach)[0]
        arrays.append(1.0 + flat_line_weight * c)
    if flip:
        arrays = [torch.flip(a, dims=[-1]) for a in arrays]
    if quarter_turns % 4:
        arrays = [torch.rot90(a, quarter_turns, dims=(-2, -1)) for a in arrays]
    t, d, m = arrays[:3]
    if extra is not None:
        c = crop(extra, top, left, p).float()
        if flip:
            k = 2 if needs_cue(channels) else 0  # the cue's channels come first
            c = torch.cat([mirror_cue(c[:k]), mirror_scale(c[k:])]) if k else mirror_scale(c)
        t = torch.cat([t, c])
    item = {"input": preprocess(t[None], channels)[0].contiguous(),
            "displacement": (to_network_units(d, scale) * m).contiguous(), "mask": m.contiguous()}
    if flat_line_weight > 0:
        item["weight"] = arrays[3].contiguous()
    return item


class GeometryPatches(Dataset):
    """Random GT patches from a source (see module doc). ``num_patches`` items per epoch; item ``i`` is drawn
    for region ``regions[i % len(regions)]`` from a random sample, at a random place whose centre lies in the
    region's zone and whose patch is at least ``min_valid`` valid. Randomness comes from torch's RNG (seeded
    per worker by the DataLoader), so epochs differ and runs repeat under a fixed seed.

    ``cache_size`` samples are kept in memory per worker; with a :class:`ProceduralSource` this is also how
    many generated samples are alive at once (each is generated once while it stays cached).

    Augmentation: ``hflip`` mirrors half the patches; ``rot90`` also turns each by a random multiple of 90°
    (with ``hflip``, all 8 symmetries of the square), so wrinkles of every orientation are seen as often as the
    common horizontal forehead furrows. A quarter turn swaps the patch's u and v texel sizes (``texel_mm``).

    ``flat_line_weight`` (> 0) adds the per-texel loss ``weight`` of :func:`_geometry_item` from the samples'
    ``marks.png`` and ``shadow_edges.png`` (photo-level samples, ``ScanSample.flat_lines``): the L1 and normal
    terms count a texel under a colour-only mark or a cast-shadow edge ``1 + flat_line_weight`` times, so "dark
    line, flat skin" is not outvoted by the far more common dark lines that are grooves.
    """

    def __init__(self, source, regions: Sequence[str] = ("forehead", "mouth"), patch_size: int = 256,
                 num_patches: int = 1000, channels: Channels = "v", disp_scale_mm: float = 2.0,
                 min_valid: float = 0.5, hflip: bool = True, rot90: bool = False, cache_size: int = 64,
                 assets_dir=None, flat_line_weight: float = 0.0, flat_line_reach: int = 2) -> None:
        if len(source) == 0:
            raise ValueError("GeometryPatches: the sample source is empty")
        if not regions:
            raise ValueError("regions must name at least one zone, e.g. ['forehead', 'mouth']")
        self.source, self.regions = source, list(regions)
        self.patch_size, self.num_patches, self.channels = int(patch_size), int(num_patches), channels
        self.disp_scale_mm, self.min_valid = float(disp_scale_mm), float(min_valid)
        self.hflip, self.rot90 = hflip, rot90
        if rot90 and (needs_cue(channels) or needs_scale(channels)):
            raise ValueError(f"rot90=true is not defined for the extra inputs of channels {channels!r} (a turned patch "
                             "would need its light turned too, and the scale is not turned): set rot90=false")
        if flat_line_weight < 0 or flat_line_reach < 0:
            raise ValueError(f"flat_line_weight ({flat_line_weight}) and flat_line_reach ({flat_line_reach}) "
                             "must be ≥ 0")
        self.flat_line_weight, self.flat_line_reach = float(flat_line_weight), int(flat_line_reach)
        self.assets_dir = assets_dir
        self._maps = _Maps(source, cache_size, needs_cue(channels), assets_dir, needs_scale(channels))
        self._cands: dict = {}

    def __len__(self) -> int:
        return self.num_patches

    def _candidates(self, k: int, region: str, mask: torch.Tensor) -> np.ndarray:
        fm_name, r = self.source.chart_key(k)
        m = mask[0].numpy() > 0.5
        key = (fm_name, r, region, hash(m.tobytes()))
        if key not in self._cands:
            zone = region_zone(fm_name, r, region, self.assets_dir) & m
            self._cands[key] = candidate_origins(zone, m, self.patch_size, self.min_valid)
        return self._cands[key]

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        region = self.regions[index % len(self.regions)]
        k = int(rng.integers(len(self.source)))
        tex, disp, mask, texel_mm, lines, extra = self._maps.get(k)
        top, left = random_origin(rng, self._candidates(k, region, mask), tex.shape[-1], self.patch_size)
        flip = self.hflip and bool(rng.random() < 0.5)
        turns = int(rng.integers(4)) if self.rot90 else 0
        item = _geometry_item(tex, disp, mask, top, left, self.patch_size, self.channels, self.disp_scale_mm, flip,
                              turns, lines, self.flat_line_weight, self.flat_line_reach, extra)
        item.update(region=region, texel_mm=texel_mm.flip(-1) if turns % 2 else texel_mm)
        return item


class GeometryGridPatches(Dataset):
    """Every full-map grid patch (``fds.data.patches.patch_grid``) of every sample and region, in order.
    ``max_patches`` keeps an evenly spread subset (for cheap validation). ``min_valid`` keeps only the windows a
    training patch could be (:func:`fds.data.patches.grid_windows_in`: centre in the zone, at least that fraction
    of valid GT texels); None keeps every window that touches the zone (full-map inference order)."""

    def __init__(self, source, regions: Sequence[str] = ("forehead", "mouth"), patch_size: int = 256,
                 stride: int | None = None, channels: Channels = "v", disp_scale_mm: float = 2.0,
                 max_patches: int | None = None, cache_size: int = 8, assets_dir=None,
                 min_valid: float | None = None) -> None:
        self.source, self.regions, self.patch_size = source, list(regions), int(patch_size)
        self.channels, self.disp_scale_mm = channels, float(disp_scale_mm)
        self._maps = _Maps(source, cache_size, needs_cue(channels), assets_dir, needs_scale(channels))
        index: list[tuple[int, str, int, int]] = []
        for k in range(len(source)):
            fm_name, r = source.chart_key(k)
            valid = None if min_valid is None else _valid_mask(source, k)
            for region in self.regions:
                zone = region_zone(fm_name, r, region, assets_dir)
                windows = (patch_grid(zone, self.patch_size, stride) if valid is None or min_valid is None
                           else grid_windows_in(zone, valid, self.patch_size, stride, min_valid))
                index.extend((k, region, int(top), int(left)) for top, left in windows)
        if max_patches is not None and len(index) > max_patches:
            index = [index[i] for i in np.linspace(0, len(index) - 1, int(max_patches)).astype(int)]
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        k, region, top, left = self.index[i]
        tex, disp, mask, texel_mm, _, extra = self._maps.get(k)
        item = _geometry_item(tex, disp, mask, top, left, self.patch_size, self.channels, self.disp_scale_mm, False,
                              extra=extra)
        item.update(region=region, texel_mm=texel_mm, sample_index=torch.tensor(k), top_left=torch.tensor([top, left]))
        return item
