"""Can a discriminator tell the GT detail from the network's? A PatchGAN trained alone against a frozen generator.

The adversarial term of the photo-level recipe gives the generator no signal if its discriminator cannot separate
the GT from the prediction. This trains each discriminator variant (``model.discriminator.model.*`` overrides) for
``--steps`` steps on the photo-level training patches against the frozen weights of ``--ckpt``, then scores the
validation patches:

- ``D(real)`` / ``D(fake)``: mean scores (LSGAN targets 1 and 0);
- ``pairs``: the share of validation patches whose GT scores above the prediction for the same input
  (0.5 = chance, 1 = always told apart);
- ``loss``: the LSGAN loss (0.25 for a D that gives both the same score).

    python benchmarks/discriminator_check.py --data DIR [--ckpt checkpoints/dfdn_lite.safetensors] \
        [--variant NAME=OVERRIDES ...] [--steps 300]
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fds.models.checkpoint import load_detail_module
from fds.models.losses import gan_loss_d

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = (
    "paper=model.discriminator.model.norm=batch model.discriminator.model.detail_gain=1",
    "spectral=model.discriminator.model.norm=spectral model.discriminator.model.detail_gain=1",
    "spectral_gain20=model.discriminator.model.norm=spectral model.discriminator.model.detail_gain=20",
)


def config(overrides: list[str]):
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=["experiment=dfdn_photo_cue_scale", f"paths.root_dir={ROOT}",
                                           "data.use_wild=false", *overrides])


def geo(batch):
    return batch["geo"] if "geo" in batch else batch


@torch.no_grad()
def score(disc, gen, loader) -> dict[str, float]:
    real_s, fake_s, pairs, n = 0.0, 0.0, 0.0, 0
    disc.eval()
    for batch in loader:
        b = geo(batch)
        x, y, region = b["input"], b["displacement"], b.get("region")
        fake = gen(region, x).refined
        real, fake = disc(region, x, y).flatten(1).mean(1), disc(region, x, fake).flatten(1).mean(1)
        real_s, fake_s = real_s + real.sum().item(), fake_s + fake.sum().item()
        pairs, n = pairs + (real > fake).float().sum().item(), n + len(real)
    disc.train()
    r, f = real_s / n, fake_s / n
    return {"D(real)": r, "D(fake)": f, "pairs": pairs / n}


def run(overrides: list[str], dm, gen, steps: int, lr: float) -> dict[str, float]:
    cfg = config(overrides)
    torch.manual_seed(0)
    disc = instantiate(cfg.model.discriminator)
    opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    step, losses = 0, []
    while step < steps:
        for batch in dm.train_dataloader():
            b = geo(batch)
            x, y, region = b["input"], b["displacement"], b.get("region")
            with torch.no_grad():
                fake = gen(region, x).refined
            loss = gan_loss_d(disc(region, x, y), disc(region, x, fake))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step >= steps:
                break
    out = score(disc, gen, dm.val_dataloader())
    out["loss (last 50 steps)"] = sum(losses[-50:]) / len(losses[-50:])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a folder of photo-level samples")
    ap.add_argument("--ckpt", type=Path, default=ROOT / "checkpoints" / "dfdn_lite.safetensors")
    ap.add_argument("--variant", action="append", default=None, metavar="NAME=OVERRIDES")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = load_detail_module(args.ckpt, "cpu").inference_generator.eval()
    common = [f"data.scans.data_dir={args.data.resolve()}", "data.scans.generate_if_empty=false",
              f"data.scans.cache_size={len(list(args.data.iterdir())) + 5}"]
    dm = instantiate(config(common).data)  # loaded once: the variants differ only in the discriminator
    dm.prepare_data()
    dm.setup("fit")
    rows = {}
    for spec in args.variant or DEFAULT_VARIANTS:
        name, _, overrides = spec.partition("=")
        rows[name] = run([*common, *shlex.split(overrides)], dm, gen, args.steps, args.lr)
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    print(f"\n{args.steps} steps of D alone against {args.ckpt.name} (frozen), lr {args.lr}")
    print("| variant | D(real) | D(fake) | GT above prediction | LSGAN loss |\n|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['D(real)']:.3f} | {r['D(fake)']:.3f} | {r['pairs']:.2f} | "
              f"{r['loss (last 50 steps)']:.3f} |")


if __name__ == "__main__":
    main()
