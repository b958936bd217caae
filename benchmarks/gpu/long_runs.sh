# GPU, issue 17 "longer training": one seed of bf16, nvfp4, nvidia and averis trained longer than the one-epoch
# benchmark, with the mean-bias statistics every N steps (--analyze-every: the mean ratio R and the share of the
# NVFP4 error the mean explains, activations and gradients), graphed and compiled, 4 runs side by side on one GPU.
#   GPU=0 PART=bench DEADLINE=<epoch s> bash benchmarks/gpu/long_runs.sh   # the bench model, 3 epochs (2,775 steps)
#   GPU=1 PART=qwen  DEADLINE=<epoch s> bash benchmarks/gpu/long_runs.sh   # the qwen3-0.6b shape (16k vocabulary), 600 steps
# Carry .carry/tokens/scratch16k.  Estimated (not measured): ~10 min per part with 4 runs sharing an H200; the runs stop
# at DEADLINE and `averis report` compares only runs that reached the same step, so set STEPS lower if the budget is
# short.  Finished runs (metrics, mean_bias.jsonl, summaries; no checkpoints) in /tmp/export/long_$PART/runs.tar.gz.
source benchmarks/gpu/env.sh
PART=${PART:-bench}
case "$PART" in
  bench) steps=${STEPS:-2775}; every=${EVERY:-250}; model=() ;;
  qwen) steps=${STEPS:-600}; every=${EVERY:-100}; model=(model.preset=qwen3-0.6b) ;;
  *) echo "long_runs.sh: PART must be bench or qwen, got $PART" >&2; exit 2 ;;
esac
budget=$(( ${DEADLINE:?DEADLINE: epoch seconds by which the runs must stop} - $(date +%s) ))
echo "GPU ${GPU:-0}: $PART, $steps steps, statistics every $every, ${budget} s"
CUDA_VISIBLE_DEVICES=${GPU:-0} python3 benchmarks/train_scratch.py run --tokens .carry/tokens/scratch16k \
  --out "/tmp/runs/long_$PART" --recipes "${RECIPES:-bf16,nvfp4,nvidia,averis}" --seeds 0 --jobs 4 \
  --time-budget "$budget" --export "/tmp/export/long_$PART" --analyze-every "$every" --analyze-grads \
  --set train.compile=true train.cuda_graph=true train.progress=false train.max_steps="$steps" \
  train.eval_every="$every" "${model[@]}"
