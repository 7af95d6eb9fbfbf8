"""The photo scales a photo-level training set shows the network, per sample and as a range.

A network that reads the photo scale (``channels`` ``v_cue_scale`` / ``v_scale``) learnt what a face of each size
in the photo can show; a face outside the scales of its training samples gets extrapolated detail. Each sample's
scale is the median over the face's chart of its fitted proxy's :func:`fds.proxy.photo_scale.photo_scale_of_fit`
(log2 photo px per UV texel at ``resolution`` texels), the figure :func:`fds.proxy.photo_scale.face_photo_scale`
gives a photo at inference. Training exports store the range in the checkpoint
(:class:`fds.models.checkpoint.CheckpointMeta.photo_scale_range`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fds.data.scans import ScanFolder


def sample_photo_scales(folders: Sequence[str | os.PathLike], resolution: int, face_model: str = "sfm"
                        ) -> np.ndarray:
    """``float64 [N]`` median photo scale (log2 px per texel at ``resolution``) of each photo-level sample folder
    (its ``proxy/`` fit), as inference computes it for a photo. ~0.1–0.2 s per sample."""
    from fds.facemodel import load_face_model
    from fds.proxy.photo_scale import face_photo_scale, photo_scale_of_fit

    source = ScanFolder(folders=[Path(f) for f in folders])
    fm = load_face_model(face_model)
    return np.array([face_photo_scale(photo_scale_of_fit(fm, source.fit(i), int(resolution)), fm)
                     for i in range(len(source.folders))], dtype=np.float64)


def scale_range(*ranges: tuple[float, float] | None) -> tuple[float, float] | None:
    """The smallest range holding every given ``(low, high)`` (None entries ignored; None when all are)."""
    given = [r for r in ranges if r is not None]
    if not given:
        return None
    return min(float(r[0]) for r in given), max(float(r[1]) for r in given)
