"""The DFDN generator: PDIM -> PCA weights -> coarse map -> PDRM -> displacement patch.

``DetailGenerator.forward(x [B, Cin, H, W]) -> GeneratorOutput`` where x is the preprocessed texture patch
(paper: HSV V channel, per-patch mean removed, x2). All displacement outputs are in *network units*:
``displacement_mm = d * disp_scale_mm`` (a hyper-parameter of :class:`fds.models.module.DFDNModule`,
default 2.0 mm); the refined output is in [-1, 1] (Tanh).

:class:`RegionModels` holds one model per UV region (paper: separate ``forehead`` and ``mouth`` models) or one
model shared by all regions, and routes each sample of a batch to its region's model.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from fds.models.pca import PCABasis


@dataclass
class GeneratorOutput:
    """Outputs of :class:`DetailGenerator`, all in network displacement units (x disp_scale_mm = mm)."""

    pca_weights: torch.Tensor  # [B, K] head output
    coarse: torch.Tensor  # [B, 1, H, W] PCA reconstruction Σ w_k B_k (not bounded)
    refined: torch.Tensor  # [B, 1, H, W] PDRM output in [-1, 1]: the predicted displacement


class DetailGenerator(nn.Module):
    """PDIM (U-Net Cin -> 1, Tanh) -> head (K weights) -> PCA basis -> PDRM (U-Net on [coarse, x] -> 1, Tanh)
    [-> + fine correction on [PDRM's output, x], clamped to [-1, 1]].

    Args:
        pdim: U-Net mapping ``[B, Cin, H, W] -> [B, 1, H, W]``.
        head: maps PDIM's output to ``[B, K]``.
        basis: :class:`PCABasis` with K components of size H x W.
        pdrm: U-Net mapping ``[B, 1 + Cin, H, W] -> [B, 1, H, W]``.
        fine: optional full-resolution branch ``[B, 1 + Cin, H, W] -> [B, 1, H, W]`` whose output is added to
            PDRM's (:class:`fds.models.fine.FineRefiner`); None: the paper's generator.
    """

    basis: PCABasis

    def __init__(self, pdim: nn.Module, head: nn.Module, basis: PCABasis, pdrm: nn.Module,
                 fine: nn.Module | None = None) -> None:
        super().__init__()
        self.pdim, self.head, self.basis, self.pdrm = pdim, head, basis, pdrm
        self.fine = fine

    @property
    def patch_size(self) -> tuple[int, int]:
        return self.basis.patch_size

    def forward(self, x: torch.Tensor) -> GeneratorOutput:
        if x.ndim != 4 or tuple(x.shape[-2:]) != self.patch_size:
            raise ValueError(
                f"DetailGenerator expects input patches [B, Cin, {self.patch_size[0]}, {self.patch_size[1]}] "
                f"(the PCA basis size), got {tuple(x.shape)}"
            )
        weights = self.head(self.pdim(x))  # [B, K]
        coarse = self.basis(weights)  # [B, 1, H, W]
        refined = self.pdrm(torch.cat([coarse.to(x.dtype), x], dim=1))  # [B, 1, H, W]
        if self.fine is not None:
            refined = (refined + self.fine(torch.cat([refined, x], dim=1))).clamp(-1.0, 1.0)
        return GeneratorOutput(pca_weights=weights, coarse=coarse, refined=refined)

    def with_basis(self, basis: str | Path | torch.Tensor) -> DetailGenerator:
        """Replace the PCA basis (same K, patch size and scaling) in place; returns self."""
        old = self.basis
        self.basis = PCABasis(basis, k=old.k, patch_size=old.patch_size, unit_rms=old.unit_rms).to(old.basis.device)
        return self


def _reinit(module: nn.Module) -> None:
    """Fresh weights: every submodule's ``reset_parameters``, leaves first so that a parent's own init
    (e.g. the paper's N(0, 0.02) of UNet, PatchDiscriminator) has the last word."""
    for m in reversed(list(module.modules())):
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()


def _merge(parts: list[tuple[torch.Tensor, Any]], batch: int) -> Any:
    """Scatter per-group outputs (tensors or dataclasses of tensors) back to batch order."""
    idx0, first = parts[0]
    if isinstance(first, torch.Tensor):
        out = first.new_empty((batch, *first.shape[1:]))
        for idx, value in parts:
            out[idx] = value
        return out
    if hasattr(first, "__dataclass_fields__"):
        merged = {f.name: _merge([(i, getattr(v, f.name)) for i, v in parts], batch) for f in fields(first)}
        return type(first)(**merged)
    raise TypeError(f"cannot merge per-region outputs of type {type(first).__name__}")


class RegionModels(nn.Module):
    """One model per region name, or one shared model, behind ``forward(region, *inputs)``.

    Args:
        model: the model to use (shared) or to copy per region (each copy re-initialised).
        regions: region names, e.g. ``["forehead", "mouth"]``.
        shared: one model for every region (then any region name is accepted).
        bases: optional per-region PCA basis sources (path or tensor) for :class:`DetailGenerator` copies.
    """

    def __init__(
        self,
        model: nn.Module,
        regions: Sequence[str] = ("forehead", "mouth"),
        shared: bool = False,
        bases: Mapping[str, str | Path | torch.Tensor | None] | None = None,
    ) -> None:
        super().__init__()
        if not regions:
            raise ValueError("regions must name at least one UV region, e.g. ['forehead', 'mouth']")
        self.regions, self.shared = list(regions), shared
        bases = dict(bases or {})
        unknown = set(bases) - set(self.regions)
        if unknown:
            raise ValueError(f"bases given for unknown regions {sorted(unknown)}; regions are {self.regions}")
        if shared:
            distinct = {str(b) for b in bases.values() if b is not None}
            if len(distinct) > 1:
                raise ValueError(
                    "a shared model has one PCA basis; give the same basis for all regions or shared=false"
                )
            self.models = nn.ModuleDict({"shared": model})
            if distinct:
                cast(DetailGenerator, model).with_basis(next(b for b in bases.values() if b is not None))
        else:
            copies = {}
            for i, name in enumerate(self.regions):
                m = model if i == 0 else copy.deepcopy(model)
                if i > 0:
                    _reinit(m)
                if (basis := bases.get(name)) is not None:
                    cast(DetailGenerator, m).with_basis(basis)
                copies[name] = m
            self.models = nn.ModuleDict(copies)

    def model_for(self, region: str) -> nn.Module:
        if self.shared:
            return self.models["shared"]
        if region not in self.models:
            raise KeyError(f"no model for region {region!r}; this model has regions {self.regions}")
        return self.models[region]

    def forward(self, region: str | Sequence[str] | None, *inputs: torch.Tensor) -> Any:
        """Run ``inputs`` (batch-first tensors) through each sample's region model; ``region`` is one name for
        the whole batch, one name per sample, or None when a single model serves every region."""
        batch = inputs[0].shape[0]
        if region is None:
            if not self.shared and len(self.models) > 1:
                raise ValueError(f"the batch has no 'region' but this model has one network per region {self.regions}")
            return next(iter(self.models.values()))(*inputs)
        if isinstance(region, str):
            return self.model_for(region)(*inputs)
        region = list(region)
        if len(region) != batch:
            raise ValueError(f"region has {len(region)} names for a batch of {batch}")
        names = list(dict.fromkeys(region))
        if self.shared or len(names) == 1:
            return self.model_for(names[0])(*inputs)
        parts = []
        for name in names:
            idx = torch.tensor([i for i, r in enumerate(region) if r == name], device=inputs[0].device)
            parts.append((idx, self.model_for(name)(*(t[idx] for t in inputs))))
        return _merge(parts, batch)
