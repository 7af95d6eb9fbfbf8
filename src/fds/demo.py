"""``python -m fds.demo --output DIR``: the README's first command (run by ``make demo``).

1. Loads the default face model and writes its mean mesh with UVs, a UV texture coloured by region and one
   mask PNG per region.
2. Runs the whole pipeline (``fds.pipeline``, what ``infer.py`` runs) with the shipped checkpoint on a real
   photo, matplotlib's ``grace_hopper.jpg``: proxy, displacement and normal maps, baked detailed mesh, preview.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fds.export.mesh_io import write_obj
from fds.facemodel import REGIONS, load_face_model
from fds.facemodel.regions import region_labels
from fds.fileio import atomic_write_bytes
from fds.mesh.meshdata import MeshData

# one colour per region (index 0 = outside the UV chart), uint8 RGB
REGION_COLOURS = np.array(
    [[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178],
     [213, 94, 0], [204, 121, 167]], np.uint8)


def save_png(path: Path, image: np.ndarray) -> Path:
    """Write a uint8 image atomically."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, [buf.getvalue()])
    return path


def write_face_model_demo(out: Path, model: str = "sfm", resolution: int = 1024) -> dict:
    """Mean mesh (OBJ + MTL + region texture) and region masks of ``model`` into ``out``."""
    fm = load_face_model(model)
    labels = region_labels(fm, resolution)
    save_png(out / f"{model}_regions.png", REGION_COLOURS[labels])
    for i, name in enumerate(REGIONS):
        save_png(out / "regions" / f"{name}.png", ((labels == i + 1) * 255).astype(np.uint8))
    obj = write_obj(out / f"{model}_mean.obj", MeshData(fm.mean_mm, fm.triangles, fm.uv, fm.uv_triangles),
                    texture=f"{model}_regions.png")
    coverage = {name: float((labels == i + 1).mean()) for i, name in enumerate(REGIONS)}
    return {"model": model, "vertices": fm.num_vertices, "triangles": int(len(fm.triangles)),
            "mesh": str(obj), "uv_coverage": coverage}


def _shipped_checkpoint() -> Path:
    """The shipped weights from the installed package (checkout or wheel; :mod:`fds.resources`)."""
    from fds.resources import SHIPPED_CHECKPOINT as NAME
    from fds.resources import shipped_checkpoint

    try:
        return shipped_checkpoint()
    except FileNotFoundError:  # a broken install: --ckpt still works, and the error below names the path
        return Path(__file__).resolve().parents[2] / "checkpoints" / NAME


SHIPPED_CHECKPOINT = _shipped_checkpoint()


def run_photo_demo(out: Path, ckpt: Path, photo: Path | None = None, max_triangles: int = 500_000) -> dict:
    """The inference pipeline on one real photo (default: matplotlib's grace_hopper.jpg) into ``out``."""
    import matplotlib.cbook

    from fds.pipeline import DetailPipeline, DetailSettings

    photo = photo or Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    pipeline = DetailPipeline(ckpt, cache_dir=out / "cache", settings=DetailSettings(max_triangles=max_triangles))
    [outcome] = pipeline.run([photo], out)
    if not outcome.ok:
        raise RuntimeError(f"the demo photo {photo} failed: {outcome.reason}")
    return {"photo": str(photo), "outputs": outcome.faces}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="demo_output", help="folder for the demo's files")
    parser.add_argument("--model", default="sfm", help="face model: sfm, ict or bfm2017")
    parser.add_argument("--ckpt", default=str(SHIPPED_CHECKPOINT), help="DFDN weights (.safetensors)")
    parser.add_argument("--photo", default=None, help="a face photo (default: grace_hopper.jpg)")
    parser.add_argument("--skip-photo", action="store_true", help="only the face-model part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.output)
    summary = {"face_model": write_face_model_demo(out, args.model)}
    if not args.skip_photo:
        summary["photo"] = run_photo_demo(out, Path(args.ckpt), Path(args.photo) if args.photo else None)
    atomic_write_bytes(out / "demo_summary.json", [json.dumps(summary, indent=2).encode()])
    print(json.dumps(summary, indent=2))
    print(f"demo outputs in {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
