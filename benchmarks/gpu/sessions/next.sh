# The plan for the next device session (one nvidia-h200, 30 device minutes), written at the end of the third
# session of 2026-12-01; rename it to its date when it runs.  In order, each phase capped:
#   1. the GPU tests (new kernels since e72a8ce: the by-product token sums, mean_terms reading any dtype; the
#      column-statistics chunk-size test's NaN fix to confirm)                                   ~4 min
#   2. benchmarks/token_sums.py: the sums vs the GEMV path they replaced, bits and time           ~1 min
#   3. the bench preset's graphed step, bf16, nvfp4, nvidia, averis, averis_rht (issue 15: predicted averis
#      -1.4 ms from the token sums and a few tenths from 6 fewer small kernels per layer call)  ~4 min
#   4. issue 18's ablation at the bench preset, restartable, until the deadline (34 runs left, ~23 min at
#      ~40 s of GPU a run; the export holds the finished ones for the next session's PREVIOUS)
# Carry this file as .carry/session.sh, and .carry/tokens/scratch16k; calls as in benchmarks/gpu/session.sh.
SNAP="/tmp/gpu_tests.txt /tmp/steps /tmp/export"
plan() {
  echo "phase 1: GPU tests ($(left) s left)"
  timeout "$(cap 300)" bash benchmarks/gpu/qgemm_path.sh tests > /tmp/bg/tests.log 2>&1; echo "tests rc $?"
  pkill -f pytest
  echo "phase 2: token sums ($(left) s left)"
  timeout "$(cap 90)" python3 benchmarks/token_sums.py > /tmp/bg/token_sums.log 2>&1; echo "token_sums rc $?"
  echo "phase 3: bench step ($(left) s left)"
  timeout "$(cap 300)" python3 benchmarks/bench_step.py --preset bench --recipes bf16,nvfp4,nvidia,averis,averis_rht \
    --modes graph --out /tmp/steps > /tmp/bg/steps.log 2>&1; echo "steps rc $?"
  echo "phase 4: ablation until the deadline ($(left) s left)"
  RECIPES=averis_act,averis_grad,averis_adaptive,averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in \
    PREVIOUS=benchmarks/results/ablation/runs.tar.gz BUDGET=$(( $(left) - 30 )) bash benchmarks/gpu/ablation.sh \
    > /tmp/bg/ablation.log 2>&1; echo "ablation rc $?"
}
source benchmarks/gpu/session.sh "$@"
