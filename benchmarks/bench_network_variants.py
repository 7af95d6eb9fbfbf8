"""The detail network's CPU execution variants, timed on one real face and compared with the reference module.

    .venv/bin/python benchmarks/bench_network_variants.py [--repeats 3] [--out docs/bench_network_variants.md]

One photo (matplotlib's grace_hopper) through the proxy stage, then the full 1024² displacement map of the shipped
checkpoint (patch grid, no flip-averaging: the inference default) by each variant of the same weights, in the same
process: the reference module (eager, NCHW, BatchNorm as layers); BatchNorm folded; channels-last weights; both
(``fds.models.fusion.inference_copy``, the default); the default under ``torch.autocast(cpu, bfloat16)``; the
default through ``torch.compile`` (its compile time printed apart); int8 dynamic quantisation of the Linear layers
(``torch.ao.quantization.quantize_dynamic``: the only layers it covers; the network is convolutional). Each row:
median seconds of ``--repeats`` maps after one untimed map, the speed-up over the reference, and the largest and
RMS difference from the reference map in mm over the texels it covers; the default exported to ONNX and run by ONNX
Runtime (needs ``pip install onnx onnxruntime``, not dependencies of fds; the row says so when they are absent).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib.cbook
import numpy as np
import torch
from machine import describe

from fds.demo import SHIPPED_CHECKPOINT
from fds.detail import DetailPredictor
from fds.models.fusion import inference_copy
from fds.proxy import ProxyStage

ROOT = Path(__file__).resolve().parents[1]


class _Autocast:
    """A network whose ``predict_step`` runs under CPU bfloat16 autocast (outputs back in float32)."""

    def __init__(self, net: Any) -> None:
        self.net, self.device, self.inference_generator = net, net.device, net.inference_generator

    def predict_step(self, batch: dict, idx: int) -> dict:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.net.predict_step(batch, idx)
        return {k: v.float() if torch.is_tensor(v) else v for k, v in out.items()}


class _Onnx:
    """The default network exported to ONNX (``torch.onnx.export``, dynamic batch) at its first batch and run by
    ONNX Runtime's CPU provider with as many intra-op threads as torch uses; one session per region model."""

    def __init__(self, module: Any, folder: Path) -> None:
        net = inference_copy(module, channels_last=False)
        self.device, self.inference_generator = net.device, net.inference_generator
        self.scale, self.folder, self.sessions = float(net.hparams.disp_scale_mm), folder, {}

    def _session(self, key: str, example: torch.Tensor) -> Any:
        if key not in self.sessions:
            import onnxruntime

            path = self.folder / f"{key}.onnx"
            torch.onnx.export(_Refined(self.inference_generator.models[key]), (example,), str(path),
                              input_names=["input"], output_names=["refined"], dynamic_axes={"input": {0: "batch"}},
                              dynamo=False)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            self.sessions[key] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self.sessions[key]

    def predict_step(self, batch: dict, idx: int) -> dict:
        x, region = batch["input"].float().contiguous(), batch.get("region")
        names = [region] * x.shape[0] if region is None or isinstance(region, str) else list(region)
        out = torch.empty(x.shape[0], 1, *x.shape[-2:])
        for name in dict.fromkeys(names):
            rows = [i for i, r in enumerate(names) if r == name]
            key = "shared" if self.inference_generator.shared or name is None else name
            (res,) = self._session(key, x[rows]).run(None, {"input": x[rows].numpy()})
            out[rows] = torch.from_numpy(res)
        extra = {k: v for k, v in batch.items() if k != "input"}
        return {**extra, "displacement": out, "displacement_mm": out * self.scale}


class _Refined(torch.nn.Module):
    """A region model's refined displacement only (what ``predict_step`` keeps), for export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).refined


def _variants(module: Any, folder: Path) -> dict[str, Any]:
    fast = inference_copy(module)
    compiled = inference_copy(module)
    name = "generator_ema" if compiled.generator_ema is not None else "generator"
    setattr(compiled, name, torch.compile(getattr(compiled, name)))
    int8 = torch.ao.quantization.quantize_dynamic(inference_copy(module, channels_last=False), {torch.nn.Linear},
                                                  dtype=torch.qint8)
    return {
        "reference module (eager, NCHW, BatchNorm layers)": copy.deepcopy(module).eval(),
        "BatchNorm folded": inference_copy(module, channels_last=False),
        "channels-last weights": inference_copy(module, fold_bn=False),
        "folded + channels-last (the default)": fast,
        "default + bf16 autocast": _Autocast(inference_copy(module)),
        "default + torch.compile": compiled,
        "folded + int8 dynamic (Linear layers)": int8,
        "folded, ONNX Runtime (CPU provider)": _Onnx(module, folder),
    }


def _time_maps(predictor: DetailPredictor, texture: np.ndarray, fit: Any, repeats: int
               ) -> tuple[float, float, np.ndarray]:
    """``fit``: the texture's fitted proxy (the default checkpoint reads the photo scale from it)."""
    t0 = time.perf_counter()
    first = predictor.full_map(texture, fit)  # untimed for the median (compiles, allocates)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.full_map(texture, fit)
        times.append(time.perf_counter() - t)
    return statistics.median(times), warm, first.displacement_mm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ckpt", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_network_variants.md"))
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    stage = ProxyStage(cache_dir=None)
    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    result = stage(photo)[0]
    texture = result.uv.texture
    base = DetailPredictor.from_checkpoint(args.ckpt, stage.face_model)
    load = os.getloadavg()[0]
    rows, ref_map, ref_s = [], None, None
    with tempfile.TemporaryDirectory(prefix="fds_onnx_") as tmp:  # the exported graphs go with it
        folder = Path(tmp)
        for name, net in _variants(base.module, folder).items():
            predictor = base.with_module(base.module, args.ckpt)
            try:
                predictor.network = net
                sec, warm, disp = _time_maps(predictor, texture, result.fit, args.repeats)
            except Exception as exc:  # a variant this torch build cannot run: say so and go on
                rows.append(f"| {name} | failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]} | | | | |")
                print(name, "failed:", exc)
                continue
            if ref_map is None:
                ref_map, ref_s = disp, sec
            covered = (ref_map != 0) | (disp != 0)
            diff = (disp - ref_map)[covered]
            rows.append(f"| {name} | {sec:.2f} | {warm:.1f} | {ref_s / sec:.2f}× | {np.abs(diff).max():.2e} | "
                        f"{np.sqrt((diff**2).mean()):.2e} |")
            print(rows[-1], flush=True)
    lines = ["# Detail network variants on CPU (`benchmarks/bench_network_variants.py`)", "",
             f"Machine: {describe()}; load average {load:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after. grace_hopper's full 1024² map (the shipped checkpoint, patch grid, "
             f"no flip), median of {args.repeats} after one untimed map; the reference map's RMS is "
             f"{np.sqrt((ref_map[ref_map != 0] ** 2).mean()):.3f} mm." if ref_map is not None else "", "",
             "| variant | s per map | first map, s | speed-up | max abs diff, mm | RMS diff, mm |",
             "|---|---:|---:|---:|---:|---:|", *rows]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
