# The sixth device session of 2026-12-01 (one nvidia-h200).  It runs from a frozen copy of the tree (/tmp/frozen).
# Each watch call's snapshot holds every training run finished so far: keep the calls back to back.
#   1. alone on the GPU: bench_kernels check (every kernel bit for bit against the reference, on the GPU) and shapes,
#      the first measurement of the column statistics and token sums read row by row (a thread per column, the
#      pairwise tree in registers).  If the check is not whole, the plan puts back 3d4e190's kernels (carried in
#      .carry/fallback) and says so, so that the phases after it measure code that is right.
#      Predicted: column statistics near the tensor amax's time (8192 x 3072: 54 -> ~20 us; >= 60% of copy
#      bandwidth at the wide shapes), the token sums' second launch a few us less.
#   2. alone: bench_step, bench preset, eager (profiled) and graph, the six recipes of issue 15's must-show.
#      Predicted against 3d4e190 / 1a11b29: nvfp4 15.4, nvidia 15.9 unchanged; averis about 21.5 - 1.3 (X once
#      for q/k/v, gate/up) - 0.6 (statistics) - 0.5 (token sums) ~ 19 ms; averis_rht ~ 23 ms.
#   3. throughput, side by side: the GPU tests (capped) and issue 18's ablation (averis_act, _grad, _adaptive
#      seeds 2-4, then the per-site recipes seeds 0-4) until the deadline.
# Carry this file as .carry/session.sh, .carry/tokens/scratch16k and .carry/fallback (3d4e190's
# src/averis/kernels/{triton_kernels,dispatch}.py); calls as in benchmarks/gpu/session.sh.
SNAP="/tmp/gpu_tests.txt /tmp/steps /tmp/kernels"
ablate() {  # ablation.sh for RECIPES / SEEDS until the deadline (finished runs skipped)
  RECIPES=$1 SEEDS=$2 PREVIOUS=benchmarks/results/ablation/runs.tar.gz BUDGET=$(( $(left) - 40 )) JOBS=6 \
    bash benchmarks/gpu/ablation.sh --set train.progress=false >> /tmp/bg/ablation.log 2>&1
  echo "ablation $1 seeds $2 rc $? ($(left) s left)"
}
plan() {
  rm -rf /tmp/frozen && mkdir -p /tmp/frozen && cp -r src benchmarks configs tests pyproject.toml .carry /tmp/frozen/
  cd /tmp/frozen && source benchmarks/gpu/env.sh; set +e
  echo "$(nvidia-smi -L | wc -l) GPU(s), $(left) s left"
  echo "phase 1: kernels ($(left) s left)"
  timeout "$(cap 220)" python3 benchmarks/bench_kernels.py --sections check,shapes --out /tmp/kernels \
    > /tmp/bg/kernels.log 2>&1; echo "kernels rc $?"
  if ! grep -Eq "bit-exact: ([0-9]+)/\1 cases equal" /tmp/bg/kernels.log; then
    echo "the kernel check is not whole: 3d4e190's kernels put back for the rest of the plan"
    cp .carry/fallback/triton_kernels.py .carry/fallback/dispatch.py src/averis/kernels/
  fi
  echo "phase 2: bench step, bench preset ($(left) s left)"
  timeout "$(cap 620)" python3 benchmarks/bench_step.py --preset bench \
    --recipes averis,averis_rht,nvfp4,bf16,nvidia,metis --modes eager,graph --profile --out /tmp/steps \
    > /tmp/bg/steps_bench.log 2>&1; echo "steps bench rc $?"
  echo "phase 3: GPU tests beside the ablation ($(left) s left)"
  (timeout "$(cap 300)" python3 -m pytest -q -p no:cacheprovider -p no:logging --tb=short -rfE \
      tests/test_kernels.py tests/test_shared_input.py tests/test_nn_gpu.py tests/test_qgemm_fidelity.py \
      tests/test_nn_compile.py tests/test_backend.py tests/test_nn.py tests/test_adaptive_split.py \
      tests/test_recipe_ablations.py tests/test_split_diag.py tests/test_nn_backends.py > /tmp/gpu_tests.txt 2>&1
   echo "tests rc $? ($(left) s left)"; tail -3 /tmp/gpu_tests.txt) &
  ablate averis_act,averis_grad,averis_adaptive 2,3,4
  ablate averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in 0,1,2,3,4
  wait
}
source benchmarks/gpu/session.sh "$@"
