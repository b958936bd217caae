# The plan for the next device session (nvidia-h200-x2 if lent, else one GPU with everything in turn on GPU 0),
# written at the end of the fourth session of 2026-12-01; rename it to its date when it runs.  It runs from a frozen
# copy of the tree (/tmp/frozen), so calls that watch it may carry newer code without changing runs still to start.
# Each watch call's snapshot holds every training run finished so far (finished_runs.tgz): keep the calls back to
# back (the machine goes back after 30 s idle, and everything on it with it: 2026-12-01-d lost its ablation so).
#   GPU 1: issue 18's ablation at the bench preset, the 34 runs left (averis_attn_in, _o_proj, _mlp_in, _down_proj,
#          _norm_in seeds 0-4; averis_act, _grad, _adaptive seeds 2-4: ablation.sh with PREVIOUS), six at a time,
#          until the deadline (~40 s of GPU a run: ~23 min)
#   GPU 0: 1. the GPU tests, alone on their GPU (at 1a11b29 386/390 passed in 300 s beside six training runs)
#          2. bench_kernels check (228 cases) and shapes: each kernel per call at the step's shapes against its
#             floor, the token sums' second launch, the stats/tsum column tiles swept; then
#             gpu/diag/tree_order.py: the column statistics with the adjacent (today's), halving and tl.sum trees
#          3. bench_step, bench preset, graph: bf16, nvfp4, nvidia, averis, averis_rht (predicted against 1a11b29:
#             averis about -1.1 ms from the token sums' narrower tiles (1.52 ms in 140 launches of 2-12 programs),
#             and from X quantized once for q/k/v and gate/up about -0.7 ms for nvfp4 / nvidia, -1.3 ms for averis)
#          4. bench_step, qwen3-0.6b shape, graph: the same five recipes (last measured at e72a8ce, ~8 min then)
#   One GPU: the phases in turn, then the ablation until the deadline.
# Carry this file as .carry/session.sh, and .carry/tokens/scratch16k; calls as in benchmarks/gpu/session.sh.
SNAP="/tmp/gpu_tests.txt /tmp/steps /tmp/kernels /tmp/export"
ablate() {  # GPU: ablation.sh until the deadline, the first ablation runs put in place (skipped)
  CUDA_VISIBLE_DEVICES=$1 RECIPES=averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in,averis_act,averis_grad,averis_adaptive \
    PREVIOUS=benchmarks/results/ablation/runs.tar.gz BUDGET=$(( $(left) - 45 )) JOBS=6 \
    bash benchmarks/gpu/ablation.sh --set train.progress=false > /tmp/bg/ablation.log 2>&1
  echo "ablation rc $?"
}
plan() {
  rm -rf /tmp/frozen && mkdir -p /tmp/frozen && cp -r src benchmarks configs tests pyproject.toml .carry /tmp/frozen/
  cd /tmp/frozen && source benchmarks/gpu/env.sh; set +e
  ngpu=$(nvidia-smi -L | wc -l); echo "$ngpu GPU(s), $(left) s left"
  if [ "$ngpu" -ge 2 ]; then ablate 1 & fi
  echo "phase 1: GPU tests ($(left) s left)"
  timeout "$(cap 420)" bash benchmarks/gpu/qgemm_path.sh tests > /tmp/bg/tests.log 2>&1; echo "tests rc $?"
  pkill -f pytest
  echo "phase 2: kernels ($(left) s left)"
  CUDA_VISIBLE_DEVICES=0 timeout "$(cap 240)" python3 benchmarks/bench_kernels.py --sections check,shapes \
    --out /tmp/kernels > /tmp/bg/kernels.log 2>&1; echo "kernels rc $?"
  CUDA_VISIBLE_DEVICES=0 timeout "$(cap 90)" python3 benchmarks/gpu/diag/tree_order.py > /tmp/bg/tree_order.log 2>&1
  echo "tree order rc $?"
  echo "phase 3: bench step, bench preset ($(left) s left)"
  CUDA_VISIBLE_DEVICES=0 timeout "$(cap 200)" python3 benchmarks/bench_step.py --preset bench \
    --recipes bf16,nvfp4,nvidia,averis,averis_rht --modes graph --out /tmp/steps > /tmp/bg/steps_bench.log 2>&1
  echo "steps bench rc $?"
  echo "phase 4: bench step, qwen3-0.6b ($(left) s left)"
  CUDA_VISIBLE_DEVICES=0 timeout "$(cap 480)" python3 benchmarks/bench_step.py --preset qwen3-0.6b \
    --recipes bf16,nvfp4,nvidia,averis,averis_rht --modes graph --out /tmp/steps > /tmp/bg/steps_qwen.log 2>&1
  echo "steps qwen rc $?"
  [ "$ngpu" -lt 2 ] && ablate 0
  wait
}
source benchmarks/gpu/session.sh "$@"
