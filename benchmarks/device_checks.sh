#!/usr/bin/env bash
# The GPU items of BENCHMARKS.md in one run, for a lent device machine (15 minutes of
# device time per session: run this once, with a timeout that leaves room to rerun).
#
#   OUT=/path/to/results bash benchmarks/device_checks.sh            # on the GPU machine
#   DEVICE=cpu SMALL=1 OUT=/tmp/dc bash benchmarks/device_checks.sh   # smoke run anywhere
#
# On the lent machine: its image has torch, torch-geometric, lightning, typer, safetensors,
# scipy, scikit-learn and matplotlib, but not pydantic or mlxtend
# (/work/.library/device/KINDS.md): carry wheels of pydantic, pydantic-core,
# annotated-types, typing-inspection and mlxtend (device README, "Notes") and install them
# first. The package itself is taken from src/ (no install needed).
#
# Each step has its own time cap, so one slow step cannot eat the others' time; every
# step writes JSON (or a log) under $OUT and the script goes on if one fails.
#   1. INR zoo fitting on the device: networks/s of the default recipe (chunks of
#      --chunk-size networks; the 70,000-network zoo time is extrapolated from it);
#   2. autoencoder training throughput at paper-inr, batch 128, ours vs the reference
#      design, plus encoder-only inference (the 50,000-network epoch time follows);
#   3. canonicalization throughput (ae, sort, ae-lift) vs pairwise weight matching.
set -u
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DEVICE=${DEVICE:-cuda}
OUT=${OUT:?set OUT to a results directory}
mkdir -p "$OUT"
PY=${PYTHON:-python}
if [ "${SMALL:-0}" = 1 ]; then
  ZOO_IMAGES=8; ZOO_CHUNK=8; TP_ARGS="--preset quick --steps 1 --baseline-steps 1 --batch-size 4 --warmup-batch 2 --infer-repeats 1 --matmul-size 64"
  CANON_ARGS="--pairs 8 --repeats 1"; CAP=300
else
  ZOO_IMAGES=4096; ZOO_CHUNK=4096; TP_ARGS="--steps 20 --baseline-steps 3"
  CANON_ARGS="--pairs 512 --repeats 3"; CAP=240
fi

{ nvidia-smi 2>/dev/null || true; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } \
  > "$OUT/machine.txt" 2>&1

step() {  # name, command...
  local name=$1; shift
  local t0=$SECONDS
  timeout "$CAP" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}

step zoo_inr $PY -c "
import json, time
from symmerge.zoo.fit_inr import fit_inr_zoo
t = time.perf_counter()
fit_inr_zoo('mnist-embedded', out='$OUT/zoo.safetensors', limit=$ZOO_IMAGES, per_image=2,
            seed=0,
            chunk_size=$ZOO_CHUNK, workers=1, device='$DEVICE', fresh=True, progress=False)
s = time.perf_counter() - t
n = 2 * $ZOO_IMAGES
json.dump({'networks': n, 'seconds': s, 'networks_per_s': n / s,
           'est_70k_minutes': 70000 / (n / s) / 60}, open('$OUT/zoo_inr.json', 'w'))
"
# shellcheck disable=SC2086
step train_throughput $PY benchmarks/bench_train_throughput.py --device "$DEVICE" $TP_ARGS \
  --json "$OUT/train_throughput.json"
# shellcheck disable=SC2086
step canonicalize $PY benchmarks/bench_canonicalize.py --device "$DEVICE" $CANON_ARGS \
  --json "$OUT/canonicalize.json"
