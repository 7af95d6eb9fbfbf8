"""Figures for reports and the README, from a training run's CSV log (``<run>/csv/version_*/metrics.csv``)."""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path

from fds.assets import atomic_write_bytes


def read_metrics(csv_path: str | os.PathLike) -> dict[str, list[tuple[int, int, float]]]:
    """Metric name → [(epoch, step, value)] in logging order (Lightning's CSVLogger layout)."""
    series: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            epoch = int(float(row["epoch"])) if row.get("epoch") else -1
            step = int(float(row["step"])) if row.get("step") else -1
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series[key].append((epoch, step, float(value)))
    return dict(series)


def plot_training_curves(csv_path: str | os.PathLike, out_png: str | os.PathLike,
                         baselines: dict[str, float] | None = None) -> Path:
    """Training geometry loss per step and validation normal error / displacement MAE per epoch, as a PNG.
    ``baselines`` (name → normal error in degrees) are drawn as horizontal lines on the validation panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_metrics(csv_path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if "train/loss_geo" in m:
        steps, values = zip(*[(s, v) for _, s, v in m["train/loss_geo"]], strict=True)
        axes[0].plot(steps, values, lw=0.6, alpha=0.8)
    axes[0].set(title="train: geometry L1 (network units)", xlabel="step", yscale="log")
    for ax, key, title in ((axes[1], "val/normal_deg", "val: normal-angle error (°)"),
                           (axes[2], "val/disp_mae_mm", "val: displacement MAE (mm)")):
        if key in m:
            epochs, values = zip(*[(e, v) for e, _, v in m[key]], strict=True)
            ax.plot(epochs, values, "o-", label="DFDN lite")
        ax.set(title=title, xlabel="epoch")
    for name, value in (baselines or {}).items():
        axes[1].axhline(value, ls="--", lw=1, color="gray")
        axes[1].annotate(name, (0, value), textcoords="offset points", xytext=(2, 2), fontsize=8, color="gray")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    out = Path(out_png)
    atomic_write_bytes(out, [buf.getvalue()])
    return out
