#!/usr/bin/env bash
# The GPU items of BENCHMARKS.md ("GPU") in one run on a lent machine: one JSON and one
# log under $OUT (device_checks.json, device_checks.log). At most 8 minutes on one H200
# from a fresh machine: installing takes about 10 s, the steps get the rest of 475 s, each
# under its own cap, each in its own process (one failing or hanging step does not stop
# the others; benchmarks/device_checks.py says what each records).
#
#   step          cap (s)  expected on an H200 (s)  measures
#   install            -   10   carried wheels (.whl/) + symmerge, no index, no deps
#   tests             90   45   non-slow tests parametrized over cuda (pytest -k cuda)
#   zoo_inr          150   80   70,000 INRs (5,000 digits x 14); target < 120 s at 28 dB median
#   train            110   50   paper-inr training, ours vs the reference design; >= 1,000
#                               networks/s and >= 5x
#   encoder           60   20   encoder inference at batch 256 / 1,024 / 4,096; >= 30,000/s
#   canonicalize      60   30   sort, ae, ae-lift, pairwise wm on 512 pairs
#
# On the machine (the `run` tool, carry [".whl"], timeout_s 540; BENCHMARKS.md "GPU"):
#   bash benchmarks/device_checks.sh                 # writes under $OUT
# Anywhere, to test the logic at tiny sizes on the CPU (under 3 minutes, nothing installed):
#   bash benchmarks/device_checks.sh --dry-run --out runs/device-checks-dry
#
# The machine's image (Python 3.12, torch 2.11) lacks pydantic, mlxtend and umap-learn
# and their own missing needs: benchmarks/fetch_device_wheels.sh puts them in .whl/ here.
# Other arguments go to benchmarks/device_checks.py (--steps, --budget, --device, --out).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}  # where the carried wheels are installed
DRY=0
for arg in "$@"; do [ "$arg" = --dry-run ] && DRY=1; done
OUT_ARGS=()
if [ -n "${OUT:-}" ]; then OUT_ARGS=(--out "$OUT"); fi  # a later --out wins

if [ "$DRY" = 1 ]; then
  NOTE="dry run: nothing installed (on the machine: pip install --no-index --no-deps --target /tmp/site .whl/*.whl, then pip install --no-index --no-deps --no-build-isolation -e .)"
else
  shopt -s nullglob
  wheels=(.whl/*.whl)
  if [ ${#wheels[@]} = 0 ]; then
    echo "error: no wheels in .whl/: run benchmarks/fetch_device_wheels.sh here and carry .whl" >&2
    exit 2
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${wheels[@]}" || { echo "error: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
  install_log=$(mktemp)
  if $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . >"$install_log" 2>&1; then
    NOTE="wheels in $SITE (${#wheels[@]}); symmerge installed editable (--no-index --no-deps)"
  else  # no setuptools/wheel in the image: import from src/ (no console script then)
    export PYTHONPATH=$PWD/src:$PYTHONPATH
    NOTE="wheels in $SITE (${#wheels[@]}); editable install failed ($(grep . "$install_log" | tail -n 1)), symmerge imported from src/"
  fi
fi
NOTE="$NOTE; ${SECONDS} s"
echo "$NOTE"
exec $PY benchmarks/device_checks.py "${OUT_ARGS[@]}" --budget $((475 - SECONDS)) \
  --install-note "$NOTE" "$@"
