"""Where fds's files come from: a registry of named assets, a search path, checksums and downloads.

Resolution order for an asset's relative path (first existing file wins):

1. ``assets_dir`` passed by the caller (the ``paths.assets_dir`` config key), then ``$FDS_ASSETS_DIR``;
2. ``../shared/data/assets`` next to the checkout (the developers' read-only data kit), when present;
3. the user cache, ``$FDS_CACHE_DIR`` or ``$XDG_CACHE_HOME/fds`` or ``~/.cache/fds``.

A missing asset with a direct download URL is fetched into the user cache, verified against its sha256 and
renamed into place atomically (set ``FDS_OFFLINE=1`` to never touch the network). Otherwise
:class:`AssetError` says which asset is missing, where it comes from and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fds.fileio import atomic_write_bytes

_EOS_RAW = "https://raw.githubusercontent.com/patrikhuber/eos/master/share/"


class AssetError(FileNotFoundError):
    """A required asset is missing, corrupt or cannot be downloaded; the message says how to fix it."""


@dataclass(frozen=True)
class Asset:
    """One file fds needs at run time.

    ``relpath`` is relative to any search-path root; ``url`` is a direct download link or ``None`` when the
    file must be obtained by hand (``instructions`` then says how); ``sha256`` is ``None`` only for files
    users bring themselves in many valid versions.
    """

    name: str
    relpath: str
    url: str | None
    sha256: str | None
    licence: str
    instructions: str = ""


_SFM_LICENCE = "Surrey Face Model: non-commercial use only (cvssp.org/facemodel); eos files Apache-2.0"
_ICT_LICENCE = "ICT-FaceKit: MIT, (c) 2020 USC Institute for Creative Technologies"
_BFM_LICENCE = "Basel Face Model 2017: non-commercial research licence, registration required"

REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset("sfm_shape", "sfm/sfm_shape_3448.bin", _EOS_RAW + "sfm_shape_3448.bin",
              "43750338ae533e7fb981e924b6f67ebde3d292f15ec4fc886ae5af14308ad980", _SFM_LICENCE),
        Asset("sfm_expression_blendshapes", "sfm/expression_blendshapes_3448.bin",
              _EOS_RAW + "expression_blendshapes_3448.bin",
              "a77c81712fc5e8b08a1be4cd2824d51514e5bde6578109ae5240dfb3489efd43", _SFM_LICENCE),
        Asset("sfm_landmarks", "sfm/ibug_to_sfm.txt", _EOS_RAW + "ibug_to_sfm.txt",
              "810810c457184526c7d54305ecbc5da764e2431b5e66025d921a7d424aebfac9", "Apache-2.0 (eos)"),
        Asset("sfm_edge_topology", "sfm/sfm_3448_edge_topology.json",
              _EOS_RAW + "sfm_3448_edge_topology.json",
              "5934e5ec34dd6779fda06d28a1f8d02ca9a238bff882e5ccd6da5af9fffe61d5", "Apache-2.0 (eos)"),
        Asset("sfm_contours", "sfm/sfm_model_contours.json", _EOS_RAW + "sfm_model_contours.json",
              "c9e69bfa995ab19ac6b27abb07729eb0520a00bb192be12426ca6bce76f3fded", "Apache-2.0 (eos)"),
        Asset("ict_face_area", "ict/ict_facekit_face_area.npz", None,
              "6c2e7cc9ffdcba13ba271dbdde44eb7adf11a24c448e4c07f565348a215a8c65", _ICT_LICENCE,
              "It is derived from ICT-FaceKit: clone https://github.com/ICT-VGL/ICT-FaceKit and run "
              "`python -m fds.facemodel.ict <ICT-FaceKit>/FaceXModel "
              "<assets_dir>/ict/ict_facekit_face_area.npz`."),
        Asset("ict_neutral_obj", "ict/generic_neutral_mesh.obj",
              "https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/master/FaceXModel/generic_neutral_mesh.obj",
              "eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9", _ICT_LICENCE),
        Asset("bfm2017_nomouth", "bfm/model2017-1_bfm_nomouth.h5", None, None, _BFM_LICENCE,
              "Register at https://faces.dmi.unibas.ch/bfm/bfm2017.html, download model2017-1_bfm_nomouth.h5 "
              "and place it in <assets_dir>/bfm/."),
        Asset("bfm2017_landmarks", "bfm/ibug_to_bfm2017-1_bfm_nomouth.txt",
              _EOS_RAW + "ibug_to_bfm2017-1_bfm_nomouth.txt",
              "419d1eea9de6f57f566dfc90a748d446a2af8ebc434d1ceeed4c124aa9ea06c5", "Apache-2.0 (eos)"),
        Asset("bfm2017_contours", "bfm/bfm2017-1_bfm_nomouth_model_contours.json",
              _EOS_RAW + "bfm2017-1_bfm_nomouth_model_contours.json",
              "9aabff00066875d5d6e4dba711919e30a60b43bfbf98ccbecb2ea8c0de33c0ea", "Apache-2.0 (eos)"),
    ]
}


def user_cache_dir() -> Path:
    """The per-user cache root for downloaded and derived assets."""
    if os.environ.get("FDS_CACHE_DIR"):
        return Path(os.environ["FDS_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "fds"


def shared_data_dir() -> Path:
    """The developers' read-only data kit, ``../shared/data`` beside the checkout (absent for most users)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_assets_dir() -> Path:
    """``../shared/data/assets`` beside the checkout (may not exist for users)."""
    return shared_data_dir() / "assets"


