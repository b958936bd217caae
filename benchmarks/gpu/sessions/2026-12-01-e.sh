# The fifth device session of 2026-12-01 (one nvidia-h200: the x2 kind was not lent).  It runs from a frozen copy of
# the tree (/tmp/frozen).  Each watch call's snapshot holds every training run finished so far (finished_runs.tgz):
# keep the calls back to back (the machine goes back after 30 s idle, and everything on it with it).
#   1. alone on the GPU (timings): bench_kernels check (228 cases) and shapes (each kernel per call at the step's
#      shapes against its floor; the token sums' second launch; the stats/tsum column tiles swept), then
#      gpu/diag/tree_order.py (the column statistics with the adjacent (today's), halving and tl.sum trees)
#   2. alone: bench_step, bench preset, eager (profiled) and graph: bf16, nvfp4, nvidia, averis, averis_rht.  Predicted against
#      1a11b29 (9.50 / 16.03 / 16.71 / 21.47 / 25.04 ms): averis about -1.1 ms from the token sums' narrower tiles,
#      and X quantized once for q/k/v and gate/up about -0.7 ms for nvfp4 / nvidia, -1.3 ms for averis
#   3. throughput, side by side: the GPU tests (capped) and issue 18's ablation at the bench preset: averis_act,
#      _grad, _adaptive seeds 2-4 first, then averis_attn_in, _o_proj, _mlp_in, _down_proj, _norm_in seeds 0-4,
#      until the deadline (ablation.sh with PREVIOUS: restartable, the first six runs put in place)
# Carry this file as .carry/session.sh, and .carry/tokens/scratch16k; calls as in benchmarks/gpu/session.sh.
SNAP="/tmp/gpu_tests.txt /tmp/steps /tmp/kernels /tmp/export"
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
  timeout "$(cap 240)" python3 benchmarks/bench_kernels.py --sections check,shapes --out /tmp/kernels \
    > /tmp/bg/kernels.log 2>&1; echo "kernels rc $?"
  timeout "$(cap 90)" python3 benchmarks/gpu/diag/tree_order.py > /tmp/bg/tree_order.log 2>&1
  echo "tree order rc $?"
  echo "phase 2: bench step, bench preset ($(left) s left)"
  timeout "$(cap 300)" python3 benchmarks/bench_step.py --preset bench \
    --recipes bf16,nvfp4,nvidia,averis,averis_rht --modes eager,graph --profile --out /tmp/steps \
    > /tmp/bg/steps_bench.log 2>&1; echo "steps bench rc $?"
  echo "phase 3: GPU tests beside the ablation ($(left) s left)"
  (timeout "$(cap 420)" python3 -m pytest -q -p no:cacheprovider -p no:logging --tb=short -rfE \
      tests/test_shared_input.py tests/test_nn_gpu.py tests/test_kernels.py tests/test_qgemm_fidelity.py \
      tests/test_nn_compile.py tests/test_backend.py tests/test_nn.py tests/test_adaptive_split.py \
      tests/test_recipe_ablations.py tests/test_split_diag.py tests/test_nn_backends.py \
      "tests/test_train.py::test_a_released_graph_is_captured_again_with_the_same_numbers" > /tmp/gpu_tests.txt 2>&1
   echo "tests rc $? ($(left) s left)"; tail -3 /tmp/gpu_tests.txt) &
  ablate averis_act,averis_grad,averis_adaptive 2,3,4
  ablate averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in 0,1,2,3,4
  wait
}
source benchmarks/gpu/session.sh "$@"
