"""Validation curves of a GPU-check training sweep (``GPU_CHECK_VARIANTS`` in ``benchmarks/gpu_check.sh``).

Reads the extracted ``sweep.tar.gz`` (one folder per variant: ``csv/version_0/metrics.csv``,
``.hydra/overrides.yaml``, ``dfdn_geo_gpu.log``), draws ``val/normal_deg − val/normal_deg_zero`` per epoch for
every variant and prints a markdown table (best / last epoch against that variant's zero-detail line, the
displacement MAE, the fit's wall time from the log's timestamps).

    python benchmarks/plot_sweep.py sweep_runs [--out docs/img/gpu_sweep.png]
"""

from __future__ import annotations

import argparse
import csv
import re
from datetime import datetime
from pathlib import Path

from matplotlib.figure import Figure

ORDER = ["paper", "normal_gan", "normal", "normal300", "normal_s05"]
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def read_val_rows(run: Path) -> list[dict[str, float]]:
    """The validation rows of a run's CSV log: epoch, step, val/normal_deg, val/normal_deg_zero, val/disp_mae_mm."""
    paths = sorted(run.glob("csv/version_*/metrics.csv"))
    if not paths:
        return []
    keys = ("epoch", "step", "val/normal_deg", "val/normal_deg_zero", "val/disp_mae_mm")
    rows = []
    with open(paths[-1], newline="") as f:
        for r in csv.DictReader(f):
            if r.get("val/normal_deg"):
                rows.append({k: float(r[k]) if r.get(k) else float("nan") for k in keys})
    return rows


def read_overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return [line[2:].strip() for line in path.read_text().splitlines() if line.startswith("- ")]


def fit_wall_s(run: Path) -> float | None:
    """Seconds from the model summary (the fit's start) to ``Trainer.fit stopped`` in the run's log."""
    logs = sorted(run.glob("*.log"))
    if not logs:
        return None
    start = end = None
    for line in logs[0].read_text(errors="replace").splitlines():
        m = _STAMP.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if "model_summary" in line and start is None:
            start = t
        if "Trainer.fit` stopped" in line:
            end = t
    return (end - start).total_seconds() if start and end else None


def load(sweep: Path) -> dict[str, dict]:
    names = [p.name for p in sweep.iterdir() if p.is_dir() and read_val_rows(p)]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    runs = {n: {"rows": read_val_rows(sweep / n), "overrides": read_overrides(sweep / n)} for n in names}
    common = set.intersection(*(set(r["overrides"]) for r in runs.values())) if runs else set()
    for n, r in runs.items():
        r["own"] = [o for o in r["overrides"] if o not in common]
        r["wall_s"] = fit_wall_s(sweep / n)
    return runs


def table(runs: dict[str, dict]) -> str:
    head = (
        "| variant | overrides (beyond the common ones) | zero-detail ° | best ° (epoch) | best − zero "
        "| last ° (epoch) | last − zero | disp MAE mm best / last | fit wall s | batches/s |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        rows = r["rows"]
        best = min(rows, key=lambda x: x["val/normal_deg"] - x["val/normal_deg_zero"])
        last = rows[-1]
        zero, last_zero = best["val/normal_deg_zero"], last["val/normal_deg_zero"]
        batches = int(last["step"]) + 1
        wall = r["wall_s"]
        rate = f"{batches / wall:.1f}" if wall else "–"
        lines.append(
            f"| {name} | {' '.join(f'`{o}`' for o in r['own'])} | {zero:.4f} "
            f"| {best['val/normal_deg']:.4f} ({int(best['epoch'])}) | {best['val/normal_deg'] - zero:+.4f} "
            f"| {last['val/normal_deg']:.4f} ({int(last['epoch'])}) | {last['val/normal_deg'] - last_zero:+.4f} "
            f"| {best['val/disp_mae_mm']:.4f} / {last['val/disp_mae_mm']:.4f} "
            f"| {f'{wall:.0f}' if wall else '–'} | {rate} |"
        )
    return "\n".join(lines)


def plot(runs: dict[str, dict], out: Path) -> None:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, zoom in zip(axes, (False, True), strict=True):
        for name, r in runs.items():
            ep = [x["epoch"] for x in r["rows"]]
            d = [x["val/normal_deg"] - x["val/normal_deg_zero"] for x in r["rows"]]
            ax.plot(ep, d, marker=".", ms=4, lw=1.2, label=name)
        ax.axhline(0.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("epoch (128 batches of 8 patches)")
        ax.set_ylabel("val/normal_deg − zero-detail line (°)")
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_ylim(-0.04, 0.1)
            ax.set_title("zoom: −0.04° … +0.1°")
        else:
            ax.set_title("validation normal error above zero detail")
            ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", type=Path, help="the extracted sweep.tar.gz (one folder per variant)")
    ap.add_argument("--out", type=Path, default=Path("docs/img/gpu_sweep.png"))
    args = ap.parse_args()
    runs = load(args.sweep)
    if not runs:
        raise SystemExit(f"no variant with validation rows under {args.sweep}")
    plot(runs, args.out)
    print(table(runs))
    print(f"\nfigure: {args.out}")


if __name__ == "__main__":
    main()
