"""Start a wider U-Net from a narrower one's weights without changing what it computes.

:class:`fds.models.unet.UNet` widths are ``ngf · min(2^i, max_mult)`` per level. A checkpoint trained at one
``ngf`` / ``max_mult`` starts a run at larger ones (more capacity, same function at step 0):

- each old channel keeps its index at its level; new channels follow the old ones (in a skip concatenation
  ``[skip, deeper]`` each half is laid out that way: ``[skip_old, skip_new, deeper_old, deeper_new]``);
- old channels read old channels with the old weights and read new channels with weight 0, so every old
  activation, and the network's output, is exactly the old one (train and eval mode alike: BatchNorm statistics
  of an old channel see the same values);
- new channels keep the run's fresh initialisation (they read everything), so their gradients are not zero and
  training can put them to use; their BatchNorm running statistics start at the fresh defaults.

Pure tensor functions on state dicts; :func:`fds.models.checkpoint.load_start_weights` calls them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_DOWN0 = re.compile(r"^(.*)down\.0\.0\.weight$")


def unet_prefixes(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Key prefixes (``"models.shared.pdim."`` …) of every U-Net in a state dict."""
    return sorted(m.group(1) for k in tensors if (m := _DOWN0.match(k)))


def unet_level_widths(tensors: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Channel width of each down level of the U-Net at ``prefix`` (from its conv weights ``[out, in, 4, 4]``)."""
    widths, i = [], 0
    while (w := tensors.get(f"{prefix}down.{i}.{0 if i == 0 else 1}.weight")) is not None:
        widths.append(int(w.shape[0]))
        i += 1
    return widths


def _level(old: int, new: int) -> torch.Tensor:
    """New indices of a level's old channels: they come first."""
    if new < old:
        raise ValueError(f"cannot narrow a level from {old} to {new} channels")
    return torch.arange(old)


def _concat(old: int, new: int) -> torch.Tensor:
    """New indices of the old channels of ``cat([skip, deeper])`` where each half grows from ``old`` to ``new``."""
    return torch.cat([torch.arange(old), new + torch.arange(old)])


def _plan(prefix: str, old_w: list[int], new_w: list[int], in_ch: int, out_ch: int,
          ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None, bool]]:
    """Per key of one U-Net: (new indices of the old output channels, of the old input channels or None for a
    1-D tensor, whether the weight is transposed ``[in, out, …]``)."""
    n = len(old_w)
    plan: dict[str, tuple[torch.Tensor, torch.Tensor | None, bool]] = {}
    for i in range(n):
        out = _level(old_w[i], new_w[i])
        inp = torch.arange(in_ch) if i == 0 else _level(old_w[i - 1], new_w[i - 1])
        conv = f"{prefix}down.{i}.{0 if i == 0 else 1}."
        plan[conv + "weight"], plan[conv + "bias"] = (out, inp, False), (out, None, False)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            plan[f"{prefix}down.{i}.2.{stat}"] = (out, None, False)
    for j in range(n):
        inp = _level(old_w[j], new_w[j]) if j == n - 1 else _concat(old_w[j], new_w[j])
        out = torch.arange(out_ch) if j == 0 else _level(old_w[j - 1], new_w[j - 1])
        plan[f"{prefix}up.{j}.1.weight"], plan[f"{prefix}up.{j}.1.bias"] = (out, inp, True), (out, None, False)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            plan[f"{prefix}up.{j}.2.{stat}"] = (out, None, False)
    return plan


def widen_unets(tensors: Mapping[str, torch.Tensor], fresh: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` (a state dict with narrower U-Nets) laid into ``fresh`` (the wider network's freshly
    initialised state dict) so that the wider network computes exactly what the narrow one did.

    Only U-Net channel widths may differ, with the same number of levels and the same input and output channels;
    every other tensor is copied as is. Raises ``ValueError`` naming the first U-Net that cannot be widened.
    """
    out = dict(tensors)
    for prefix in unet_prefixes(tensors):
        old_w, new_w = unet_level_widths(tensors, prefix), unet_level_widths(fresh, prefix)
        if old_w == new_w:
            continue
        if len(old_w) != len(new_w):
            raise ValueError(f"{prefix}: {len(old_w)} levels in the checkpoint, {len(new_w)} in the run "
                             "(only channel widths can grow)")
        in_ch = int(tensors[f"{prefix}down.0.0.weight"].shape[1])
        out_ch = int(tensors[f"{prefix}up.0.1.weight"].shape[1])
        if (int(fresh[f"{prefix}down.0.0.weight"].shape[1]), int(fresh[f"{prefix}up.0.1.weight"].shape[1])) \
                != (in_ch, out_ch):
            raise ValueError(f"{prefix}: input/output channels differ (only channel widths can grow)")
        for key, (o_idx, i_idx, transposed) in _plan(prefix, old_w, new_w, in_ch, out_ch).items():
            if key not in tensors:
                continue  # a layer without that tensor (no BatchNorm at the outer and innermost levels)
            old, wide = tensors[key], fresh[key].clone()
            if i_idx is None:
                wide[o_idx] = old
            elif transposed:  # ConvTranspose2d weight [in, out, kh, kw]
                new_in = ~_mask(wide.shape[0], i_idx)
                wide[new_in[:, None] & _mask(wide.shape[1], o_idx)[None, :]] = 0.0  # old outputs ignore new inputs
                wide[i_idx[:, None], o_idx[None, :]] = old
            else:  # Conv2d weight [out, in, kh, kw]
                new_in = ~_mask(wide.shape[1], i_idx)
                wide[_mask(wide.shape[0], o_idx)[:, None] & new_in[None, :]] = 0.0
                wide[o_idx[:, None], i_idx[None, :]] = old
            out[key] = wide
    return out


def _mask(size: int, index: torch.Tensor) -> torch.Tensor:
    """Boolean ``[size]``, True at ``index``."""
    m = torch.zeros(size, dtype=torch.bool)
    m[index] = True
    return m
