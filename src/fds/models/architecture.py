"""The DFDN networks a checkpoint may describe: one typed spec per fds network class, validated as data.

A checkpoint's ``model_config`` is the Hydra ``model`` node the weights were trained with. It is read here as
*data*, never instantiated: a node's ``_target_`` is only a tag that must name one of the classes in
:data:`REGISTRY`, every other key must be one of that class's known constructor arguments with the right type
and range, and the network is built by calling fds's own class with the validated values. Nothing named in a
file is imported or called. Errors are :class:`SchemaError` with the dotted key (``generator.model.pdim.ngf``).

>>> spec = DFDNSpec.parse({"_target_": "fds.models.module.DFDNModule", "disp_scale_mm": 0.5,
...     "generator": {"_target_": "fds.models.generator.RegionModels", "regions": ["forehead"], "shared": True,
...         "model": {"_target_": "fds.models.generator.DetailGenerator",
...             "pdim": {"_target_": "fds.models.unet.UNet", "in_channels": 1, "out_channels": 1, "num_downs": 3,
...                      "ngf": 4, "max_mult": 2},
...             "head": {"_target_": "fds.models.heads.ConvPoolHead", "in_channels": 1, "channels": [4], "grid": 1,
...                      "k": 4},
...             "basis": {"_target_": "fds.models.pca.PCABasis", "k": 4, "patch_size": 16, "unit_rms": True},
...             "pdrm": {"_target_": "fds.models.unet.UNet", "in_channels": 2, "out_channels": 1, "num_downs": 2,
...                      "ngf": 4, "max_mult": 2}}},
...     "discriminator": {"_target_": "fds.models.generator.RegionModels", "regions": ["forehead"], "shared": True,
...         "model": {"_target_": "fds.models.discriminator.PatchDiscriminator", "in_channels": 2, "ndf": 4,
...                   "n_layers": 1}}})
>>> spec.patch_size, spec.in_channels, spec.generator.regions
(16, 1, ('forehead',))
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from functools import partial
from typing import Any, ClassVar, cast

from torch import nn

__all__ = ["SchemaError", "DFDNSpec", "REGISTRY"]


class SchemaError(ValueError):
    """A value of a network description is unknown, missing, of the wrong type or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


