"""Morphable face models behind one interface, :class:`FaceModel` (mm, image-convention UVs)."""

from __future__ import annotations

import os

from fds.facemodel.model import FaceModel
from fds.facemodel.regions import REGIONS, region_masks, zone_mask

__all__ = ["FaceModel", "REGIONS", "region_masks", "zone_mask", "load_face_model", "FACE_MODELS"]

FACE_MODELS = ("sfm", "ict", "bfm2017")


def load_face_model(name: str = "sfm", assets_dir: str | os.PathLike | None = None, **kwargs) -> FaceModel:
    """Load a face model by name: ``sfm`` (default), ``ict`` or ``bfm2017``; ``kwargs`` go to its loader."""
    if name == "sfm":
        from fds.facemodel.sfm import load_sfm

        return load_sfm(assets_dir, **kwargs)
    if name == "ict":
        from fds.facemodel.ict import load_ict

        return load_ict(assets_dir, **kwargs)
    if name == "bfm2017":
        from fds.facemodel.bfm import load_bfm2017

        return load_bfm2017(assets_dir=assets_dir, **kwargs)
    raise ValueError(f"unknown face model {name!r}; choose one of {', '.join(FACE_MODELS)}")
