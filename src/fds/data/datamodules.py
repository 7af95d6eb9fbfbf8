"""Lightning DataModules: ``ScansDataModule`` (geometry), ``WildDataModule`` (appearance), ``GeoAppDataModule``.

- Scans: sample folders under ``data_dir``; when it holds none and ``generate_if_empty``, ``num_generate``
  procedural samples are written there first (so a fresh clone trains offline). ``kind="photo"`` uses the
  photo-level samples (``photo_<seed>`` folders, ``fds.data.photo_scans``: rendered photos through the real proxy
  stage) instead, generated the same way when there are none; ``kind="procedural"`` uses every other folder.
  The samples are split by ``split_seed`` into train/val (``val_fraction``, :func:`split_folders`: by name, so
  adding samples leaves the split nearly as it was). Train: random patches; val:
  the full-map grid (``val_stride``) windows a training patch could be (centre in the zone, ≥ ``min_valid`` valid
  GT), at most ``val_max_patches`` of them.
- Wild: photos from ``photo_dirs`` (+ the libraries' photos) → proxy + appearance maps cached under
  ``cache_dir`` (persistent across runs); rejected photos are skipped and listed (``skipped``).
- GeoApp (what every ``data`` config builds): train yields ``{"geo": geometry batch, "app": appearance batch}``
  (Lightning ``CombinedLoader``, ``max_size_cycle``), or the scans' batches alone without the wild stream; val
  yields geometry batches with GT.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from fds.data.patches import Channels, channels_of
from fds.data.procedural import ProceduralScanGenerator, default_albedo_dirs, write_procedural_samples
from fds.data.sample_io import list_samples, read_meta
from fds.data.scans import GeometryGridPatches, GeometryPatches, ProceduralSource, ScanFolder

log = logging.getLogger(__name__)


def split_folders(folders: Sequence[Path], val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """``(train, val)`` sample folders, each sorted: the ``ceil(val_fraction · N)`` folders (at least 1, at most
    N − 1) whose names hash lowest under ``seed`` are validation. A folder's side depends on its name, not on how
    many folders there are: adding samples moves at most a few folders at the margin, where a permutation of the
    count reshuffled every folder (a run started while generation was still writing validated on other heads than
    a later check of the same folder)."""
    folders = list(folders)
    n_val = max(min(max(math.ceil(val_fraction * len(folders)), 1), len(folders) - 1), 0)
    ranked = sorted(folders, key=lambda f: hashlib.sha256(f"{seed}:{Path(f).name}".encode()).digest())
    return sorted(ranked[n_val:]), sorted(ranked[:n_val])


def _loader(ds, batch_size: int, shuffle: bool, num_workers: int, persistent: bool, pin: bool) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, pin_memory=pin,
                      persistent_workers=persistent and num_workers > 0, drop_last=False)


class ScansDataModule(pl.LightningDataModule):
    """Geometry patches from scan samples (see module doc).

    Args:
        data_dir: folder of sample folders (``fds.data.sample_io`` format).
        kind: ``"procedural"`` (UV-space procedural scans) or ``"photo"`` (photo-level samples).
        generate_if_empty / num_generate / generation_workers: samples written when empty, with seeds
            from ``generate_start_seed`` (give held-out sets seeds no training set uses); photo-level seeds whose
            photo the proxy stage cannot use are skipped and listed in ``<data_dir>/skipped.json``.
        generator: keyword arguments of :class:`~fds.data.procedural.ProceduralScanGenerator`.
        photo: keyword arguments of :class:`~fds.data.photo_scans.PhotoScanGenerator` (``kind="photo"``).
        shared_data_dir: the shared data kit; its labelled photos feed the albedo bank unless
            ``generator.albedo_dirs`` is given.
        on_the_fly: train on ``num_on_the_fly`` freshly generated samples (seeds after the written ones)
            instead of the folder's train split; generation then happens inside the workers.
        regions, patch_size, rgb, log_input, shading_cue, photo_scale, luma, disp_scale_mm, min_valid, hflip,
            rot90: patch contract and training augmentation (``fds.data.scans``; input mode:
            ``fds.data.patches.channels_of``).
        train_patches_per_epoch, val_stride, val_max_patches: epoch sizes.
        val_fraction, split_seed: the train/val split of the sample folders.
        batch_size, num_workers, persistent_workers, pin_memory, cache_size: loader settings.
        flat_line_weight, flat_line_reach: extra loss weight on dark lines the GT says are flat (``marks.png``,
            ``shadow_edges.png`` of photo-level samples) and its spread in texels
            (:class:`~fds.data.scans.GeometryPatches`); 0 = none.
    """

    if TYPE_CHECKING:  # the constructor's arguments, as save_hyperparameters() stores them

        @property
        def hparams(self) -> Any: ...

    def __init__(self, data_dir: str | os.PathLike, generate_if_empty: bool = True, num_generate: int = 16,
                 generation_workers: int = 0, generator: dict | None = None, generate_start_seed: int = 0,
                 shared_data_dir: str | os.PathLike | None = None, on_the_fly: bool = False,
                 num_on_the_fly: int = 64, regions: Sequence[str] = ("forehead", "mouth"), patch_size: int = 256,
                 rgb: bool = False, disp_scale_mm: float = 2.0, min_valid: float = 0.5, hflip: bool = True,
                 rot90: bool = False, train_patches_per_epoch: int = 512, val_stride: int | None = None,
                 val_max_patches: int | None = 64,
                 val_fraction: float = 0.1, split_seed: int = 0, batch_size: int = 8, num_workers: int = 0,
                 persistent_workers: bool = True, pin_memory: bool = False, cache_size: int = 64,
                 assets_dir: str | os.PathLike | None = None, kind: str = "procedural",
                 photo: dict | None = None, flat_line_weight: float = 0.0, flat_line_reach: int = 2,
                 log_input: bool = False, shading_cue: bool = False, photo_scale: bool = False,
                 luma: bool = False) -> None:
        super().__init__()
        if kind not in ("procedural", "photo"):
            raise ValueError(f"data.scans.kind must be 'procedural' or 'photo', got {kind!r}")
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.regions = list(regions)
        self.channels: Channels = channels_of(rgb, log_input, shading_cue, photo_scale, luma)
        self.train_set: GeometryPatches | None = None
        self.val_set: GeometryGridPatches | None = None
        self.train_folders: list[Path] = []
        self.val_folders: list[Path] = []

    def make_generator(self) -> ProceduralScanGenerator:
        kw = dict(self.hparams.generator or {})
        kw.setdefault("albedo_dirs", default_albedo_dirs(self.hparams.shared_data_dir))
        kw.setdefault("cache_dir", str(self.data_dir.parent / "cache"))
        kw.setdefault("assets_dir", self.hparams.assets_dir)
        return ProceduralScanGenerator(**kw)

    def make_photo_generator(self):
        from fds.data.photo_scans import PhotoScanGenerator

        kw = dict(self.hparams.photo or {})
        shared = self.hparams.shared_data_dir
        kw.setdefault("albedo_dirs", default_albedo_dirs(shared))
        wild = Path(shared) / "faces" / "wild" if shared else None
        kw.setdefault("background_dirs", [str(wild)] if wild is not None and wild.is_dir() else [])
        kw.setdefault("cache_dir", str(self.data_dir.parent / "cache"))
        kw.setdefault("assets_dir", self.hparams.assets_dir)
        return PhotoScanGenerator(**kw)

    def samples(self) -> list[Path]:
        """The sample folders of this ``kind`` under ``data_dir`` (photo: ``photo_*``; procedural: the rest)."""
        from fds.data.photo_scans import SAMPLE_PREFIX

        photo = [f.name.startswith(SAMPLE_PREFIX) for f in list_samples(self.data_dir)]
        return [f for f, p in zip(list_samples(self.data_dir), photo, strict=True)
                if p == (self.hparams.kind == "photo")]

    def prepare_data(self) -> None:
        if not self.samples():
            hp = self.hparams
            if not hp.generate_if_empty:
                script = "generate_photo_scans.py" if hp.kind == "photo" else "generate_scans.py"
                raise FileNotFoundError(
                    f"no {hp.kind} scan samples under {self.data_dir}: run datasets/{script} or set "
                    "data.scans.generate_if_empty=true")
            log.info("generating %d %s scan samples into %s", hp.num_generate, hp.kind, self.data_dir)
            if hp.kind == "photo":
                from fds.data.photo_scans import write_photo_samples

                seeds = range(hp.generate_start_seed, hp.generate_start_seed + hp.num_generate)
                report = write_photo_samples(self.data_dir, seeds, self.make_photo_generator(),
                                             workers=hp.generation_workers)
                log.info("photo samples: %s", report.format())
                return
            write_procedural_samples(self.data_dir, hp.num_generate, self.make_generator(),
                                     start_seed=hp.generate_start_seed, workers=hp.generation_workers)

    def _warn_if_generated_differently(self, folders: Sequence[Path]) -> None:
        """Warn when procedural samples on disk were made with other appearance settings than the config's
        (e.g. folders written before cavity occlusion existed): training would silently use the old look."""
        kw = dict(self.hparams.generator or {})
        want = {"strength": float(kw.get("occlusion_strength", 1.0)),
                "radius_mm": float(kw.get("occlusion_radius_mm", 1.5))}
        metas = {f.name: read_meta(f) for f in folders[:8]}  # a few samples: folders are written by one generator
        before = {"strength": 0.0, "radius_mm": want["radius_mm"]}  # samples written before occlusion existed
        stale = [name for name, m in metas.items() if m.get("source") == "procedural"
                 and m.get("occlusion", before) != want]
        if stale:
            log.warning("scan samples %s in %s were generated with other cavity-occlusion settings than the "
                        "config's %s: move the folder away to regenerate them, or set data.scans.generator."
                        "occlusion_* to match", ", ".join(stale), self.data_dir, want)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        folders = self.samples()
        if not folders:
            self.prepare_data()
            folders = self.samples()
        self._warn_if_generated_differently(folders)
        self.train_folders, self.val_folders = split_folders(folders, self.hparams.val_fraction,
                                                             self.hparams.split_seed)
        hp = self.hparams
        common = dict(regions=self.regions, patch_size=hp.patch_size, channels=self.channels,
                      disp_scale_mm=hp.disp_scale_mm, assets_dir=hp.assets_dir)
        source: Any
        if hp.on_the_fly:
            start = 1 + max((int(f.name.split("_")[-1]) for f in folders if f.name.split("_")[-1].isdigit()),
                            default=-1)
            seeds = range(start + 10_000, start + 10_000 + hp.num_on_the_fly)
            if hp.kind == "photo":
                from fds.data.photo_scans import PhotoSource

                gen = self.make_photo_generator()
                gen.prepare()  # banks built once here; they travel to the workers with the generator
                source = PhotoSource(gen, seeds)
            else:
                gen = self.make_generator()
                gen.bank  # noqa: B018  build the albedo bank once here; it travels to the workers with the generator
                source = ProceduralSource(gen, seeds)
        else:
            source = ScanFolder(folders=self.train_folders)
        self.train_set = GeometryPatches(source, num_patches=hp.train_patches_per_epoch, min_valid=hp.min_valid,
                                         hflip=hp.hflip, rot90=hp.rot90, cache_size=hp.cache_size,
                                         flat_line_weight=hp.flat_line_weight,
                                         flat_line_reach=hp.flat_line_reach, **common)
        val_source = ScanFolder(folders=self.val_folders or self.train_folders[:1])
        # validation windows are ones training could draw (centre in the zone, ≥ min_valid valid GT): windows that
        # only touch the zone are mostly its rim, which no photo shows well, and scored ≈ 0 for any weights
        self.val_set = GeometryGridPatches(val_source, stride=hp.val_stride, max_patches=hp.val_max_patches,
                                           min_valid=hp.min_valid, **common)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return _loader(self.train_set, hp.batch_size, False, hp.num_workers, hp.persistent_workers, hp.pin_memory)

    def val_dataloader(self) -> DataLoader:
        hp = self.hparams
        return _loader(self.val_set, hp.batch_size, False, min(hp.num_workers, 1), hp.persistent_workers,
                       hp.pin_memory)


class WildDataModule(pl.LightningDataModule):
    """Appearance patches from in-the-wild photos (see module doc and ``fds.data.wild``).

    Args:
        photo_dirs: folders of photos (recursive); ``include_library_photos`` adds matplotlib's and
            scikit-image's sample faces; ``max_photos`` keeps an evenly spread subset (``None``: all).
        cache_dir: persistent cache of proxies and appearance maps.
        resolution: UV map size of the appearance maps; ``proxy``: ``fds.proxy.ProxyConfig`` overrides.
        regions, patch_size, rgb, log_input, shading_cue, photo_scale, luma, min_visible: patch contract (input mode:
            fds.data.patches.channels_of);
            train_patches_per_epoch: epoch size.
    """

    if TYPE_CHECKING:  # the constructor's arguments, as save_hyperparameters() stores them

        @property
        def hparams(self) -> Any: ...

    def __init__(self, photo_dirs: Sequence[str | os.PathLike] = (), cache_dir: str | os.PathLike = "data/cache",
                 include_library_photos: bool = True, max_photos: int | None = None, resolution: int = 1024,
                 proxy: dict | None = None, regions: Sequence[str] = ("forehead", "mouth"), patch_size: int = 256,
                 rgb: bool = False, min_visible: float = 0.5, train_patches_per_epoch: int = 512,
                 batch_size: int = 8, num_workers: int = 0, persistent_workers: bool = True,
                 pin_memory: bool = False, cache_size: int = 32, assets_dir: str | os.PathLike | None = None,
                 log_input: bool = False, shading_cue: bool = False, photo_scale: bool = False,
                 luma: bool = False) -> None:
        super().__init__()
        channels_of(rgb, log_input, shading_cue, photo_scale, luma)  # refuse a mix of flags now, not at setup
        self.save_hyperparameters(logger=False)
        self.train_set: Any = None  # fds.data.wild.WildPatches after setup()
        self.skipped: list[tuple[str, str]] = []
        self.sources: list[str] = []

    def _prepare(self):
        from fds.data.wild import find_wild_photos, prepare_wild

        hp = self.hparams
        photos = find_wild_photos([d for d in hp.photo_dirs if d], hp.include_library_photos, hp.max_photos)
        if not photos:
            raise FileNotFoundError(f"no photos found in {list(hp.photo_dirs)} (set data.wild.photo_dirs)")
        proxy = dict(hp.proxy or {})
        proxy.setdefault("unwrap", {})
        proxy["unwrap"] = {"resolution": hp.resolution, **dict(proxy["unwrap"])}
        return prepare_wild(photos, hp.cache_dir, hp.resolution, proxy, hp.assets_dir)

    def prepare_data(self) -> None:
        self._prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        from fds.data.wild import WildPatches

        hp = self.hparams
        prepared = self._prepare()  # cached: only reads what prepare_data wrote
        self.skipped, self.sources = prepared.skipped, prepared.sources
        if self.skipped:
            log.warning("wild photos: %d skipped (listed in %s/appearance_R%d/skipped.json)", len(self.skipped),
                        hp.cache_dir, hp.resolution)
        face_model = (hp.proxy or {}).get("face_model", "sfm")
        self.train_set = WildPatches(prepared.files, face_model, hp.regions, hp.patch_size,
                                     hp.train_patches_per_epoch, channels_of(hp.rgb, hp.log_input, hp.shading_cue,
                                                                             hp.photo_scale, hp.luma),
                                     hp.min_visible, hp.cache_size, hp.assets_dir)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return _loader(self.train_set, hp.batch_size, False, hp.num_workers, hp.persistent_workers, hp.pin_memory)


class GeoAppDataModule(pl.LightningDataModule):
    """The training data: a ``scans`` stream and an optional ``wild`` stream (DataModules or their kwargs).

    With ``use_wild`` train batches are ``{"geo": geometry batch, "app": appearance batch}`` (a ``CombinedLoader``
    in ``mode``); without it they are the scans' geometry batches and the wild stream is never prepared (no
    photos, no proxy stage). Validation is always the scans' full-map grid.
    """

    def __init__(self, scans: ScansDataModule | dict, wild: WildDataModule | dict | None = None,
                 mode: str = "max_size_cycle", use_wild: bool = True):
        super().__init__()
        if use_wild and wild is None:
            raise ValueError("use_wild=true needs a wild stream (data.wild); set data.use_wild=false for scans only")
        self.scans = scans if isinstance(scans, ScansDataModule) else ScansDataModule(**dict(scans))
        self.wild: WildDataModule | None = None
        if use_wild:
            assert wild is not None
            self.wild = wild if isinstance(wild, WildDataModule) else WildDataModule(**dict(wild))
        self.mode = mode

    def prepare_data(self) -> None:
        self.scans.prepare_data()
        if self.wild is not None:
            self.wild.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.scans.setup(stage)
        if self.wild is not None:
            self.wild.setup(stage)

    def train_dataloader(self):
        if self.wild is None:
            return self.scans.train_dataloader()
        from pytorch_lightning.utilities import CombinedLoader

        return CombinedLoader({"geo": self.scans.train_dataloader(), "app": self.wild.train_dataloader()},
                              mode=self.mode)

    def val_dataloader(self) -> DataLoader:
        return self.scans.val_dataloader()
