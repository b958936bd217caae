# GPU: continued pretraining of SmolLM2-135M under every recipe (after smollm2_gguf.sh assemble).
# Carries .whl (gguf wheel) and .carry/tokens/smollm2_small (6.55M tokens: 100 evenly spaced chunks of
# 65,536 tokens of the corpus in SmolLM2's tokenizer, made from `train_smollm2.py prep`).
# RUNS=.carry/smollm2_runs (carried) continues from runs finished in an earlier call: done ones are skipped.
source benchmarks/gpu/env.sh
export AVERIS_SMOLLM2_GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
python3 benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2_small --out "${RUNS:-/tmp/runs/smollm2}" \
  --jobs "${JOBS:-3}" --time-budget "${BUDGET:-500}" --export /tmp/export/smollm2 "$@"
tar czf "$OUT/smollm2.tgz" -C /tmp/export smollm2
