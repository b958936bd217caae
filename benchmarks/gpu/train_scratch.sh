# GPU: the from-scratch benchmark (bench preset, 1 epoch of the corpus, 3 seeds x 6 recipes).
# Carries .carry/tokens/scratch16k (`train_scratch.py prep`). Restartable: run again to continue.
source benchmarks/gpu/env.sh
python3 benchmarks/train_scratch.py run --tokens .carry/tokens/scratch16k --out /tmp/runs/scratch \
  --jobs "${JOBS:-6}" --time-budget "${BUDGET:-520}" --export /tmp/export/scratch "$@"
tar czf "$OUT/scratch.tgz" -C /tmp/export scratch
