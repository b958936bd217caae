# GPU: continued pretraining of SmolLM2-135M under every recipe, one epoch of the corpus by default (943 steps of
# 16,384 tokens; STEPS= for fewer), after benchmarks/gpu/smollm2_bundle.sh's bundle is unpacked (bundle.sh).
# Restartable in the same session: finished runs are skipped.  env: RUNS, JOBS, BUDGET, STEPS, COMPILE, EXPORT,
# PREVIOUS; more flags pass on; $OUT/smollm2.tgz where OUT is set (a detached plan sets OUT= and snapshots $EXPORT).
# CUDA-graphed (a Hugging Face model's "auto" is eager, host-bound); torch.compile only with COMPILE=true (it compiled
# and trained at ec21a63, benchmarks/results/smollm2_epoch/).
# PREVIOUS=benchmarks/results/smollm2_epoch/runs.tar.gz: its finished runs (smollm2/<recipe>/seedN) are put in place
# beside RUNS first (skipped, and in the report), as ablation.sh does with its archive.
source benchmarks/gpu/env.sh
RUNS="${RUNS:-/tmp/runs/smollm2}"
if [ -n "${PREVIOUS:-}" ]; then mkdir -p "$(dirname "$RUNS")" && tar xzf "$PREVIOUS" -C "$(dirname "$RUNS")"; fi
python3 benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2 --out "$RUNS" \
  --jobs "${JOBS:-3}" --time-budget "${BUDGET:-500}" --export "${EXPORT:=/tmp/export/smollm2}" \
  --set train.max_steps="${STEPS:-943}" train.cuda_graph=true train.compile="${COMPILE:-false}" "$@"
if [ -n "${OUT:-}" ]; then tar czf "$OUT/smollm2.tgz" -C "$(dirname "$EXPORT")" "$(basename "$EXPORT")"; fi
