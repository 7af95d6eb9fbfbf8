"""nvdiffrast backend (CUDA only), imported lazily; one ``RasterizeCudaContext`` per device.

nvdiffrast compiles its CUDA extension on first use (needs CUDA torch, nvcc, ninja); ``available`` tries
that once per device and remembers the outcome, so ``backend="auto"`` can fall back to the torch backend.
"""

from __future__ import annotations

import logging
import sys

import torch

log = logging.getLogger(__name__)

_contexts: dict[torch.device, object] = {}
_failures: dict[torch.device, str] = {}


def _dr():
    import nvdiffrast.torch as dr

    _load_plugin(dr)
    return dr


def _load_plugin(dr) -> None:
    """Build/load nvdiffrast's CUDA plugin. nvdiffrast imports the plugin by name after
    ``torch.utils.cpp_extension.load``, but recent torch (2.11) no longer puts the built module on the import
    path, so the import fails right after a successful build: then import it from its build folder."""
    from nvdiffrast.torch import ops

    try:
        ops._get_plugin(gl=False)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("nvdiffrast_plugin"):
            raise
        from torch.utils import cpp_extension

        build_dir = cpp_extension._get_build_directory(str(exc.name), verbose=False)
        if build_dir not in sys.path:
            sys.path.insert(0, build_dir)
        ops._get_plugin(gl=False)


def context(device: torch.device):
    """The ``RasterizeCudaContext`` of ``device`` (created on first use)."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"the nvdiffrast backend needs CUDA tensors, got device {device}; use backend='torch'")
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device not in _contexts:
        _contexts[device] = _dr().RasterizeCudaContext(device=device)
    return _contexts[device]


def available(device: torch.device) -> bool:
    """Whether nvdiffrast imports, builds and rasterises on ``device`` (tried once, then cached)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device in _contexts:
        return True
    if device in _failures:
        return False
    try:
        ctx = context(device)
        pos = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]], device=device)
        tri = torch.tensor([[0, 1, 2]], dtype=torch.int32, device=device)
        _dr().rasterize(ctx, pos, tri, resolution=[8, 8])
        return True
    except Exception as exc:  # import error, compiler missing, driver problem: all mean "use torch"
        _failures[device] = f"{type(exc).__name__}: {exc}"
        _contexts.pop(device, None)
        log.warning("nvdiffrast unavailable on %s (%s); falling back to the torch rasteriser", device, exc)
        return False


def rasterize(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """nvdiffrast's rasterize on float32 ``pos [B, V, 4]`` and int32 ``tri [T, 3]`` → ``rast [B, H, W, 4]``."""
    rast, _ = _dr().rasterize(context(pos.device), pos, tri, resolution=[int(resolution[0]), int(resolution[1])])
    return rast


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    out, _ = _dr().interpolate(attr, rast, tri)
    return out


def antialias(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    return _dr().antialias(color, rast, pos, tri)
