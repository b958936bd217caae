# GPU: which part of Averis buys the gain (issue 18). Five seeds of the from-scratch benchmark (bench preset,
# one epoch) under bf16, nvfp4, averis and its ablations: the split on activations only / gradients only, at one
# site only, at the RMSNorm outputs only (averis_norm_in), and the adaptive split (docs/recipes.md).
# Carries .carry/tokens/scratch16k (`train_scratch.py prep`). Restartable: run again to continue.
# Compiled and CUDA-graphed (the adaptive split's decisions and counters stay on the device).
#   BENCH=smollm2 runs the same recipes as continued pretraining of SmolLM2-135M instead (300 steps, configs/
#   smollm2_cpt.yaml; after benchmarks/gpu/smollm2_bundle.sh's bundle is unpacked), where the mean is strong;
#   CUDA-graphed, torch.compile only with COMPILE=true (as the one-epoch SmolLM2 runs of ec21a63 trained).
# Launch: bash benchmarks/gpu/ablation.sh (env: RECIPES, SEEDS, JOBS, BUDGET, BENCH, PREVIOUS); first runs:
# benchmarks/results/ablation/ (bf16, nvfp4, averis come from benchmarks/results/scratch_seeds: same config and seeds).
# PREVIOUS=benchmarks/results/ablation/runs.tar.gz: its finished runs are put in place first (skipped, and in the report);
# it holds ablation/<recipe>/seedN (ablation_smollm2/<recipe>/seedN with BENCH=smollm2).  $OUT/ablation*.tgz where OUT
# is set (a detached plan sets OUT= and snapshots /tmp/export).
source benchmarks/gpu/env.sh
if [ -n "${PREVIOUS:-}" ]; then mkdir -p /tmp/runs && tar xzf "$PREVIOUS" -C /tmp/runs; fi  # holds ablation/<recipe>/seedN
RECIPES="${RECIPES:-bf16,nvfp4,averis,averis_act,averis_grad,averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in,averis_adaptive}"
SEEDS="${SEEDS:-0,1,2,3,4}"
if [ "${BENCH:-scratch}" = smollm2 ]; then
  python3 benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2 --out /tmp/runs/ablation_smollm2 \
    --recipes "$RECIPES" --seeds "$SEEDS" --jobs "${JOBS:-3}" --time-budget "${BUDGET:-520}" \
    --export /tmp/export/ablation_smollm2 --set train.compile="${COMPILE:-false}" train.cuda_graph=true "$@"
  export_name=ablation_smollm2
else
  python3 benchmarks/train_scratch.py run --tokens .carry/tokens/scratch16k --out /tmp/runs/ablation \
    --recipes "$RECIPES" --seeds "$SEEDS" --jobs "${JOBS:-6}" --time-budget "${BUDGET:-520}" \
    --export /tmp/export/ablation --set train.compile=true train.cuda_graph=true "$@"
  export_name=ablation
fi
if [ -n "${OUT:-}" ]; then tar czf "$OUT/$export_name.tgz" -C /tmp/export "$export_name"; fi
