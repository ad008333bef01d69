#!/usr/bin/env bash
# One-shot GPU check: LISA-7B-size inference and training benchmarks (random weights).
#
# Runs from the repo root on a GPU machine: with the project installed, or (on a
# machine without network) with the wheels in .whl/ carried
# (segment-anything, deepspeed built without ops, its pydantic/hjson deps, and the
# transformers/peft versions of the project's venv). Writes its logs and tables to
# $OUT (or ./gpu_check_out): env.txt, inference.log/.md, profile.log/.md, compiled.log/.md
# (the image_views/compile switch rows with compile on), train.log/.md, summary.txt.
#
#   bash benchmarks/gpu_check.sh            # 3-8 minutes on an H100; bounded by the timeouts below
#
# Each benchmark has its own timeout; one that fails does not stop the next.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
INFER_TIMEOUT=${INFER_TIMEOUT:-210}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-240}
PROFILE_TIMEOUT=${PROFILE_TIMEOUT:-150}
COMPILE_TIMEOUT=${COMPILE_TIMEOUT:-300}  # compile=on rows: the first call compiles the 7B prefix
REPEATS=${REPEATS:-10}   # inference repeats after 2 warm-ups
STEPS=${STEPS:-10}       # timed training steps after 2 warm-ups
T0=$(date +%s)

# On a machine without network, wheels carried in .whl/ are installed first; elsewhere
# the current python3 environment (e.g. after `pip install -e .`) is used as it is.
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing .whl/*.whl failed" | tee "$OUT/summary.txt"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# DeepSpeed: no op builds (the recipe uses torch's AdamW); bench_train fills in the rank variables.
export DS_BUILD_OPS=0 DS_SKIP_CUDA_CHECK=1 DS_ACCELERATOR=cuda

{
  echo "== $(date -u +%FT%TZ) $(uname -srm)"
  nvidia-smi || echo "nvidia-smi failed"
  python3 - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("torch", "transformers", "deepspeed", "peft", "segment_anything", "pydantic", "huggingface_hub",
             "tokenizers", "safetensors", "sentencepiece", "accelerate", "numpy", "cv2", "typing_extensions"):
    try:
        m = importlib.import_module(name)
        print(f"{name:18s} {getattr(m, '__version__', '?'):14s} {m.__file__}")
    except Exception as exc:  # report and go on: the benchmarks will show the consequence
        print(f"{name:18s} IMPORT FAILED: {exc!r}")
import torch
print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
} 2>&1 | tee "$OUT/env.txt"

bench() {  # name limit command...
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "=== $name (timeout ${limit}s): $*"
  timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  rc=$?
  echo "=== $name: rc=$rc after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
}

bench inference "$INFER_TIMEOUT" python3 benchmarks/bench_inference.py --presets lisa-7b,tiny --repeats "$REPEATS" \
  --no-compile --out "$OUT/inference.md"
bench profile "$PROFILE_TIMEOUT" python3 benchmarks/profile_inference.py --repeats "$REPEATS" --out "$OUT/profile.md"
bench compiled "$COMPILE_TIMEOUT" python3 benchmarks/bench_inference.py --presets lisa-7b --repeats "$REPEATS" \
  --out "$OUT/compiled.md"
bench train "$TRAIN_TIMEOUT" python3 benchmarks/bench_train.py --device cuda --steps "$STEPS" --out "$OUT/train.md"

echo "=== gpu_check: $(( $(date +%s) - T0 )) s in all" | tee -a "$OUT/summary.txt"
for f in "$OUT"/inference.md "$OUT"/profile.md "$OUT"/compiled.md "$OUT"/train.md; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
exit 0
