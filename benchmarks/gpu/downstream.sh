#!/usr/bin/env bash
# GPU: full zero-shot evaluation (every task, no --limit) of SmolLM2-135M as loaded and of the final checkpoint of
# every continued-pretraining run (benchmarks/gpu/train_smollm2.sh; $RUNS, default /tmp/runs/smollm2, one folder a
# recipe, or its seed0 with several seeds), each in its trained numerics (its recipe's FP4 forward, bf16 autocast),
# then one comparison table.
# Checkpoints never leave the machine, so run it in the same session as the training, after it.
# Needs benchmarks/gpu/smollm2_bundle.sh's bundle unpacked there (bundle.sh: wheels, GGUF, evaluation files).
# ONLY="base bf16 nvfp4 averis/seed2" evaluates a subset (a recipe's run, its seed0 with several seeds, or RECIPE/seedN,
# written to /tmp/evals/RECIPE_seedN; ONLY= : none, the table only); EVAL_FLAGS replaces "--batch-size 64
# --device cuda".  Results accumulate in /tmp/evals (what is there is not evaluated again), and every call rebuilds
# the table and copies all of them to $OUT where it is set (a detached plan sets OUT= : its snapshots bring them back).
set -euo pipefail
source benchmarks/gpu/env.sh
RUNS="${RUNS:-/tmp/runs/smollm2}" EVALS=/tmp/evals EVAL_FLAGS=${EVAL_FLAGS:---batch-size 64 --device cuda}
mkdir -p "$EVALS"
evaluate() {  # NAME TARGET: skipped when done in an earlier call
  if [ -f "$EVALS/$1/eval.json" ]; then echo "$1: done earlier"; return; fi
  python3 -m averis eval "$2" $EVAL_FLAGS --out "$EVALS/$1"
}
for name in ${ONLY-base bf16 nvfp4 nvidia metis averis averis_rht}; do
  if [ "$name" = base ]; then evaluate base smollm2-135m
  elif [ -d "$RUNS/$name/checkpoints" ]; then evaluate "${name/\//_}" "$RUNS/$name"  # a run, or RECIPE/seedN
  elif [ -d "$RUNS/$name/seed0/checkpoints" ]; then evaluate "$name" "$RUNS/$name/seed0"  # a multi-seed comparison
  else echo "no run $RUNS/$name (train it first with train_smollm2.sh in this session)"; fi
done
# the table; paired by document against the BF16-trained run ($EVALS/$PAIR, default bf16) where it has per-document scores
pair=()
python3 -c "import json, sys; sys.exit(not json.load(open(sys.argv[1])).get('per_doc'))" "$EVALS/${PAIR:-bf16}/eval.json" \
  2>/dev/null && pair=(--paired-against "$EVALS/${PAIR:-bf16}")
python3 -m averis eval --compare "$EVALS"/*/eval.json "${pair[@]}" --out "$EVALS/downstream.md"
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/downstream" && cp -r "$EVALS"/. "$OUT/downstream/"; fi
