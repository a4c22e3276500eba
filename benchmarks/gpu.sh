#!/usr/bin/env bash
# One prepared GPU check for issue #5, sized to finish in about 5 minutes on one H100/H200 (plus up to
# 5 for part 4; ONLY=compile runs part 4 alone, ONLY=base parts 1-3):
#   1. extraction frames/s with ViT-B-32 (random weights, fp16 autocast) against its stages and the
#      naive path (target: pipeline >= 0.8 x the slower stage);
#   2. MSR-VTT-sized training (9,000 videos, 180,000 captions, fp16 split of ~6 GB): seconds per
#      full epoch (1,406 steps measured, not extrapolated) for meanp, seqtransf and camoe, input
#      overhead and peak memory;
#   3. evaluation of 10k and 100k queries x galleries for raw, dsl and qbnorm;
#   4. compiled (--compile reduce-overhead: torch.compile + CUDA graphs) against eager training
#      steps per head at batch 128: s/step, speed-up, compile seconds and kernel launches per step
#      (torch.profiler; on a CPU the kernel columns say "not measured").
#
# Needs no network. Torch with CUDA must be installed on the machine; the other packages
# (av, open_clip_torch and its dependencies, torchvision matching the installed torch, h5py,
# rich, pillow) are installed from wheels in .whl/ at the repository root when they are missing
# (see benchmarks/README.md for how to prepare them). Results go to $OUT (or benchmarks/out-gpu).
#
# Usage, from anywhere:  bash benchmarks/gpu.sh
# Environment: PYTHON (default python3), OUT (output folder), QUICK=1 (a ~1 minute version),
# DEVICE (default cuda; DEVICE=cpu SMOKE=1 only checks that the script itself runs, in ~1 minute).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-benchmarks/out-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

echo "== machine"
date -u +%Y-%m-%dT%H:%M:%SZ
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nproc
DEVICE=$DEVICE "$PY" - <<'EOF'
import os
import sys

import torch

print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
if os.environ["DEVICE"].startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device: this script is for a GPU machine")
    print("gpu", torch.cuda.get_device_name(0))
EOF

echo "== dependencies"
missing=$("$PY" - <<'EOF'
import importlib.util

needed = {
    "av": "av",
    "open_clip": "open_clip_torch",
    "torchvision": "torchvision",
    "h5py": "h5py",
    "rich": "rich",
    "PIL": "pillow",
    "numpy": "numpy",
}
print(" ".join(pkg for mod, pkg in needed.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [ -n "$missing" ]; then
    if [ -d .whl ]; then
        echo "installing from .whl/: $missing"
        "$PY" -m pip install --quiet --no-index --find-links .whl $missing
    else
        echo "missing packages: $missing, and no .whl/ folder to install them from (see benchmarks/README.md)" >&2
        exit 2
    fi
fi
"$PY" -c "import av, h5py, open_clip, rich, torchvision; import vtrbench.extract.pipeline, vtrbench.train, vtrbench.evaluate; print('imports ok')"

if [ "${SMOKE:-0}" = "1" ]; then
    EXTRACT_ARGS=(--models vtrbench-tiny --videos 2 --width 64 --height 48 --seconds 3 --no-naive)
    TRAIN_ARGS=(--scale 0.002 --dim 32 --steps 2)
    EVAL_ARGS=(--sizes 300 --bank 50)
    COMPILE_ARGS=(--heads meanp --batch 8 --dim 32 --steps 2 --rounds 2 --warmup 1)
elif [ "${QUICK:-0}" = "1" ]; then
    EXTRACT_ARGS=(--models ViT-B-32 --videos 16 --repeat 2)
    TRAIN_ARGS=(--scale 0.1 --steps 200)
    EVAL_ARGS=(--sizes 1000,10000)
    COMPILE_ARGS=(--heads meanp,camoe --steps 5 --rounds 3)
else
    EXTRACT_ARGS=(--models ViT-B-32 --videos 32 --repeat 8)
    TRAIN_ARGS=(--scale 1 --steps 0)
    EVAL_ARGS=(--sizes 10000,100000)
    COMPILE_ARGS=(--heads meanp,seqtransf,camoe,xpool)
fi

# A failing or timed-out part is reported and the next one still runs.
status=0
run() {
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    if ! timeout "$limit" "$PY" "$@" --json "$OUT/$name.json" 2>&1 | tee "$OUT/$name.txt"; then
        echo "!! $name failed or ran past ${limit} s" | tee -a "$OUT/$name.txt"
        status=1
    fi
}
ONLY=${ONLY:-all}
if [ "$ONLY" != "compile" ]; then
    run extract 240 benchmarks/extract.py --device "$DEVICE" "${EXTRACT_ARGS[@]}" \
        --video-dir "${TMPDIR:-/tmp}/vtrbench-bench-videos"
    run train 300 benchmarks/train.py --device "$DEVICE" --repeats 1 "${TRAIN_ARGS[@]}"
    run eval 180 benchmarks/eval.py --device "$DEVICE" "${EVAL_ARGS[@]}"
fi
[ "$ONLY" = "base" ] ||
    run compile 300 benchmarks/compile_step.py --device "$DEVICE" "${COMPILE_ARGS[@]}"
# Multi-GPU row (issue #11): only when the machine has several GPUs; one torchrun rank per GPU.
NGPU=$(nvidia-smi --list-gpus 2>/dev/null | wc -l || echo 0)
if [ "$DEVICE" != "cpu" ] && [ "${NGPU:-0}" -ge 2 ]; then
    echo "== shard_scaling ($NGPU GPUs)"
    timeout 300 "$PY" benchmarks/shard_scaling.py --model ViT-B-32 --device cuda --videos 96 \
        --nproc "$NGPU" 2>&1 | tee "$OUT/shard_scaling.txt" || status=1
fi
echo "== done: $OUT"
exit $status