# ------------------------------------------------------------------------------------------- value checks
Check = Callable[[Any, str], Any]  # (raw value, dotted key) → validated value, or SchemaError


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(lo: int, hi: int, pow2: bool = False) -> Check:
    def check(v: Any, key: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi or (pow2 and v & (v - 1)):
            kind = "a power of two" if pow2 else "an integer"
            raise SchemaError(key, f"expected {kind} in [{lo}, {hi}], got {_show(v)}")
        return v

    return check


def _float(lo: float, hi: float, open_low: bool = False) -> Check:
    def check(v: Any, key: str) -> float:
        ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
        if not ok or not (lo < v if open_low else lo <= v) or v > hi:
            raise SchemaError(key, f"expected a number in {'(' if open_low else '['}{lo}, {hi}], got {_show(v)}")
        return float(v)

    return check


def _bool(v: Any, key: str) -> bool:
    if not isinstance(v, bool):
        raise SchemaError(key, f"expected true or false, got {_show(v)}")
    return v


def _choice(*options: str) -> Check:
    def check(v: Any, key: str) -> str:
        if not isinstance(v, str) or v not in options:
            raise SchemaError(key, f"expected one of {', '.join(options)}, got {_show(v)}")
        return v

    return check


def _null(v: Any, key: str) -> None:
    if v is not None:
        raise SchemaError(key, f"must be null in a checkpoint (the weights are in the file), got {_show(v)}")
    return None


def _optional(inner: Check) -> Check:
    return lambda v, key: None if v is None else inner(v, key)


def _list(item: Check, min_len: int, max_len: int) -> Check:
    def check(v: Any, key: str) -> tuple:
        if not isinstance(v, list | tuple) or not min_len <= len(v) <= max_len:
            raise SchemaError(key, f"expected a list of {min_len}–{max_len} items, got {_show(v)}")
        return tuple(item(x, f"{key}[{i}]") for i, x in enumerate(v))

    return check


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


def region_name(v: Any, key: str) -> str:
    """A UV region name: a letter, then up to 31 letters, digits or underscores."""
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise SchemaError(key, f"expected a region name (letters, digits, _), got {_show(v)}")
    return v


def region_names(v: Any, key: str) -> tuple[str, ...]:
    names = _list(region_name, 1, 16)(v, key)
    if len(set(names)) != len(names):
        raise SchemaError(key, f"region names repeat: {list(names)}")
    return names


def _spec(*classes: type[Spec]) -> Check:
    by_target = {c.TARGET: c for c in classes}

    def check(v: Any, key: str) -> Spec:
        target = v.get("_target_") if isinstance(v, Mapping) else None
        if not isinstance(target, str) or target not in by_target:
            raise SchemaError(f"{key}._target_", f"must name one of {', '.join(by_target)} (fds's own networks), "
                                                 f"got {_show(target)}")
        return by_target[target].parse(v, key)

    return check


def arg(check: Check, default: Any = MISSING) -> Any:
    """A spec field: its check, and its default (none: the key is required)."""
    return field(default=default, metadata={"check": check})


# ------------------------------------------------------------------------------------------------ specs
@dataclass(frozen=True)
class Spec:
    """A validated description of one fds network class's constructor arguments (``TARGET`` names the class)."""

    TARGET: ClassVar[str] = ""
    PARTIAL: ClassVar[bool] = False  # the node is a Hydra ``_partial_`` factory (an optimizer)

    @classmethod
    def parse(cls, node: Any, key: str) -> Spec:
        """Validate a config node (a mapping as YAML gives it) field by field; unknown or missing keys raise."""
        if not isinstance(node, Mapping):
            raise SchemaError(key, f"expected a mapping, got {_show(node)}")
        if not isinstance(node.get("_target_"), str) or node["_target_"] != cls.TARGET:
            raise SchemaError(f"{key}._target_", f"must be {cls.TARGET!r}, got {_show(node.get('_target_'))}")
        if cls.PARTIAL and node.get("_partial_") is not True:
            raise SchemaError(f"{key}._partial_", "must be true (an optimizer factory)")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        allowed = set(fields) | {"_target_"} | ({"_partial_"} if cls.PARTIAL else set())
        for k in node:
            if not isinstance(k, str) or k not in allowed:
                raise SchemaError(f"{key}.{k}", f"unknown key for {cls.TARGET} (known: {', '.join(sorted(fields))})")
        values = {}
        for name, f in fields.items():
            if name in node:
                values[name] = f.metadata["check"](node[name], f"{key}.{name}")
            elif f.default is MISSING:
                raise SchemaError(f"{key}.{name}", f"missing (required by {cls.TARGET})")
        spec = cls(**values)
        spec.validate(key)
        return spec

    def validate(self, key: str) -> None:
        """Checks across fields (after each field's own check)."""

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_config(self) -> dict[str, Any]:
        """The Hydra-style node this spec was parsed from (``_target_`` as a tag), in canonical form."""
        out: dict[str, Any] = {"_target_": self.TARGET}
        if self.PARTIAL:
            out["_partial_"] = True
        for name, v in self.kwargs().items():
            out[name] = v.to_config() if isinstance(v, Spec) else list(v) if isinstance(v, tuple) else v
        return out

    def build(self) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class UNetSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.unet.UNet"
    in_channels: int = arg(_int(1, 8))
    out_channels: int = arg(_int(1, 8))
    num_downs: int = arg(_int(2, 10))
    ngf: int = arg(_int(1, 512))
    max_mult: int = arg(_int(1, 16))
    dropout: float = arg(_float(0.0, 0.99), 0.0)
    final_activation: str = arg(_choice("tanh", "none"), "tanh")
    conv_bias: bool = arg(_bool, True)

    def build(self) -> nn.Module:
        from fds.models.unet import UNet

        return UNet(**self.kwargs())


@dataclass(frozen=True)
class ConvPoolHeadSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.heads.ConvPoolHead"
    in_channels: int = arg(_int(1, 8))
    channels: tuple[int, ...] = arg(_list(_int(1, 2048), 1, 10))
    grid: int = arg(_int(1, 64))
    k: int = arg(_int(1, 1024))
    zero_init_last: bool = arg(_bool, True)

    def build(self) -> nn.Module:
        from fds.models.heads import ConvPoolHead

        return ConvPoolHead(**self.kwargs())


@dataclass(frozen=True)
class FCHeadSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.heads.FCHead"
    in_features: int = arg(_int(1, 8 * 1024 * 1024))
    hidden: tuple[int, ...] = arg(_list(_int(1, 16384), 0, 8))
    k: int = arg(_int(1, 1024))

    def build(self) -> nn.Module:
        from fds.models.heads import FCHead

        return FCHead(**self.kwargs())


@dataclass(frozen=True)
class PCABasisSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.pca.PCABasis"
    k: int = arg(_int(1, 1024))
    patch_size: int = arg(_int(16, 1024, pow2=True))
    unit_rms: bool = arg(_bool)
    source: None = arg(_null, None)  # the basis tensor travels with the weights, never a file path

    def build(self) -> nn.Module:
        from fds.models.pca import PCABasis

        return PCABasis(None, k=self.k, patch_size=self.patch_size, unit_rms=self.unit_rms)


@dataclass(frozen=True)
class FineRefinerSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.fine.FineRefiner"
    in_channels: int = arg(_int(2, 9))
    width: int = arg(_int(1, 256), 16)
    dilations: tuple[int, ...] = arg(_list(_int(1, 64), 0, 8), (1, 2, 4))

    def build(self) -> nn.Module:
        from fds.models.fine import FineRefiner

        return FineRefiner(**self.kwargs())


@dataclass(frozen=True)
class DetailGeneratorSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.generator.DetailGenerator"
    pdim: UNetSpec = arg(_spec(UNetSpec))
    head: ConvPoolHeadSpec | FCHeadSpec = arg(_spec(ConvPoolHeadSpec, FCHeadSpec))
    basis: PCABasisSpec = arg(_spec(PCABasisSpec))
    pdrm: UNetSpec = arg(_spec(UNetSpec))
    fine: FineRefinerSpec | None = arg(_optional(_spec(FineRefinerSpec)), None)

    def validate(self, key: str) -> None:
        p, h, b, r = self.pdim, self.head, self.basis, self.pdrm
        if self.fine is not None and self.fine.in_channels != 1 + p.in_channels:
            raise SchemaError(f"{key}.fine.in_channels", f"takes [refined, input]: must be 1 + pdim.in_channels = "
                                                         f"{1 + p.in_channels}, got {self.fine.in_channels}")
        n = b.patch_size
        if isinstance(h, ConvPoolHeadSpec) and h.in_channels != p.out_channels:
            raise SchemaError(f"{key}.head.in_channels", f"{h.in_channels} ≠ pdim.out_channels {p.out_channels}")
        if isinstance(h, FCHeadSpec) and h.in_features != p.out_channels * n * n:
            raise SchemaError(f"{key}.head.in_features", f"{h.in_features} ≠ pdim.out_channels × patch_size² "
                                                         f"= {p.out_channels * n * n}")
        if h.k != b.k:
            raise SchemaError(f"{key}.head.k", f"{h.k} ≠ basis.k {b.k}")
        if r.in_channels != 1 + p.in_channels or r.out_channels != 1:
            raise SchemaError(f"{key}.pdrm", f"takes [coarse, input]: in_channels must be 1 + pdim.in_channels = "
                                             f"{1 + p.in_channels} and out_channels 1, got {r.in_channels}, "
                                             f"{r.out_channels}")
        for name, u in (("pdim", p), ("pdrm", r)):
            if 2**u.num_downs > n:
                raise SchemaError(f"{key}.{name}.num_downs", f"2^{u.num_downs} exceeds the patch size {n}")

    def build(self) -> nn.Module:
        from fds.models.generator import DetailGenerator
        from fds.models.pca import PCABasis

        # built in the order Hydra instantiates the node, so a seeded untrained network is the same as before
        pdim, head, basis, pdrm = self.pdim.build(), self.head.build(), self.basis.build(), self.pdrm.build()
        fine = self.fine.build() if self.fine is not None else None
        return DetailGenerator(pdim, head, cast(PCABasis, basis), pdrm, fine)


@dataclass(frozen=True)
class PatchDiscriminatorSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.discriminator.PatchDiscriminator"
    in_channels: int = arg(_int(1, 16))
    ndf: int = arg(_int(1, 512))
    n_layers: int = arg(_int(1, 8))
    padding: int = arg(_int(0, 4), 2)
    conv_bias: bool = arg(_bool, True)
    norm: str = arg(_choice("batch", "spectral", "none"), "batch")
    detail_gain: float = arg(_float(0.0, 1e4, open_low=True), 1.0)
    detail_sigma_texels: float = arg(_float(0.0, 64.0), 0.0)

    def build(self) -> nn.Module:
        from fds.models.discriminator import PatchDiscriminator

        return PatchDiscriminator(**self.kwargs())


@dataclass(frozen=True)
class RegionModelsSpec(Spec):
    TARGET: ClassVar[str] = "fds.models.generator.RegionModels"
    model: DetailGeneratorSpec | PatchDiscriminatorSpec = arg(_spec(DetailGeneratorSpec, PatchDiscriminatorSpec))
    regions: tuple[str, ...] = arg(region_names)
    shared: bool = arg(_bool)
    bases: None = arg(_null, None)  # per-region PCA files: the bases travel with the weights

    def build(self) -> nn.Module:
        from fds.models.generator import RegionModels

        return RegionModels(self.model.build(), regions=list(self.regions), shared=self.shared)


@dataclass(frozen=True)
class AdamSpec(Spec):
    TARGET: ClassVar[str] = "torch.optim.Adam"
    PARTIAL: ClassVar[bool] = True
    lr: float = arg(_float(0.0, 1.0, open_low=True))
    betas: tuple[float, ...] = arg(_list(_float(0.0, 0.9999999), 2, 2), (0.9, 0.999))
    eps: float = arg(_float(0.0, 1.0, open_low=True), 1e-8)
    weight_decay: float = arg(_float(0.0, 1.0), 0.0)

    def build(self) -> Callable:
        import torch

        return partial(torch.optim.Adam, **self.kwargs())


@dataclass(frozen=True)
class AdamWSpec(AdamSpec):
    TARGET: ClassVar[str] = "torch.optim.AdamW"

    def build(self) -> Callable:
        import torch

        return partial(torch.optim.AdamW, **self.kwargs())


_COUNT = _int(0, 1_000_000)
_WEIGHT = _float(0.0, 1e6)


@dataclass(frozen=True)
class DFDNSpec(Spec):
    """``DFDNModule``: its networks and the scalar hyper-parameters it was trained with (defaults = the class's).

    Only ``generator``, ``disp_scale_mm`` and ``inference_batch_stats`` change what a loaded module predicts; the
    rest is kept so that the loaded module's ``hparams`` say how it was trained.
    """

    TARGET: ClassVar[str] = "fds.models.module.DFDNModule"
    generator: RegionModelsSpec = arg(_spec(RegionModelsSpec))
    discriminator: RegionModelsSpec = arg(_spec(RegionModelsSpec))
    disp_scale_mm: float = arg(_float(0.0, 100.0, open_low=True))
    optimizer: AdamSpec | None = arg(_optional(_spec(AdamSpec, AdamWSpec)), None)  # None: DFDNModule's default
    gan_mode: str = arg(_choice("lsgan", "vanilla", "hinge"), "lsgan")
    lambda_geo: float = arg(_WEIGHT, 100.0)
    lambda_normal: float = arg(_WEIGHT, 0.0)
    lambda_concordance: float = arg(_WEIGHT, 0.0)
    concordance_sigma_texels: float = arg(_float(0.0, 64.0), 6.0)  # 0: no high-pass
    lambda_detail_nmse: float = arg(_WEIGHT, 0.0)
    geo_norm: str = arg(_choice("l1", "rms"), "l1")
    target_blur_texels: float = arg(_float(0.0, 64.0), 0.0)
    target_blur_photo_px: float = arg(_float(0.0, 16.0), 0.0)
    eta_app: float = arg(_WEIGHT, 0.5)
    app_updates_bn_stats: bool = arg(_bool, False)
    gan_weight: float = arg(_WEIGHT, 1.0)
    adv_on_app: bool = arg(_bool, True)
    texel_mm: float | None = arg(_optional(_float(0.0, 100.0, open_low=True)), None)  # fallback for batches without
    warmup_epochs: int = arg(_COUNT, 15)
    lr_decay_start_epoch: int = arg(_COUNT, 100)
    lr_decay_end_epoch: int | None = arg(_optional(_COUNT), None)
    ema_decay: None = arg(_null, None)  # the stored weights already are the average: no second copy
    grad_clip_norm: float | None = arg(_optional(_float(0.0, 1e6, open_low=True)), None)
    panel_rows: int = arg(_int(0, 64), 4)
    inference_batch_stats: bool = arg(_bool, False)
    fine_lr_mult: float = arg(_float(0.0, 1e4, open_low=True), 1.0)
    init_weights: None = arg(_null, None)  # older model configs carried it: the weights are in the file

    def validate(self, key: str) -> None:
        gen, disc = self.generator.model, self.discriminator.model
        if not isinstance(gen, DetailGeneratorSpec):
            raise SchemaError(f"{key}.generator.model._target_", f"must be {DetailGeneratorSpec.TARGET!r}")
        if not isinstance(disc, PatchDiscriminatorSpec):
            raise SchemaError(f"{key}.discriminator.model._target_", f"must be {PatchDiscriminatorSpec.TARGET!r}")
        if disc.in_channels != gen.pdim.in_channels + 1:
            raise SchemaError(f"{key}.discriminator.model.in_channels",
                              f"{disc.in_channels} ≠ condition + displacement = {gen.pdim.in_channels + 1}")

    @property
    def detail_generator(self) -> DetailGeneratorSpec:
        return cast(DetailGeneratorSpec, self.generator.model)  # validate() ensures the type

    @property
    def patch_size(self) -> int:
        """Side of the network's input patches, texels."""
        return self.detail_generator.basis.patch_size

    @property
    def in_channels(self) -> int:
        """Input channels of the network: 1 (HSV V) or 3 (RGB)."""
        return self.detail_generator.pdim.in_channels

    def build(self) -> nn.Module:
        """A fresh ``DFDNModule`` (random weights from the global torch RNG, generator first)."""
        from fds.models.module import DEFAULT_OPTIMIZER, DFDNModule

        scalars = {k: v for k, v in self.kwargs().items()
                   if k not in ("generator", "discriminator", "optimizer", "init_weights")}
        generator, discriminator = self.generator.build(), self.discriminator.build()
        optimizer = self.optimizer.build() if self.optimizer is not None else DEFAULT_OPTIMIZER
        return DFDNModule(generator, discriminator, optimizer, **scalars)


#: Every class a checkpoint may name, by the ``_target_`` tag that names it.
REGISTRY: dict[str, type[Spec]] = {s.TARGET: s for s in (
    UNetSpec, ConvPoolHeadSpec, FCHeadSpec, PCABasisSpec, FineRefinerSpec, DetailGeneratorSpec, PatchDiscriminatorSpec,
    RegionModelsSpec, AdamSpec, AdamWSpec, DFDNSpec)}
