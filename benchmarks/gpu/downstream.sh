#!/usr/bin/env bash
# GPU: full zero-shot evaluation (every task, no --limit) of SmolLM2-135M as loaded and of the final checkpoint of
# every continued-pretraining run (benchmarks/gpu/train_smollm2.sh; $RUNS, default /tmp/runs/smollm2, one folder a
# recipe), each in its trained numerics (its recipe's FP4 forward, bf16 autocast), then one comparison table.
# Checkpoints never leave the machine, so run it in the same session as the training, after it.
# Prepared here with benchmarks/gpu/fetch_eval_wheels.sh (.carry/evalwhl/part_* and .carry/eval). One part per
# call (a call carries <= 64 MiB), consecutive calls within 30 s, like smollm2_gguf.sh:
#   bash benchmarks/gpu/downstream.sh stash       (carry .carry/evalwhl/part_aa)      then part_ab
#   bash benchmarks/gpu/downstream.sh run         (carry .carry/evalwhl/part_ac .carry/eval)
# `run` needs the GGUF assembled at /tmp/smol (smollm2_gguf.sh). ONLY="base bf16 nvfp4" evaluates a subset (what
# one 10-minute call holds); results accumulate in /tmp/evals and every call copies all of them to $OUT.
set -euo pipefail
mkdir -p /tmp/evalwhl
cp .carry/evalwhl/part_* /tmp/evalwhl/ 2>/dev/null || true  # whichever part this call carried
case "${1:-run}" in
  stash) ls -la /tmp/evalwhl; exit 0 ;;
  run) ;;
  *) echo "usage: downstream.sh stash | run" >&2; exit 2 ;;
esac
if [ ! -f /tmp/evalwhl/installed ]; then
  cat /tmp/evalwhl/part_* | tar xf - -C /tmp/evalwhl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/evalwhl/wheels/*.whl
  touch /tmp/evalwhl/installed
fi
source benchmarks/gpu/env.sh
export AVERIS_SMOLLM2_GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf HF_DATASETS_CACHE=/tmp/hf_datasets
RUNS="${RUNS:-/tmp/runs/smollm2}" EVALS=/tmp/evals DATA="${DATA:-.carry/eval}"
mkdir -p "$EVALS"
evaluate() {  # NAME TARGET: skipped when done in an earlier call
  if [ -f "$EVALS/$1/eval.json" ]; then echo "$1: done earlier"; return; fi
  python3 -m averis eval "$2" --data "$DATA" --batch-size "${BATCH:-64}" --device cuda --out "$EVALS/$1"
}
for name in ${ONLY:-base bf16 nvfp4 nvidia metis averis averis_rht}; do
  if [ "$name" = base ]; then evaluate base smollm2-135m
  elif [ -d "$RUNS/$name/checkpoints" ]; then evaluate "$name" "$RUNS/$name"
  else echo "no run $RUNS/$name (train it first with train_smollm2.sh in this session)"; fi
done
python3 -m averis eval --compare "$EVALS"/*/eval.json --out "$EVALS/downstream.md"
mkdir -p "$OUT/downstream" && cp -r "$EVALS"/. "$OUT/downstream/"
