# The plan run at 89d7628 on 2026-12-02 (results: benchmarks/results/step/89d7628/, benchmarks/results/ablation/), kept as it ran.
# The next device session's plan (one nvidia-h200, ~30 device minutes: start with a deadline of ~1380 s).  It runs from
# a frozen copy of the tree; each watch call's snapshot holds every result and every training run finished so far:
# keep the calls back to back (the machine goes back after 30 s idle).
#   1. alone: bench_kernels check and shapes: every kernel bit for bit on the GPU, then each kernel at the step's
#      shapes against its floor with the column-statistics tiles swept (89f92dc timed only bench (8192, 256) before
#      its budget ended).  ~110 s check, shapes not yet timed whole (cap 320 s with the check); then the tile sweep of
#      every kernel kind (cap 90 s; never run on an H200).
#   2. alone: bench_step, bench preset, the six recipes of issue 15's must-show, eager (profiled) and graphed, Dynamo
#      reset between recipes (the 48b1419 run lost nvidia's and metis's graphed rows to the recompile limit).
#      Predicted from 48b1419 and 89f92dc: bf16 9.7, nvfp4 15.3, nvidia 15.8, averis 18.8, averis_rht ~23 ms.
#      ~510 s at 48b1419 (the compiles are most of it).
#   3. throughput, side by side: the GPU tests (capped), and issue 18's per-site ablation (averis_attn_in, _o_proj,
#      _mlp_in, _down_proj, _norm_in, seeds 0-4; 25 runs of ~40 s of H200 time each at 6 side by side) until the
#      deadline.  Restartable: the next plan passes PREVIOUS= the committed runs.tar.gz again.
# Carry this file as .carry/session.sh and .carry/tokens/scratch16k (`python benchmarks/train_scratch.py prep
# --tokens-out .carry/tokens/scratch16k`, ~50 s here); calls as in benchmarks/gpu/session.sh:
#   AVERIS_COMMIT=<sha> bash .carry/session.sh start 1380; bash .carry/session.sh watch 540   (then watch 540, ...)
SNAP="/tmp/gpu_tests.txt /tmp/steps /tmp/kernels"
plan() {
  frozen_copy
  echo "phase 1: kernels ($(left) s left)"
  timeout "$(cap 320)" python3 benchmarks/bench_kernels.py --sections check,shapes --out /tmp/kernels \
    > /tmp/bg/kernels.log 2>&1; echo "kernels rc $?"
  grep -E "bit-exact|equal" /tmp/bg/kernels.log
  # the tile sweep has not run on an H200 (CONFIGS come from the H100's): columnwise quantization is nvfp4's largest cost
  timeout "$(cap 90)" python3 benchmarks/bench_kernels.py --sections sweep --out /tmp/kernels/sweep \
    > /tmp/bg/kernels_sweep.log 2>&1; echo "sweep rc $?"
  echo "phase 2: bench step, bench preset ($(left) s left)"
  timeout "$(cap 620)" python3 benchmarks/bench_step.py --preset bench \
    --recipes averis,averis_rht,nvfp4,bf16,nvidia,metis --modes eager,graph --profile --out /tmp/steps \
    > /tmp/bg/steps_bench.log 2>&1; echo "steps bench rc $?"
  echo "phase 3: GPU tests beside the per-site ablation ($(left) s left)"
  (timeout "$(cap 300)" python3 -m pytest -q -p no:cacheprovider -p no:logging --tb=short -rfE \
      tests/test_kernels.py tests/test_shared_input.py tests/test_nn_gpu.py tests/test_qgemm_fidelity.py \
      tests/test_nn_compile.py tests/test_backend.py tests/test_nn.py > /tmp/gpu_tests.txt 2>&1
   echo "tests rc $? ($(left) s left)"; tail -3 /tmp/gpu_tests.txt) &
  RECIPES=averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in SEEDS=0,1,2,3,4 \
    PREVIOUS=benchmarks/results/ablation/runs.tar.gz BUDGET=$(( $(left) - 40 )) JOBS=6 \
    bash benchmarks/gpu/ablation.sh --set train.progress=false >> /tmp/bg/ablation.log 2>&1
  echo "ablation rc $? ($(left) s left)"
  wait
}
source benchmarks/gpu/session.sh "$@"
