#!/usr/bin/env bash
# The GPU checks, as one script for one call on a lent GPU machine (no internet there): from the repo root,
#   bash benchmarks/gpu_check.sh
# with these ignored folders travelling beside the checkout:
#   .whl/  wheels of what that machine's python3 lacks (hydra-core, omegaconf, antlr4, kornia, kornia_rs,
#          eos-py, diffrp-nvdiffrast), installed into $TMPDIR/site (/tmp by default);
#   .gpu/  assets/sfm (Surrey Face Model), faces/labelled (the 16 photos of the albedo bank) and
#          cache/albedo_bank_<key>.npz (that bank, already built: generation only loads it).
# Steps, each under its own time cap, the whole within GPU_CHECK_BUDGET_S (default 530 s):
#   a. wheels, nvidia-smi, versions, `import fds`      b. nvdiffrast JIT build; pytest -m cuda (+ gpu trainers)
#   c. render + model + pipeline benchmarks (CUDA)      d. procedural scans (train + held-out), in the background
#   e. train experiment=dfdn_geo_gpu trainer=gpu until the budget's end; export the checkpoint as safetensors
# Everything goes to $OUT (default $TMPDIR/gpu_check): gpu_check.log, bench_render.md, bench_models.md,
# metrics.csv, train_config.yaml and <GPU_CHECK_CKPT_NAME>.safetensors (split into .partN files over 15 MB:
# `cat NAME.safetensors.part* > NAME.safetensors` and compare with the sha256 in the log).
# Knobs (environment): EXTRA_TRAIN_OVERRIDES (appended to train.py's overrides: they win), GPU_CHECK_TRAIN_S
# (cap on training seconds), GPU_CHECK_BUDGET_S, GPU_CHECK_NUM_SCANS (48), GPU_CHECK_NUM_HELDOUT (8),
# GPU_CHECK_WORKERS (generation processes, default nproc), GPU_CHECK_DATA_DIR (data), GPU_CHECK_DATA_OVERRIDES
# (for generation and training alike, e.g. units.map_resolution=256), GPU_CHECK_TRAINER (gpu),
# GPU_CHECK_SKIP (any of: wheels nvdiffrast tests bench bench_models gen train), GPU_CHECK_PYTHON (python3),
# GPU_CHECK_CKPT_NAME (dfdn_lite_gpu), BENCH_MODELS_ARGS, BENCH_RENDER_ARGS, BENCH_PIPELINE_ARGS (GPU_CHECK_SKIP
# also takes bench_render, bench_models and bench_pipeline; GPU_CHECK_PIPELINE_CAP_S caps the last, 240 s).
# A pipeline-only check: GPU_CHECK_SKIP="gen train bench_render bench_models" GPU_CHECK_TRAIN_RESERVE_S=0; it
# writes $OUT/bench_pipeline.md. That machine has no dlib landmark model (99.7 MB, over what can travel), so
# the pipeline benchmark reads proxies made here: .gpu/pcache (an fds proxy cache of grace_hopper and of the
# photos copied to .gpu/folder), with BENCH_PIPELINE_ARGS="--proxy-cache .gpu/pcache --folder-dir .gpu/folder
# --folder-photos 7 --threads 16".
# GPU_CHECK_TRAIN_RESERVE_S (210): seconds the earlier steps leave for training; set 0 with GPU_CHECK_SKIP=train,
# or the earlier steps are cut short for a training that never runs. GPU_CHECK_VARIANTS="name:overrides;..."
# trains several variants at once and exports the best (see step e).
# A CPU dry run of steps d-e: GPU_CHECK_SKIP="wheels nvdiffrast tests bench" GPU_CHECK_TRAINER=cpu ... (see
# the knobs above; keep the sizes tiny).

