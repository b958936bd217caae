# GPU: from-scratch seeds of the bench preset (one epoch, configs/scratch_bench.yaml), graphed and compiled, on one
# GPU, stopping by an absolute deadline (epoch seconds) so a chain of device calls can collect the finished runs.
#   GPU=1 SEEDS=1,3,5 DEADLINE=$(( $(date +%s) + 900 )) bash benchmarks/gpu/seeds.sh   # carry .carry/tokens/scratch16k
# Finished runs (summary.json, metrics, logs; no checkpoints) land in /tmp/export/seeds_$GPU/runs.tar.gz.
source benchmarks/gpu/env.sh
GPU=${GPU:-0}
budget=$(( ${DEADLINE:?DEADLINE: epoch seconds by which the runs must stop} - $(date +%s) ))
echo "GPU $GPU: seeds ${SEEDS:?}, ${budget} s"
CUDA_VISIBLE_DEVICES=$GPU python3 benchmarks/train_scratch.py run --tokens .carry/tokens/scratch16k \
  --out "/tmp/runs/seeds_$GPU" --recipes "${RECIPES:-bf16,nvfp4,nvidia,nvidia_notail,averis,averis_tail,averis_rht}" \
  --seeds "$SEEDS" --jobs "${JOBS:-4}" --time-budget "$budget" --export "/tmp/export/seeds_$GPU" \
  --set train.compile=true train.cuda_graph=true train.progress=false
