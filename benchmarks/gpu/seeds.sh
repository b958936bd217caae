# GPU: from-scratch seeds of the bench preset (one epoch, configs/scratch_bench.yaml), graphed and compiled, on one
# GPU, stopping by an absolute deadline (epoch seconds) so a chain of device calls can collect the finished runs.
#   GPU=1 SEEDS=1,3,5 DEADLINE=$(( $(date +%s) + 900 )) bash benchmarks/gpu/seeds.sh   # carry .carry/tokens/scratch16k
# Finished runs (summary.json, metrics, logs; no checkpoints) land in /tmp/export/seeds_$GPU/runs.tar.gz.
# PREVIOUS=benchmarks/results/scratch_seeds/runs.tar.gz: its finished runs are put in place first, so they are
# skipped and the report covers old and new seeds (only valid while the recipes' numerics are unchanged).
source benchmarks/gpu/env.sh
GPU=${GPU:-0}
if [ -n "${PREVIOUS:-}" ]; then
  mkdir -p /tmp/previous "/tmp/runs/seeds_$GPU" && tar xzf "$PREVIOUS" -C /tmp/previous
  for summary in /tmp/previous/*/*/*/summary.json; do
    run=$(dirname "$summary"); seed=$(basename "$run"); recipe=$(basename "$(dirname "$run")")
    if grep -q '"status": "done"' "$summary"; then mkdir -p "/tmp/runs/seeds_$GPU/$recipe" && cp -r "$run" "/tmp/runs/seeds_$GPU/$recipe/$seed"; fi
  done
fi
budget=$(( ${DEADLINE:?DEADLINE: epoch seconds by which the runs must stop} - $(date +%s) ))
echo "GPU $GPU: seeds ${SEEDS:?}, ${budget} s"
CUDA_VISIBLE_DEVICES=$GPU python3 benchmarks/train_scratch.py run --tokens .carry/tokens/scratch16k \
  --out "/tmp/runs/seeds_$GPU" --recipes "${RECIPES:-bf16,nvfp4,nvidia,nvidia_notail,averis,averis_tail,averis_rht}" \
  --seeds "$SEEDS" --jobs "${JOBS:-4}" --time-budget "$budget" --export "/tmp/export/seeds_$GPU" \
  --set train.compile=true train.cuda_graph=true train.progress=false
