"""Figures and markdown for reports and the README: training curves from a run's CSV log
(``<run>/csv/version_*/metrics.csv``) and the evaluation report of ``eval/run.py``."""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from fds.fileio import atomic_write_bytes


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


def _subplots(nrows: int = 1, ncols: int = 1, **kw):
    """A matplotlib ``Figure`` and its axes, without pyplot: no global backend or figure state is touched, so
    the reports work the same in scripts, tests and notebooks (where the inline backend stays in charge)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kw.pop("figsize", None))
    return fig, fig.subplots(nrows, ncols, **kw)


def _save_figure(fig, out_png: str | os.PathLike, dpi: int = 90) -> Path:
    """Write a matplotlib figure as a PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    out = Path(out_png)
    atomic_write_bytes(out, [buf.getvalue()])
    return out


def run_metrics_csv(run_dir: str | os.PathLike) -> Path:
    """The CSV log of a training run folder (``<run>/csv/version_<n>/metrics.csv``, the newest version)."""
    found = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not found:
        raise FileNotFoundError(f"{run_dir} holds no csv/version_*/metrics.csv: is it a training run folder "
                                "(logs/<task>/runs/<date>_<time>) trained with the csv logger (logger=default or csv)?")
    return found[-1]


def validation_panels(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(W&B step, PNG)`` of every validation panel (input | prediction | GT | normals) a training run logged to
    its offline W&B run (``<run>/wandb/*run-*/files/media/images/val/panel_<step>_<hash>.png``), in logging
    order: one per validation epoch. The step is W&B's own counter, not the trainer's global step. Empty when the
    run had no W&B logger."""
    pngs = Path(run_dir).glob("wandb/*run-*/files/media/images/val/panel_*.png")
    return sorted((int(p.name.split("_")[1]), p) for p in pngs)


def plot_training_curves(csv_path: str | os.PathLike, out_png: str | os.PathLike,
                         baselines: dict[str, float] | None = None) -> Path:
    """Training geometry loss per step and validation normal error / displacement MAE per epoch, as a PNG.
    ``baselines`` (name → normal error in degrees) are drawn as horizontal lines on the validation panel, and
    the zero-detail error on the same validation patches (``val/normal_deg_zero``) as a dashed curve when logged;
    a fourth panel shows the error on wrinkle texels (``val/normal_deg_wrinkles`` and its ``_zero``) when logged."""
    m = read_metrics(csv_path)
    wrinkles = "val/normal_deg_wrinkles" in m  # a fourth panel: the error on wrinkle texels (and zero detail's)
    fig, axes = _subplots(1, 4 if wrinkles else 3, figsize=(17 if wrinkles else 13, 3.6))
    if "train/loss_geo" in m:
        steps, values = zip(*[(s, v) for _, s, v in m["train/loss_geo"]], strict=True)
        axes[0].plot(steps, values, lw=0.6, alpha=0.4 if len(values) > 50 else 0.8)
        if len(values) > 50:  # per-step losses of random patches are noisy: a moving mean shows the trend
            w = max(len(values) // 30, 5)
            axes[0].plot(steps[w - 1:], np.convolve(values, np.ones(w) / w, mode="valid"), lw=1.5,
                         label=f"mean of {w} steps")
            axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set(title="train: geometry L1 (network units)", xlabel="step", yscale="log")
    for ax, key, title in ((axes[1], "val/normal_deg", "val: normal-angle error (°)"),
                           (axes[2], "val/disp_mae_mm", "val: displacement MAE (mm)")):
        if key in m:
            epochs, values = zip(*[(e, v) for e, _, v in m[key]], strict=True)
            ax.plot(epochs, values, "o-", label="DFDN")
        ax.set(title=title, xlabel="epoch")
    if "val/normal_deg_zero" in m:
        epochs, values = zip(*[(e, v) for e, _, v in m["val/normal_deg_zero"]], strict=True)
        axes[1].plot(epochs, values, "--", color="gray", label="zero detail")
    for name, value in (baselines or {}).items():
        axes[1].axhline(value, ls="--", lw=1, color="gray")
        axes[1].annotate(name, (0, value), textcoords="offset points", xytext=(2, 2), fontsize=8, color="gray")
    axes[1].legend(loc="upper right", fontsize=8)
    if wrinkles:
        for key, style, label in (("val/normal_deg_wrinkles", "o-", "DFDN"),
                                  ("val/normal_deg_wrinkles_zero", "--", "zero detail")):
            if key in m:
                epochs, values = zip(*[(e, v) for e, _, v in m[key]], strict=True)
                axes[3].plot(epochs, values, style, label=label, **({"color": "gray"} if style == "--" else {}))
        axes[3].set(title="val: normal error on wrinkle texels (°)", xlabel="epoch")
        axes[3].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, out_png)


# ------------------------------------------------------------------------------------------------- evaluation
METHOD_LABELS = {"dfdn": "DFDN (checkpoint)", "untrained": "DFDN untrained", "zero": "zero detail (proxy only)",
                 "highpass": "high-pass heuristic"}
#: The block of a markdown file (the README) that ``eval/run.py readme=FILE`` replaces with its results table.
README_START = "<!-- eval-table:start (generated by `python eval/run.py readme=README.md`; edits here are lost) -->"
README_END = "<!-- eval-table:end -->"


def plot_angle_histograms(bins_deg: list[float], counts: dict[str, list[int]], out_png: str | os.PathLike) -> Path:
    """Distribution of the per-texel normal-angle error (degrees) of each method, as the fraction of texels per
    degree (log scale), from histogram counts over ``bins_deg`` edges."""
    edges = np.asarray(bins_deg, np.float64)
    fig, ax = _subplots(figsize=(7, 3.6))
    for method, c_raw in counts.items():
        c = np.asarray(c_raw, np.float64)
        density = c / max(c.sum(), 1) / np.diff(edges)
        ax.stairs(density, edges, label=METHOD_LABELS.get(method, method))
    ax.set(xlabel="normal-angle error (°)", ylabel="fraction of texels per °", yscale="log", xlim=(0, 30),
           title="held-out scans: per-texel normal error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, out_png)


def plot_region_bars(results: dict[str, dict[str, dict[str, float]]], out_png: str | os.PathLike,
                     metrics: tuple[tuple[str, str], ...] = (("normal_deg", "normal error (°)"),
                                                              ("disp_mae_mm", "displacement MAE (mm)"),
                                                              ("normal_ssim", "normal-map 1 − SSIM"))) -> Path:
    """Grouped bars: one group per UV region (``all`` first), one bar per method, one panel per metric (lower is
    better in every panel: SSIM is drawn as 1 − SSIM)."""
    methods = list(results)
    regions = sorted({r for v in results.values() for r in v}, key=lambda r: (r != "all", r))
    fig, axes = _subplots(len(metrics), 1, figsize=(9, 2.5 * len(metrics) + 0.4), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(regions))
    for ax, (key, title) in zip(axes[:, 0], metrics, strict=True):
        for i, m in enumerate(methods):
            values = np.array([results[m].get(r, {}).get(key, np.nan) for r in regions], np.float64)
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, 1 - values if key == "normal_ssim" else values, width,
                   label=METHOD_LABELS.get(m, m))
        ax.set_xticks(x, regions)
        ax.set_title(title, fontsize=10)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", ncol=len(methods), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save_figure(fig, out_png)


def plot_uv_error_maps(angle_maps: dict[str, np.ndarray], out_png: str | os.PathLike, vmax_deg: float = 10.0) -> Path:
    """Per-texel normal-angle error (degrees, NaN = not scored) of each method on one sample, in UV space
    (row 0 = top of the map), on one colour scale."""
    fig, axes = _subplots(1, len(angle_maps), figsize=(3.4 * len(angle_maps) + 0.8, 3.6), squeeze=False)
    im = None
    for ax, (m, a) in zip(axes[0], angle_maps.items(), strict=True):
        im = ax.imshow(a, cmap="magma", vmin=0, vmax=vmax_deg, interpolation="antialiased")
        ax.set_title(f"{METHOD_LABELS.get(m, m)}\nmean {np.nanmean(a):.2f}°", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, label="normal error (°)")
    return _save_figure(fig, out_png)


def plot_rerenders(sample: dict, out_png: str | os.PathLike, vmax: float = 0.15) -> Path:
    """One photo in UV: the unwrapped photo and each method's re-render (top), the visibility weights and each
    method's per-texel |re-render − photo| (RGB mean, weighted by visibility; bottom)."""
    renders = sample["renders"]
    photo = np.asarray(sample["texture"], np.float32) / 255
    vis = np.asarray(sample["visibility"], np.float32)
    n = len(renders) + 1
    fig, axes = _subplots(2, n, figsize=(3 * n + 0.8, 6.2), squeeze=False)
    axes[0, 0].imshow(photo)
    axes[0, 0].set_title(f"{sample['photo']}: unwrap", fontsize=9)
    axes[1, 0].imshow(vis, cmap="gray", vmin=0, vmax=1)
    axes[1, 0].set_title("visibility weight", fontsize=9)
    im = None
    for k, (m, r) in enumerate(renders.items(), start=1):
        axes[0, k].imshow(r)
        axes[0, k].set_title(f"re-render: {METHOD_LABELS.get(m, m)}", fontsize=9)
        im = axes[1, k].imshow(np.abs(r - photo).mean(-1) * vis, cmap="magma", vmin=0, vmax=vmax)
        axes[1, k].set_title("|re-render − photo|", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.colorbar(im, ax=axes[1].tolist(), fraction=0.02, label="L1 (RGB, 0–1)")
    return _save_figure(fig, out_png)


def _seed_range(seeds: list) -> str:
    known = [int(s) for s in seeds if s is not None]
    return f"seeds {min(known)}–{max(known)}" if known else "seeds unknown"


def readme_table(payload: dict) -> str:
    """:func:`results_table` between the ``README_START`` / ``README_END`` markers (the README's block)."""
    return f"{README_START}\n\n{results_table(payload)}\n{README_END}\n"


def results_table(payload: dict) -> str:
    """The results table: each method on the held-out scans (all face texels) and on real photos, plus the proxy
    stage's photo metrics."""
    res, photos = payload["results"], (payload.get("photos") or {}).get("summary")
    photo_l1 = (photos or {}).get("wild", {}).get("photometric_l1", {})
    lines = [f"Checkpoint `{Path(payload['checkpoint']).name}`. Held-out procedural scans: "
             f"{payload['held_out_samples']} full UV maps ({_seed_range(payload['seeds'])}), every valid face texel; "
             "*on wrinkles*: the texels where the GT's wrinkle-scale relief tilts the normal by more than 1°."]
    if photos:
        n = photos["wild"]["completed"]
        held_out = " outside the training run's photo draw" if payload["photos"].get("training_draw") else ""
        lines[-1] += (f" Real photos: {n} wild photo{'s' if n != 1 else ''}{held_out} (photometric L1 of the "
                      "re-render, RGB in [0, 1]).")
    lines += ["", "| method | disp MAE (mm) | normal error (°) | on wrinkles (°) | < 5° | normal SSIM | "
              "normal PSNR (dB) | photo re-render L1 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m, regions in res.items():
        v = regions["all"]
        l1 = f"{photo_l1[m]:.5f}" if m in photo_l1 else "–"
        wr = f"{regions['wrinkles']['normal_deg']:.2f}" if "wrinkles" in regions else "–"
        lines.append(f"| {METHOD_LABELS.get(m, m)} | {v['disp_mae_mm']:.4f} | {v['normal_deg']:.2f} | {wr} | "
                     f"{v['normal_under_5deg']:.1%} | {v['normal_ssim']:.4f} | {v['normal_psnr_db']:.2f} | {l1} |")
    if payload.get("not_scored_on_scans"):
        names = ", ".join(METHOD_LABELS.get(m, m) for m in payload["not_scored_on_scans"])
        lines += ["", f"Not scored on the procedural scans: {names}. They read the photo scale "
                  "(`fds.proxy.photo_scale`), and procedural scans were never photographed; the photo-level rows "
                  "below score them."]
    if photos:
        lab, wild = photos["labelled"], photos["wild"]
        text = "Proxy stage on real photos (the same for every method): "
        if "nme_median" in lab:
            text += (f"landmark NME median {lab['nme_median']:.4f} (mean {lab['nme_mean']:.4f}) over "
                     f"{lab['found']}/{lab['photos']} labelled photos with a face found; ")
        text += f"wild photos completed {wild['completed']}/{wild['photos']}"
        if "reprojection_px_mean" in wild:
            text += (f", fit reprojection error {wild['reprojection_px_mean']:.2f} px "
                     f"({wild['reprojection_nme_mean']:.4f} of the eye-corner distance)")
        lines += ["", text + "."]
    level = (payload.get("photo_level") or {}).get("summary")
    if level and level.get("photos"):
        lines += ["", f"Held-out heads rendered as photos ({level['photos']} photos, 3 lightings each): high-passed "
                  "detail normals in the photo against the GT's, inside the face minus brows and eyes.", "",
                  *photo_level_table(level)]
    return "\n".join(lines) + "\n"


def replace_marked_block(path: str | os.PathLike, block: str) -> Path:
    """Replace the text from ``README_START`` to ``README_END`` (inclusive) in ``path`` with ``block``
    (atomically); a file without both markers is an error naming them."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    a, b = text.find(README_START), text.find(README_END)
    if a < 0 or b < a:
        raise ValueError(f"{path} has no results block to replace: it needs the lines {README_START!r} and "
                         f"{README_END!r}")
    atomic_write_bytes(path, [(text[:a] + block.rstrip("\n") + text[b + len(README_END):]).encode("utf-8")])
    return path


def region_table(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown rows: one per method × region (``all`` first)."""
    lines = ["| method | region | MAE (mm) | RMSE (mm) | normal mean (°) | median (°) | < 5° | < 10° | < 20° | "
             "SSIM | PSNR (dB) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method, regions in results.items():
        for region in sorted(regions, key=lambda r: (r != "all", r)):
            v = regions[region]
            lines.append(f"| {method} | {region} | {v['disp_mae_mm']:.4f} | {v['disp_rmse_mm']:.4f} | "
                         f"{v['normal_deg']:.2f} | {v['normal_median_deg']:.2f} | {v['normal_under_5deg']:.1%} | "
                         f"{v['normal_under_10deg']:.1%} | {v['normal_under_20deg']:.1%} | {v['normal_ssim']:.4f} | "
                         f"{v['normal_psnr_db']:.2f} |")
    return lines


def photo_tables(photos: dict) -> list[str]:
    """Markdown: the labelled photos' NME summary and one row per wild photo (fit error, re-render L1 per method)."""
    s = photos["summary"]
    lines = ["## Real photos", ""]
    lab = s["labelled"]
    if "nme_median" in lab:
        lines.append(f"Landmark NME (mean point error / outer-eye-corner distance) of the proxy's detector on "
                     f"{lab['found']}/{lab['photos']} labelled photos: median {lab['nme_median']:.4f}, mean "
                     f"{lab['nme_mean']:.4f}, max {lab['nme_max']:.4f}.")
    wild = s["wild"]
    left_out = (f" ({photos['excluded_training_photos']} photos the training run drew were left out)"
                if photos.get("training_draw") else "")
    lines += ["", f"Wild photos: {wild['photos']}{left_out}; proxy completed on {wild['completed']} "
              f"({wild['completion_rate']:.0%})."]
    ok = [r for r in photos["wild"] if r["ok"]]
    if ok:
        methods = list(ok[0]["photometric_l1"])
        lines += ["", "| photo | reprojection (px) | reprojection / eye dist. | "
                  + " | ".join(f"L1 {m}" for m in methods) + " |", "|---|---:|---:|" + "---:|" * len(methods)]
        for r in ok:
            lines.append(f"| {r['photo']} | {r['reprojection_px']:.2f} | {r['reprojection_nme']:.4f} | "
                         + " | ".join(f"{r['photometric_l1'][m]:.5f}" for m in methods) + " |")
    lines += [f"- {r['photo']}: no proxy ({r['reason']})" for r in photos["wild"] if not r["ok"]]
    return lines


PHOTO_LEVEL_LABELS = {**METHOD_LABELS, "mirrored_gt": "mirrored GT (chance)",
                      "fitted_gt": "training target (ceiling)"}


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None or not np.isfinite(v) else format(v, fmt)


def photo_level_table(summary: dict) -> list[str]:
    """Markdown rows: each method on the held-out photos (means over photos, ``all`` region), the flat-line relief."""
    lines = ["| method | detail r | amplitude ratio | normal error (°) | no detail (°) | below no detail on every "
             "photo | relief on flat lines (GT = 1) |", "|---|---:|---:|---:|---:|:---:|---:|"]
    for m, v in summary.get("overall", {}).items():
        below = summary.get("below_zero_every_photo", {}).get(m)
        lines.append(f"| {PHOTO_LEVEL_LABELS.get(m, m)} | {_f(v['detail_r'])} | {_f(v['amplitude_ratio'])} | "
                     f"{_f(v['normal_deg'])} | {_f(v['normal_deg_zero'])} | "
                     f"{'–' if m == 'zero' else ('yes' if below else 'no')} | "
                     f"{_f(summary.get('line_relief', {}).get(m), '.2f')} |")
    return lines


def head_interval_table(heads: dict) -> list[str]:
    """Markdown: each method's bootstrap interval over heads, and its paired difference from the baseline."""
    if not heads.get("interval"):
        return []
    pct, base = round(100 * heads["level"]), str(heads.get("baseline"))

    def span(v) -> str:
        return "–" if not v else f"[{_f(v[0])}, {_f(v[1])}]"

    def paired(v) -> str:
        return "–" if not v else f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"

    keys = ("detail_r", "amplitude_ratio", "normal_deg")
    lines = [f"{pct} % intervals over the {heads['heads']} heads (bootstrap resampling heads: a head's photos share "
             f"its skin and size; with few heads this is a floor on the uncertainty), and each method minus "
             f"{PHOTO_LEVEL_LABELS.get(base, base)} on the same photos:", "",
             "| method | r | amplitude ratio | normal error (°) | Δr | Δ amplitude | Δ normal (°) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m, iv in heads["interval"].items():
        pv = heads.get("paired", {}).get(m, {})
        lines.append(f"| {PHOTO_LEVEL_LABELS.get(m, m)} | " + " | ".join(span(iv.get(k)) for k in keys) + " | "
                     + " | ".join(paired(pv.get(k)) for k in keys) + " |")
    return [*lines, ""]


def photo_level_tables(photo_level: dict) -> list[str]:
    """``report.md``'s photo-level section: overall, per lighting, per region, per photo; skipped photos."""
    s = photo_level["summary"]
    lines = ["## Photo-level benchmark (held-out heads rendered as photos)", "",
             f"{s['photos']} photos ({len(photo_level.get('skipped', []))} skipped); in each photo, inside the face "
             "minus brows and eye openings: Pearson r and RMS ratio (method / GT) of the detail normals (detailed − "
             "proxy vs GT detailed − GT smooth) high-passed at σ = 3 px; normal error = angle between the GT smooth "
             "normal carrying the method's detail and the GT detailed normal; relief on flat lines = the method's "
             "RMS relief on painted marks and cast-shadow edges (flat in the GT) over that on the skin within 8 px, "
             "relative to the GT's own ratio (1 = as the truth, > 1 = grooves along the lines). Means over photos.", "",
             *photo_level_table(s), "", *head_interval_table(s.get("heads") or {})]
    metrics = (("detail_r", "r"), ("amplitude_ratio", "amp."), ("normal_deg", "°"))
    for title, groups in (("lighting", s.get("by_lighting", {})), ("region", s.get("by_region", {}))):
        if not groups:
            continue
        methods = list(next(iter(groups.values())))
        lines += [f"Per {title} (r / amplitude ratio / normal error °; no detail: "
                  + ", ".join(f"{g} {_f(v.get('zero', {}).get('normal_deg_zero'))}°" for g, v in groups.items()) + ")",
                  "", f"| {title} | " + " | ".join(PHOTO_LEVEL_LABELS.get(m, m) for m in methods) + " |",
                  "|---|" + "---:|" * len(methods)]
        for g, per in groups.items():
            lines.append(f"| {g} | " + " | ".join(" / ".join(_f(per[m].get(k)) for k, _ in metrics) for m in methods)
                         + " |")
        lines.append("")
    rows = photo_level.get("rows", [])
    if rows:
        methods = list(rows[0]["scores"])
        lines += ["Per photo (r / amplitude ratio / normal error °; face width and flat-line pixels)", "",
                  "| photo | lighting | face px | no detail (°) | "
                  + " | ".join(PHOTO_LEVEL_LABELS.get(m, m) for m in methods)
                  + " | flat-line px |", "|---|---|---:|---:|" + "---:|" * (len(methods) + 1)]
        for r in rows:
            zero = r["scores"].get("zero", next(iter(r["scores"].values())))["all"]["normal_deg_zero"]
            lines.append(f"| {r['photo']} | {r['lighting']} | {_f(r.get('face_width_px'), '.0f')} | {_f(zero)} | "
                         + " | ".join(
                " / ".join(_f(r["scores"][m]["all"].get(k)) for k, _ in metrics) for m in methods)
                + f" | {r['line_pixels']} |")
        lines.append("")
    lines += [f"- skipped {x}" for x in photo_level.get("skipped", [])]
    return lines


def eval_report_markdown(payload: dict, figures: dict[str, Path]) -> str:
    """``report.md``: the README table, the figures (linked by file name, they sit beside the report), the
    per-region table and the real-photo details."""
    lines = ["# Evaluation", "", results_table(payload),
             f"High-pass heuristic scale k = {payload['highpass_k_mm']:.4f} mm (fitted on training scans). "
             "SSIM/PSNR compare the normal maps as images (n + 1)/2, per sample, averaged over samples.", ""]
    lines += [f"![{name}]({Path(p).name})" for name, p in figures.items()]
    lines += ["", "## Held-out scans per region", "", *region_table(payload["results"]), ""]
    if payload.get("photos"):
        lines += [*photo_tables(payload["photos"]), ""]
    if payload.get("photo_level"):
        lines += [*photo_level_tables(payload["photo_level"]), ""]
    return "\n".join(lines)
