"""Does the objective keep the detail's amplitude? Short fine-tunes of one start checkpoint under several objectives.

Each variant is ``python train.py experiment=dfdn_amplitude`` (geometry samples, from the shipped weights) with its
own overrides, the same seed, data and validation patches. Before training, the start weights are validated once
on the same patches. Prints, per variant and after its last epoch, the validation metrics of ``DFDNModule``:

- ``normal_deg`` / ``wrinkles``: the normal-angle error over every valid texel / on wrinkle texels (degrees);
- ``detail_r``: the Pearson r of the band-passed detail normals against the GT's (``fds.metrics``);
- ``amplitude``: their RMS ratio, prediction / GT (1 = the GT's amplitude; shrinkage shows as < 1);

each also as a ratio of the first variant's (the baseline objective). Run folders (CSV logs) stay under ``--out``;
a variant whose folder already holds a finished run is not trained again.

    python benchmarks/amplitude_objective.py [--epochs 5] [--variant NAME=OVERRIDES ...] [--out logs/amplitude]
"""

from __future__ import annotations

import argparse
import csv
import shlex
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fds.training import train

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (("val/normal_deg", "normal_deg"), ("val/normal_deg_wrinkles", "wrinkles"), ("val/detail_r", "detail_r"),
           ("val/amplitude_ratio", "amplitude"), ("val/detail_r_wrinkles", "r wrinkles"),
           ("val/amplitude_ratio_wrinkles", "amp. wrinkles"))
DEFAULT_VARIANTS = ("l1_normal=model.lambda_concordance=0", "concordance10=model.lambda_concordance=10")


def config(out: Path, overrides: list[str]):
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=["experiment=dfdn_amplitude", "logger=csv", f"paths.root_dir={ROOT}",
                                           f"paths.output_dir={out}", f"paths.work_dir={ROOT}", *overrides])


def last_epoch_metrics(run: Path) -> tuple[dict[str, float], int]:
    """The last logged value of each validation metric in the run's CSV log, and the number of validated epochs."""
    found: dict[str, float] = {}
    epochs: set[str] = set()
    for path in sorted(run.glob("csv/version_*/metrics.csv")):
        for row in csv.DictReader(open(path)):
            found.update({k: float(v) for k, v in row.items() if k.startswith("val/") and v not in ("", None)})
            if row.get("val/normal_deg"):
                epochs.add(row["epoch"])
    return found, len(epochs)


def validate_start(out: Path, common: list[str]) -> dict[str, float]:
    """The start weights on the validation patches (the same ones every variant is validated on)."""
    cfg = config(out, common)
    pl.seed_everything(cfg.seed, workers=True)
    dm, model = instantiate(cfg.data), instantiate(cfg.model)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(model, datamodule=dm)
    return {k: float(v) for k, v in metrics.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5, help="epochs of 64 steps (batch 4) per variant")
    ap.add_argument("--variant", action="append", default=None, metavar="NAME=OVERRIDES",
                    help="a variant and its train.py overrides (repeatable; the first is the baseline); "
                         f"default {DEFAULT_VARIANTS}")
    ap.add_argument("--common", default="", help="overrides for every variant, e.g. 'data.data_dir=data/scans'")
    ap.add_argument("--out", type=Path, default=ROOT / "logs" / "amplitude_objective")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    common = [*shlex.split(args.common), f"trainer.max_epochs={args.epochs}"]
    rows = {"start weights": validate_start(args.out / "start", common)}
    variants = args.variant or list(DEFAULT_VARIANTS)
    for spec in variants:
        name, _, overrides = spec.partition("=")
        run = args.out / name
        metrics, done = last_epoch_metrics(run)
        if done < args.epochs:  # a finished run of an earlier call is reused
            train(config(run, [*common, *shlex.split(overrides)]))
            metrics, _ = last_epoch_metrics(run)
        rows[name] = metrics
    base = rows[variants[0].partition("=")[0]]
    print("| variant | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, m in rows.items():
        cells = [f"{m[k]:.4f} ({m[k] / base[k]:.3f})" if k in m and k in base else "–" for k, _ in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