set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
ROOT=$PWD
TMP=${TMPDIR:-/tmp}   # scratch files on the GPU machine
OUT=${OUT:-$TMP/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

PY=${GPU_CHECK_PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-530}
SKIP=" ${GPU_CHECK_SKIP:-} "
TRAINER=${GPU_CHECK_TRAINER:-gpu}
NUM_SCANS=${GPU_CHECK_NUM_SCANS:-48}
NUM_HELDOUT=${GPU_CHECK_NUM_HELDOUT:-8}
GEN_WORKERS=${GPU_CHECK_WORKERS:-$(nproc)}
DATA_DIR=${GPU_CHECK_DATA_DIR:-data}
DATA_OVERRIDES=${GPU_CHECK_DATA_OVERRIDES:-}
CKPT_NAME=${GPU_CHECK_CKPT_NAME:-dfdn_lite_gpu}
RUN_DIR=${GPU_CHECK_RUN_DIR:-logs/dfdn_geo_gpu/gpu_check}
BENCH_MODELS_ARGS=${BENCH_MODELS_ARGS:---devices cuda --configs lite paper --batch 4 --steps 10 --warmup 3}
BENCH_RENDER_ARGS=${BENCH_RENDER_ARGS:---repeats 5}
SUMMARY=()

skipped() { [[ "$SKIP" == *" $1 "* ]]; }
left() { echo $((BUDGET - SECONDS)); }
# step NAME CAP_S CMD...: run CMD under `timeout` (the whole process group is killed at the cap), the cap cut
# so as to end before the budget less RESERVE seconds (kept for the training until it starts); with
# TEE_TO=FILE its standard output is also written to FILE
RESERVE=0
step() {
    local name=$1 cap=$2 t0=$SECONDS rc avail
    shift 2
    avail=$((BUDGET - SECONDS - RESERVE))
    (( cap > avail )) && cap=$avail
    if (( cap < 10 )); then
        echo "=== [$name] SKIPPED at ${t0}s: ${avail}s of the budget left for it"
        SUMMARY+=("$name: skipped (budget)")
        return 99
    fi
    echo "=== [$name] start at ${t0}s, cap ${cap}s: $*"
    if [[ -n "${TEE_TO:-}" ]]; then
        timeout -k 10 "$cap" "$@" | tee "$TEE_TO"
    else
        timeout -k 10 "$cap" "$@"
    fi
    rc=$?
    [[ $rc == 124 || $rc == 137 ]] && echo "=== [$name] TIMED OUT after ${cap}s"
    echo "=== [$name] rc=$rc in $((SECONDS - t0))s"
    SUMMARY+=("$name: rc=$rc, $((SECONDS - t0))s")
    return $rc
}

# --- a. environment ------------------------------------------------------------------------------------------
echo "=== gpu_check $(date -u +%FT%TZ) in $ROOT, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
git status --short 2>/dev/null | head -20
if ! skipped wheels; then
    step wheels 120 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target $TMP/site .whl/*.whl
    export PYTHONPATH=$TMP/site:$ROOT/src
else
    export PYTHONPATH=$ROOT/src
fi
export FDS_ASSETS_DIR=$ROOT/.gpu/assets FDS_OFFLINE=1
export TORCH_EXTENSIONS_DIR=$TMP/torch_extensions MAX_JOBS=${MAX_JOBS:-$(nproc)} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
command -v nvidia-smi >/dev/null && nvidia-smi
echo "nproc $(nproc), CUDA_HOME=${CUDA_HOME:-unset}, nvcc: $(command -v nvcc || echo none)" \
    "-> $(readlink -f "$(command -v nvcc)" 2>/dev/null), ninja: $(command -v ninja || echo none)"
free -g | head -2
df -h /dev/shm /tmp . 2>/dev/null
SHM_MB=$(df -m --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
if [[ -n "$SHM_MB" ]] && (( SHM_MB < 1024 )); then  # DataLoader workers hand batches over through /dev/shm
    echo "WARNING: /dev/shm has ${SHM_MB} MB: training with data.scans.num_workers=2"
    DATA_OVERRIDES="$DATA_OVERRIDES data.scans.num_workers=2"
fi
command -v nvcc >/dev/null && nvcc --version | tail -2
step import 60 $PY - <<'EOF'
import sys, torch, fds, hydra, omegaconf, kornia, pytorch_lightning as pl
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      torch.cuda.is_available() and torch.cuda.get_device_name(0), "| lightning", pl.__version__,
      "| hydra", hydra.__version__, "| omegaconf", omegaconf.__version__, "| kornia", kornia.__version__,
      "| fds", fds.__version__, fds.__file__)
try:
    import eos
    print("eos", getattr(eos, "__version__", "?"))
except ImportError as exc:
    print("eos missing:", exc)
EOF

# --- d. procedural scans, in the background (CPU) while the GPU steps run -----------------------------------
GEN_LOG=$TMP/gpu_check_gen.log
GEN_PID=
if ! skipped gen; then
    echo "=== [gen] start at ${SECONDS}s in the background: $NUM_SCANS + $NUM_HELDOUT scans, $GEN_WORKERS processes"
    T_GEN=$SECONDS
    # a file, not stdin: the spawned generation processes import the main module
    cat >$TMP/gpu_check_gen.py <<'EOF'
import os
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fds.data.procedural import write_procedural_samples
from fds.data.sample_io import list_samples


def generate(name: str, cfg, num: int, workers: int) -> None:
    cache = Path(".gpu/cache")
    before = set(cache.glob("albedo_bank_*.npz"))
    dm = instantiate(cfg.data).scans
    gen = dm.make_generator()
    t = time.perf_counter()
    bank = gen.bank
    new = set(cache.glob("albedo_bank_*.npz")) - before
    print(f"[{name}] albedo bank: {len(bank) if bank is not None else 'NONE (palette fallback)'} maps, "
          f"{'MISS: rebuilt ' + str(sorted(new)) if new else 'cache hit'}, {time.perf_counter() - t:.1f} s")
    start = int(cfg.data.scans.get("generate_start_seed", 0) or 0)
    t = time.perf_counter()
    write_procedural_samples(dm.data_dir, num, gen, start_seed=start, workers=workers)
    dt = time.perf_counter() - t
    print(f"[{name}] {num} samples (seeds {start}..{start + num - 1}, R={gen.resolution}) in {dm.data_dir}: "
          f"{dt:.1f} s, {num / dt:.2f} samples/s; the folder holds {len(list_samples(dm.data_dir))}", flush=True)


def main() -> None:
    env = os.environ
    common = [f"paths.data_dir={env['DATA_DIR']}", "data.scans.shared_data_dir=.gpu",
              "data.scans.generator.cache_dir=.gpu/cache",
              *env.get("DATA_OVERRIDES", "").split()]
    with initialize_config_dir(os.path.abspath("configs"), version_base="1.3"):
        sets = [("train", compose("train", overrides=["experiment=dfdn_geo_gpu", *common]), int(env["NUM_SCANS"])),
                ("heldout", compose("eval", overrides=common), int(env["NUM_HELDOUT"]))]
    for name, cfg, num in sets:
        generate(name, cfg, num, int(env["GEN_WORKERS"]))


if __name__ == "__main__":
    main()
EOF
    DATA_DIR=$DATA_DIR GEN_WORKERS=$GEN_WORKERS NUM_SCANS=$NUM_SCANS NUM_HELDOUT=$NUM_HELDOUT \
    DATA_OVERRIDES=$DATA_OVERRIDES OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        timeout -k 10 "${GPU_CHECK_GEN_CAP_S:-240}" $PY $TMP/gpu_check_gen.py >"$GEN_LOG" 2>&1 &
    GEN_PID=$!
fi
wait_gen() {
    [[ -z "$GEN_PID" ]] && return 0
    wait "$GEN_PID"
    local rc=$?
    GEN_PID=
    cat "$GEN_LOG"
    [[ $rc == 124 || $rc == 137 ]] && echo "=== [gen] TIMED OUT"
    echo "=== [gen] rc=$rc, done at ${SECONDS}s ($((SECONDS - T_GEN))s)"
    SUMMARY+=("gen: rc=$rc, $((SECONDS - T_GEN))s (background)")
    du -sh "$DATA_DIR/scans" "$DATA_DIR/heldout_scans" 2>/dev/null
}

# --- b. nvdiffrast build + CUDA tests -----------------------------------------------------------------------
RESERVE=${GPU_CHECK_TRAIN_RESERVE_S:-210}   # the steps before the training leave it this much of the budget
NV_OK=1
if ! skipped nvdiffrast; then
    # a failed build is not retried by the later steps (each would compile again): they leave nvdiffrast out
    step nvdiffrast_build 240 $PY - <<'EOF' || NV_OK=0
import os
import tempfile
import time
import traceback
from pathlib import Path

import torch
from torch.utils import cpp_extension

home = cpp_extension.CUDA_HOME
print("CUDA_HOME (torch):", home, "| arch list:", os.environ.get("TORCH_CUDA_ARCH_LIST"))
if home:
    for rel in ("bin/nvcc", "include/cuda_runtime.h", "include/cusolverDn.h", "include/cublas_v2.h",
                "lib64/libcudart.so", "lib/libcudart.so"):
        print(f"  {rel}: {'yes' if (Path(home) / rel).exists() else 'no'}")


def build() -> None:
    t = time.perf_counter()
    from fds.render._raster_nvdiffrast import _dr  # builds the plugin, loading it from its build folder

    dr = _dr()
    ctx = dr.RasterizeCudaContext()  # the current CUDA device
    pos = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]], device="cuda")
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32, device="cuda")
    rast, _ = dr.rasterize(ctx, pos, tri, resolution=[8, 8])
    print(f"nvdiffrast built and rasterised ({int((rast[..., 3] > 0).sum())}/64 px covered) in "
          f"{time.perf_counter() - t:.1f} s")


try:
    build()
except Exception:
    traceback.print_exc()
    # retry once with the headers and libraries of CUDA's pip wheels (nvidia-*) on the compiler's paths
    site = Path(torch.__file__).resolve().parents[1]
    incs = sorted(str(p) for p in site.glob("nvidia/**/include") if p.is_dir())
    libs = sorted(str(p) for p in site.glob("nvidia/**/lib") if p.is_dir())
    link = Path(tempfile.gettempdir()) / "gpu_check_cudalink"
    link.mkdir(exist_ok=True)
    for lib in libs:  # the wheels ship libcudart.so.<major> only; -lcudart wants libcudart.so
        for f in sorted(Path(lib).glob("libcudart.so.*")):
            if not (link / "libcudart.so").exists():
                (link / "libcudart.so").symlink_to(f)
    os.environ["CPATH"] = ":".join([*incs, os.environ.get("CPATH", "")]).rstrip(":")
    os.environ["LIBRARY_PATH"] = ":".join([str(link), *libs, os.environ.get("LIBRARY_PATH", "")]).rstrip(":")
    print("retrying with CPATH =", os.environ["CPATH"], "\nLIBRARY_PATH =", os.environ["LIBRARY_PATH"])
    import nvdiffrast.torch.ops as ops

    ops._cached_plugin.clear()
    build()
EOF
fi
if ! skipped tests; then
    if (( NV_OK )); then
        step pytest_cuda 150 $PY -m pytest -q -p no:cacheprovider -m cuda tests/render tests/export/test_device_paths_cuda.py
    else
        echo "=== [pytest_cuda] not run: nvdiffrast did not build (its tests would skip)"
        SUMMARY+=("pytest_cuda: not run (no nvdiffrast)")
    fi
    step pytest_gpu_configs 90 $PY -m pytest -q -p no:cacheprovider tests/test_configs.py -k "gpu or ddp"
fi

# --- c. benchmarks (after the generation, so that the CPU is quiet) -----------------------------------------
wait_gen
if ! skipped bench; then
    (( NV_OK )) || BENCH_RENDER_ARGS="--backends torch $BENCH_RENDER_ARGS"
    # shellcheck disable=SC2086
    skipped bench_render || TEE_TO=$OUT/bench_render.md step bench_render 150 $PY benchmarks/bench_render.py --device cuda $BENCH_RENDER_ARGS
    # shellcheck disable=SC2086
    skipped bench_models || TEE_TO=$OUT/bench_models.md step bench_models 180 $PY benchmarks/bench_models.py $BENCH_MODELS_ARGS
    # per-face time of the inference pipeline, fast and reference paths, 1024² and 4096², network on CUDA
    # (goal ≤ 0.5 s at 4096²; maps and meshes still run on the CPU)
    # shellcheck disable=SC2086
    skipped bench_pipeline || step bench_pipeline "${GPU_CHECK_PIPELINE_CAP_S:-240}" $PY benchmarks/bench_pipeline.py --device cuda \
        --out "$OUT/bench_pipeline.md" ${BENCH_PIPELINE_ARGS:-}
fi

# --- e. training --------------------------------------------------------------------------------------------
RESERVE=0
if ! skipped train; then
    POST_S=45       # export + copies after training
    STARTUP_S=50    # imports, workers' charts, sanity checks, last validation and checkpoint
    TRAIN_CAP=$(( $(left) - POST_S ))
    MAX_TIME=$(( TRAIN_CAP - STARTUP_S ))
    if [[ -n "${GPU_CHECK_TRAIN_S:-}" && ${GPU_CHECK_TRAIN_S} -lt $MAX_TIME ]]; then
        MAX_TIME=$GPU_CHECK_TRAIN_S
        TRAIN_CAP=$(( MAX_TIME + STARTUP_S ))
    fi
    (( MAX_TIME < 20 )) && MAX_TIME=20 && TRAIN_CAP=$(( MAX_TIME + STARTUP_S ))
    MAX_TIME_STR=$(printf "00:%02d:%02d:%02d" $((MAX_TIME / 3600)) $((MAX_TIME % 3600 / 60)) $((MAX_TIME % 60)))
    rm -rf "$RUN_DIR"
    SMI_PID=
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv,noheader -l 15 \
            >$TMP/gpu_check_smi.csv 2>&1 &
        SMI_PID=$!
    fi
    TRAIN_ARGS=(experiment=dfdn_geo_gpu trainer="$TRAINER" logger=csv paths.data_dir="$DATA_DIR"
        data.scans.shared_data_dir=.gpu data.scans.generator.cache_dir=.gpu/cache data.scans.num_generate="$NUM_SCANS"
        data.scans.generation_workers="$GEN_WORKERS" trainer.max_time="'$MAX_TIME_STR'" ++trainer.enable_progress_bar=false)
    if [[ -z "${GPU_CHECK_VARIANTS:-}" ]]; then
        # shellcheck disable=SC2086
        step train "$TRAIN_CAP" $PY train.py "${TRAIN_ARGS[@]}" hydra.run.dir="$RUN_DIR" $DATA_OVERRIDES \
            ${EXTRA_TRAIN_OVERRIDES:-}
    else
        # a sweep: GPU_CHECK_VARIANTS="name:override override;name2:..." trains every variant at once on the one
        # GPU (each with its share of the loader workers), then the best by its validation normal error relative
        # to the zero-detail line is exported; every variant's metrics.csv comes back in sweep.tar.gz
        IFS=';' read -ra VARIANTS <<<"$GPU_CHECK_VARIANTS"
        WORKERS_EACH=$(( $(nproc) / ${#VARIANTS[@]} ))
        (( WORKERS_EACH < 1 )) && WORKERS_EACH=1
        PIDS=()
        for v in "${VARIANTS[@]}"; do
            name=${v%%:*}
            # shellcheck disable=SC2086
            timeout -k 10 "$TRAIN_CAP" $PY train.py "${TRAIN_ARGS[@]}" hydra.run.dir="$RUN_DIR/$name" \
                data.scans.num_workers=$WORKERS_EACH $DATA_OVERRIDES ${EXTRA_TRAIN_OVERRIDES:-} ${v#*:} \
                >"$TMP/gpu_check_train_$name.log" 2>&1 &
            PIDS+=($!)
            echo "=== [train:$name] started: ${v#*:}"
        done
        for i in "${!PIDS[@]}"; do
            wait "${PIDS[$i]}"
            echo "=== [train:${VARIANTS[$i]%%:*}] rc=$? at ${SECONDS}s"
        done
        for v in "${VARIANTS[@]}"; do
            echo "--- tail of train:${v%%:*}"
            tail -n 15 "$TMP/gpu_check_train_${v%%:*}.log"
        done
        (cd "$RUN_DIR" && tar czf "$OUT/sweep.tar.gz" --exclude='*.ckpt' . 2>/dev/null)
        BEST=$($PY - "$RUN_DIR" <<'EOF'
import csv, glob, os, sys
best = None
for m in sorted(glob.glob(os.path.join(sys.argv[1], "*", "**", "metrics.csv"), recursive=True)):
    name = os.path.relpath(m, sys.argv[1]).split(os.sep)[0]
    rows = [r for r in csv.DictReader(open(m)) if r.get("val/normal_deg")]
    if not rows:
        print(f"{name}: no validation rows", file=sys.stderr)
        continue
    for r in rows:
        print(f"{name} epoch {r['epoch']} step {r['step']} val/normal_deg {float(r['val/normal_deg']):.4f} "
              f"zero {float(r.get('val/normal_deg_zero') or 'nan'):.4f}", file=sys.stderr)
    score = min(float(r["val/normal_deg"]) - float(r.get("val/normal_deg_zero") or 0) for r in rows)
    print(f"{name}: best val/normal_deg - zero = {score:+.4f}", file=sys.stderr)
    if best is None or score < best[0]:
        best = (score, name)
print(best[1] if best else "")
EOF
)
        echo "=== sweep best: ${BEST:-none}"
        [[ -n "$BEST" ]] && RUN_DIR=$RUN_DIR/$BEST
    fi
    if [[ -n "$SMI_PID" ]]; then
        kill "$SMI_PID" 2>/dev/null
        echo "--- GPU during training (every 15 s): timestamp, util, memory, power"
        cat $TMP/gpu_check_smi.csv
    fi
    ls -l --time-style=+%T "$RUN_DIR/checkpoints" 2>/dev/null
    [[ -f "$RUN_DIR/.hydra/overrides.yaml" ]] && cat "$RUN_DIR/.hydra/overrides.yaml"
    cp "$RUN_DIR/.hydra/config.yaml" "$OUT/train_config.yaml" 2>/dev/null
    METRICS=$(find "$RUN_DIR" -name metrics.csv 2>/dev/null | sort | tail -1)
    [[ -n "$METRICS" ]] && cp "$METRICS" "$OUT/metrics.csv"
    CKPT=$(ls "$RUN_DIR"/checkpoints/epoch_*.ckpt 2>/dev/null | tail -1)
    [[ -z "$CKPT" ]] && CKPT=$RUN_DIR/checkpoints/latest.ckpt
    if [[ -f "$CKPT" ]]; then
        SAFE=$TMP/$CKPT_NAME.safetensors
        rm -f "$SAFE"
        if ! step export 60 $PY -m fds.models.checkpoint "$CKPT" "$SAFE"; then
            # a checkpoint holding omegaconf objects is refused by torch.load(weights_only=True): export its
            # weights alone (our own, trusted file), with the run's config
            mkdir -p $TMP/gpu_check_slim/checkpoints
            step export_slim 60 $PY - "$CKPT" $TMP/gpu_check_slim/checkpoints/slim.ckpt <<'EOF' &&
import sys
import torch

state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
torch.save({k: state[k] for k in ("state_dict", "epoch", "global_step")}, sys.argv[2])
EOF
                step export_retry 60 $PY -m fds.models.checkpoint $TMP/gpu_check_slim/checkpoints/slim.ckpt "$SAFE" \
                    --run-dir "$RUN_DIR"
        fi
        step check_export 60 $PY - "$SAFE" "$CKPT" "${METRICS:-}" "$RUN_DIR/checkpoints/latest.ckpt" <<'EOF'
import csv
import os
import sys

import torch
from omegaconf import OmegaConf

from fds.models.checkpoint import load_detail_module, read_detail_checkpoint

safe, ckpt, metrics, last = sys.argv[1:5]
for path in dict.fromkeys([ckpt, last]):
    if os.path.isfile(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
        print(f"{path}: epoch {state.get('epoch')}, global step {state.get('global_step')}")
timer = state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {})  # of latest.ckpt: the whole fit
if timer.get("train"):
    cfg = OmegaConf.load(os.path.join(os.path.dirname(os.path.dirname(last)), ".hydra", "config.yaml"))
    steps, secs, batch = state["global_step"], timer["train"], cfg.data.scans.batch_size
    print(f"fit time {timer}: {steps / secs:.2f} optimizer steps/s, ~{steps * batch / secs / 2:.0f} patches/s "
          f"(batch {batch}; Lightning counts each of the generator's and the discriminator's steps)")
_, meta = read_detail_checkpoint(safe)
print("safetensors metadata:", {k: v for k, v in meta.to_metadata().items() if k != "model_config"})
module = load_detail_module(safe)
print("reloaded:", type(module).__name__, sum(p.numel() for p in module.parameters()), "parameters")
if metrics:
    rows = list(csv.DictReader(open(metrics)))
    keys = ("epoch", "step", "val/normal_deg", "val/normal_deg_zero", "val/disp_mae_mm")
    val = [tuple(r.get(k) for k in keys) for r in rows if r.get("val/normal_deg")]
    print("validation rows", keys, *val, sep="\n  ")
EOF
        if [[ -f "$SAFE" ]]; then
            sha256sum "$SAFE"
            if (( $(stat -c %s "$SAFE") > 15000000 )); then
                split -b 15000000 -d -a 1 "$SAFE" "$OUT/$CKPT_NAME.safetensors.part"
            else
                cp "$SAFE" "$OUT/"
            fi
        fi
    else
        echo "=== no checkpoint under $RUN_DIR/checkpoints"
        SUMMARY+=("export: no checkpoint")
    fi
fi
wait_gen

echo "=== summary (budget ${BUDGET}s, used ${SECONDS}s)"
printf '  %s\n' "${SUMMARY[@]}"
ls -l "$OUT"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit 0