def search_path(assets_dir: str | os.PathLike | None = None) -> list[Path]:
    """The asset roots in resolution order (see the module docstring)."""
    roots: list[Path] = []
    for candidate in (assets_dir, os.environ.get("FDS_ASSETS_DIR")):
        if candidate:
            roots.append(Path(candidate).expanduser())
    shared = shared_assets_dir()
    if shared.is_dir():
        roots.append(shared)
    roots.append(user_cache_dir() / "assets")
    return roots


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None, timeout_s: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` through a temp file; a checksum mismatch leaves nothing behind."""

    def checked_chunks() -> Iterator[bytes]:
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                yield block
        if sha256 is not None and h.hexdigest() != sha256:  # raised before the rename: nothing is written
            raise AssetError(f"Downloaded {url} but its sha256 is {h.hexdigest()}, expected {sha256}: the "
                             "upstream file changed or the transfer was corrupted. Nothing was written.")

    atomic_write_bytes(dest, checked_chunks())
    return dest


def register(asset: Asset) -> Asset:
    """Add (or replace) a registry entry, e.g. for a stage that owns its own weights file."""
    REGISTRY[asset.name] = asset
    return asset


def _offline() -> bool:
    return os.environ.get("FDS_OFFLINE", "").lower() in ("1", "true", "yes")


def resolve_asset(name: str, assets_dir: str | os.PathLike | None = None, verify: bool = False) -> Path:
    """Return the path of registered asset ``name``, downloading it into the user cache if needed.

    ``verify=True`` also checks the sha256 of an existing file (downloads are always checked).
    """
    if name not in REGISTRY:
        raise KeyError(f"Unknown asset {name!r}; registered assets: {', '.join(sorted(REGISTRY))}")
    asset = REGISTRY[name]
    roots = search_path(assets_dir)
    for root in roots:
        path = root / asset.relpath
        if path.is_file():
            if verify and asset.sha256 and sha256_of(path) != asset.sha256:
                raise AssetError(f"Asset {name!r} at {path} is corrupt (sha256 mismatch). Delete it and "
                                 f"get it again from {asset.url or asset.instructions}.")
            return path
    target = user_cache_dir() / "assets" / asset.relpath
    searched = "\n  ".join(str(r / asset.relpath) for r in roots)
    if asset.url and not _offline():
        try:
            return download(asset.url, target, asset.sha256)
        except AssetError:
            raise
        except OSError as exc:
            reason = f"download from {asset.url} failed ({exc})"
    elif asset.url:
        reason = f"FDS_OFFLINE is set, so it was not downloaded from {asset.url}"
    else:
        reason = asset.instructions
    raise AssetError(
        f"Missing asset {name!r} ({asset.licence}). Looked in:\n  {searched}\n{reason}\n"
        f"Put the file at one of those places, or point FDS_ASSETS_DIR (config paths.assets_dir) at a folder "
        f"holding {asset.relpath}."
    )
