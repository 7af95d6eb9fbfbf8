"""``DetailPredictor``: a DFDN checkpoint as one object that turns a proxy's UV texture into a UV displacement map.

Inference (:mod:`fds.pipeline`), evaluation (:mod:`fds.evaluation`, :mod:`fds.evaluation_photos`), the demo and
the notebooks all predict detail through it. Built from a checkpoint (its frozen
:class:`~fds.models.checkpoint.CheckpointMeta` says the units) and the face model whose UV chart the proxy uses,
which must be the one the checkpoint was trained in (checked once, here). Maps follow the project's UV
convention (``[R, R]``, row 0 = v 0 = top of the map); displacements are mm along the proxy's outward normal.

- :meth:`DetailPredictor.full_map`: the network's full map of a UV texture at the checkpoint's texel density
  (``meta.map_resolution``): a Gaussian-blended patch grid per zone (:mod:`fds.synthesis`; by default half a patch
  between windows, the paper's is a quarter), averaged with the map of the left-right mirrored texture
  (``flip_average``, the default);
- :meth:`DetailPredictor.predict` / ``predictor(proxy_result)``: that map faded out towards the texels the photo
  does not see (:func:`seen_weight`) and resampled to the output resolution, with warnings for the user.

A checkpoint that reads the photo scale (channels ``v_scale``, ``v_cue_scale``: :mod:`fds.proxy.photo_scale`)
needs the fit the texture was unwrapped through: ``predictor(proxy_result)`` takes it from the result, and the map
methods take it as ``fit=``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from fds.memory import release_free_memory
from fds.synthesis import DetailSynthesis, synthesize_displacement, upsample_mask

if TYPE_CHECKING:
    from fds.facemodel import FaceModel
    from fds.models.checkpoint import CheckpointMeta
    from fds.proxy import ProxyResult


@dataclass
class DetailMap:
    """A predicted displacement map of one face (UV image convention, row 0 = v 0)."""

    displacement_mm: np.ndarray  # [R, R] float32, mm along the outward normal; 0 outside ``coverage``
    coverage: np.ndarray  # [R, R] bool: texels with a prediction that the photo sees
    warnings: list[str] = field(default_factory=list)  # one sentence each, for result.json

    @property
    def resolution(self) -> int:
        return int(self.displacement_mm.shape[0])


def seen_weight(visible: np.ndarray, sigma_texels: float) -> np.ndarray:
    """A ``float32 [R, R]`` weight in [0, 1] that is 1 well inside the ``visible`` texels (bool ``[R, R]``) and fades
    to 0 over about 2σ texels at their border (0 outside): detail ends softly where the photo stops showing skin.
    σ ≤ 0 returns the mask itself."""
    v = torch.from_numpy(visible.astype(np.float32))[None, None]
    if sigma_texels > 0:
        import kornia

        k = int(2 * round(3 * sigma_texels) + 1)
        v = kornia.filters.gaussian_blur2d(v, (k, k), (sigma_texels, sigma_texels))
        v = ((v - 0.5) * 2).clamp(0, 1) * torch.from_numpy(visible)[None, None]
    return v[0, 0].numpy()


class FitRequired(ValueError):
    """A checkpoint that reads the photo scale was asked for a map without the fit the texture came through."""


class SettingRefused(ValueError):
    """A predictor setting this checkpoint cannot run with (e.g. a patch stride over its patch size)."""


class FaceModelMismatch(ValueError):
    """The proxies use another face model (UV chart) than the checkpoint was trained in."""


def check_face_model(meta: CheckpointMeta, face_model: str, source: str | os.PathLike = "the checkpoint") -> None:
    """Refuse a proxy face model other than the one whose UV chart the checkpoint was trained in."""
    if meta.face_model != face_model:
        raise FaceModelMismatch(f"checkpoint {source} was trained in the {meta.face_model!r} UV chart but the proxy "
                                f"uses {face_model!r}: set proxy.face_model={meta.face_model} or use a checkpoint "
                                "trained on that face model")


class DetailPredictor:
    """UV texture → UV displacement map (mm) by one DFDN checkpoint, for one face model.

    Args:
        module: a ``DFDNModule`` carrying its parsed ``meta`` (:func:`fds.models.checkpoint.load_detail_module`).
        face_model: the :class:`~fds.facemodel.FaceModel` of the proxies; must be the checkpoint's.
        batch_size: patches per network call.
        mode: ``"patches"`` (a Gaussian-blended patch grid) or ``"full"`` (one pass, whole-map networks only).
        flip_average: also run the left-right mirrored texture (the networks train on mirrored patches too) and
            average the two maps where both cover a texel: twice the network time, less prediction noise.
        patch_stride: texels between neighbouring patches of the grid, at the network's density (None: half the
            patch, 50 % overlap; a quarter, 64 texels for 256² patches, is the paper's 75 % overlap and runs
            about 4x the patches). The defaults (flip-averaged, half a patch) read the photo-level benchmark
            better than the paper's grid in one pass, in about half its time (docs/bench_photo_level.md).
        edge_blur_texels: σ of the fade towards unseen texels (:func:`seen_weight`).
        resolution: side of :meth:`predict`'s maps, texels (None: the checkpoint's ``map_resolution``); the
            network always runs at its training density and other sizes are bicubic resamplings.
        fused: predict with a copy whose BatchNorm is folded into the convolutions and whose weights are
            channels-last (:func:`fds.models.fusion.inference_copy`); False runs ``module`` itself.
        shared_windows: when one network serves every zone, run a window that several zone grids share once;
            False predicts every zone's windows (the plain reference). Both fast paths give the same map up to
            float32 summation order (``tests/test_fast_paths.py``).
        source: how errors name the checkpoint (its path).
    """

    def __init__(self, module, face_model: FaceModel, *, batch_size: int = 8, mode: str = "patches",
                 flip_average: bool = True, edge_blur_texels: float = 4.0, resolution: int | None = None,
                 patch_stride: int | None = None, fused: bool = True, shared_windows: bool = True,
                 source: str | os.PathLike = "the checkpoint") -> None:
        from fds.models.fusion import inference_copy

        self.meta: CheckpointMeta = module.meta
        check_face_model(self.meta, face_model.name, source)
        if mode not in ("patches", "full"):
            raise ValueError(f"detail mode must be 'patches' or 'full', got {mode!r}")
        if mode == "full" and self.meta.map_resolution != self.meta.patch_size:
            raise ValueError(f"detail.mode=full needs a network that takes whole {self.meta.map_resolution}² maps; "
                             f"this checkpoint takes {self.meta.patch_size}² patches (its PCA basis is "
                             "patch-sized): use detail.mode=patches")
        if mode == "full" and self.meta.channels != "v":
            raise ValueError(f"detail.mode=full feeds the paper's V input; this checkpoint takes "
                             f"{self.meta.channels!r}: use detail.mode=patches")
        self.module, self.face_model, self.source = module, face_model, str(source)
        self.batch_size, self.mode, self.flip_average = int(batch_size), mode, bool(flip_average)
        self.edge_blur_texels = float(edge_blur_texels)
        self.resolution = int(resolution) if resolution else self.meta.map_resolution
        if patch_stride is not None and not 1 <= int(patch_stride) <= self.meta.patch_size:
            raise SettingRefused(f"detail.patch_stride must be 1 to the patch size ({self.meta.patch_size} texels) "
                                 f"or null (half the patch), got {patch_stride}")
        self.patch_stride = None if patch_stride is None else int(patch_stride)
        self.fused, self.shared_windows = fused, shared_windows
        self.network: Any = (inference_copy(module, fold_bn=not module.hparams.inference_batch_stats) if fused
                             else module)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, face_model: FaceModel | None = None, device: str = "cpu",
                        assets_dir: str | os.PathLike | None = None, **settings: Any) -> DetailPredictor:
        """Load ``path`` (weights-only safetensors) onto ``device``; ``face_model`` defaults to the checkpoint's."""
        from fds.models.checkpoint import load_detail_module

        module = load_detail_module(path, device)
        if face_model is None:
            from fds.facemodel import load_face_model

            face_model = load_face_model(module.meta.face_model, assets_dir)
        return cls(module, face_model, source=path, **settings)

    def untrained(self, seed: int = 0) -> DetailPredictor:
        """The same networks freshly initialised from ``seed`` (what training has to beat), same settings."""
        from fds.models.checkpoint import build_detail_module

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_detail_module(self.meta, self.module.device)
        return self.with_module(module, f"untrained {self.source}")

    def with_module(self, module, source: str | os.PathLike) -> DetailPredictor:
        """Another ``DFDNModule`` (e.g. another checkpoint, on this predictor's device) with these settings."""
        return DetailPredictor(module, self.face_model, batch_size=self.batch_size, mode=self.mode,
                               flip_average=self.flip_average, edge_blur_texels=self.edge_blur_texels,
                               resolution=self.resolution, patch_stride=self.patch_stride, fused=self.fused,
                               shared_windows=self.shared_windows, source=source)

    @property
    def disp_scale_mm(self) -> float:
        return self.meta.disp_scale_mm

    @property
    def map_resolution(self) -> int:
        return self.meta.map_resolution

    # ------------------------------------------------------------------------------------------ full map
    @property
    def needs_fit(self) -> bool:
        """Whether the checkpoint reads the photo scale, so its maps need the proxy's fit (module doc)."""
        from fds.data.patches import needs_scale

        return needs_scale(self.meta.channels)

    def full_map(self, uv_texture: np.ndarray, fit: Any = None) -> DetailSynthesis:
        """The network's displacement map (mm) of a UV texture (any size; resampled) at ``map_resolution``: every
        zone's patch grid stitched with the paper's Gaussian weights, averaged with the mirrored texture's map
        where both cover a texel when ``flip_average``. Texels no patch covers are 0 (``coverage`` False).
        ``fit``: the :class:`~fds.proxy.fit.FitResult` the texture was unwrapped through (needed when
        :attr:`needs_fit`; ignored otherwise)."""
        return self._full_map(uv_texture, self._photo_scale(fit))

    def _photo_scale(self, fit: Any) -> torch.Tensor | None:
        """``[1, n, n]`` photo scale of ``fit`` at the network's density when the checkpoint reads it, else None."""
        if not self.needs_fit:
            return None
        if fit is None:
            raise FitRequired(f"checkpoint {self.source} reads the photo scale (channels {self.meta.channels!r}), "
                              "which comes from the fitted proxy: call predictor(proxy_result), or pass fit=")
        from fds.proxy.photo_scale import photo_scale_of_fit

        return photo_scale_of_fit(self.face_model, fit, self.map_resolution)

    def _full_map(self, uv_texture: np.ndarray, scale: torch.Tensor | None) -> DetailSynthesis:
        res = self._one_pass(uv_texture, scale)
        if not self.flip_average:
            return res
        from fds.proxy.photo_scale import mirror_scale

        mirrored = self._one_pass(np.ascontiguousarray(np.asarray(uv_texture)[:, ::-1]),
                                  None if scale is None else mirror_scale(scale))
        other, other_cov = mirrored.displacement_mm[:, ::-1], mirrored.coverage[:, ::-1]
        both = res.coverage & other_cov
        disp = np.where(both, 0.5 * (res.displacement_mm + other), res.displacement_mm).astype(np.float32)
        return dataclasses.replace(res, displacement_mm=disp)

    def _one_pass(self, uv_texture: np.ndarray, scale: torch.Tensor | None = None) -> DetailSynthesis:
        from fds.data.patches import needs_cue, preprocess
        from fds.facemodel import zone_mask

        meta, net, n = self.meta, self.network, self.meta.map_resolution
        texture: np.ndarray | torch.Tensor = uv_texture
        extra = None
        if needs_cue(meta.channels):  # the shading cue of the texture at the network's density
            from fds.proxy.shading_cue import shading_cue
            from fds.synthesis import texture_to_tensor

            texture = texture_to_tensor(uv_texture, n)[0]  # [3, n, n] in [0, 1]: converted once, for both
            extra = shading_cue(texture, self.face_model)
        if scale is not None:  # the photo scale, last (channels "v_cue_scale", "v_scale")
            extra = scale if extra is None else torch.cat([extra, scale])

        def predict(x: torch.Tensor, region: str) -> torch.Tensor:
            with torch.no_grad():
                return net.predict_step({"input": x.to(net.device), "region": region}, 0)["displacement"].cpu()

        return synthesize_displacement(
            texture, predict, resolution=n, disp_scale_mm=meta.disp_scale_mm,
            regions={r: zone_mask(self.face_model, n, r) for r in meta.regions}, patch_size=meta.patch_size,
            stride=self.patch_stride or meta.patch_size // 2, batch_size=self.batch_size, mode=self.mode,
            preprocess=(lambda t: preprocess(t, meta.channels)) if self.mode == "patches" else None,
            shared_network=self.shared_windows and bool(getattr(net.inference_generator, "shared", False)),
            extra=extra)

    # ------------------------------------------------------------------------------------------ one face
    def predict(self, uv_texture: np.ndarray, confidence: np.ndarray, fit: Any = None) -> DetailMap:
        """The detail of one face at ``resolution``: :meth:`full_map` of its UV texture (``fit``: as there), faded
        out towards the texels the photo does not see (``confidence`` ``[R', R']`` > 0, any size) and resampled;
        a warning when less than half of the chart is seen, when the map is a resampling, or (checkpoints that read
        the photo scale) when the face is smaller or larger in the photo than any the network was trained on."""
        n = self.map_resolution
        scale = self._photo_scale(fit)
        release_free_memory()  # the photo scale's freed float64 buffers, before the network's peak
        res = self._full_map(uv_texture, scale)
        visible = upsample_mask(np.asarray(confidence) > 0, n)
        disp = res.displacement_mm * seen_weight(visible & res.coverage, self.edge_blur_texels)
        coverage = res.coverage & visible
        warnings = []
        if scale is not None:  # a face smaller or larger in the photo than the network was trained on
            from fds.proxy.photo_scale import face_photo_scale, photo_scale_warnings

            width = float(np.ptp(fit.project(fit.vertices_mm)[:, 0]))
            trained = self.meta.trained_photo_scales()  # at the checkpoint's density, which the map is at
            assert trained is not None  # a network that reads the scale always has one
            warnings += photo_scale_warnings(face_photo_scale(scale, self.face_model), n, width,
                                             trained_range=trained, range_resolution=n)
        seen = coverage.sum() / max(res.coverage.sum(), 1)
        if seen < 0.5:
            warnings.append(f"only {seen:.0%} of the face's UV chart is visible in the photo: detail is partial")
        if self.resolution != n:
            warnings.append(f"detail synthesised at {n}² (the checkpoint's texel density) and resampled to "
                            f"{self.resolution}²")
            t = torch.from_numpy(disp)[None, None]
            disp = F.interpolate(t, size=(self.resolution,) * 2, mode="bicubic", align_corners=False)[0, 0].numpy()
            coverage = upsample_mask(coverage, self.resolution)
            disp = disp * coverage
        return DetailMap(disp.astype(np.float32), coverage, warnings)

    def __call__(self, result: ProxyResult) -> DetailMap:
        """:meth:`predict` on a :class:`~fds.proxy.ProxyResult` (its UV texture, confidence and fit)."""
        return self.predict(result.uv.texture, result.uv.confidence, result.fit)
