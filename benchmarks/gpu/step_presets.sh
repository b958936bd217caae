# GPU, issue "Averis at the paper's cost": the training step of every recipe, eager and graphed, at the bench
# preset and the qwen3-0.6b shape (bench_step.py --preset, with --profile: GPU kernel time and the top kernels of
# the eager step), plus the kernel bandwidth table (bench_kernels.py), detached (the two presets outlast one call).
# Two GPUs: qwen3-0.6b on GPU 0, bench then the kernels on GPU 1, side by side; one GPU: all in turn.
# Results: step_<device>_<preset>.json, kernels JSON, logs in $OUT.
#   AVERIS_COMMIT=<sha> bash benchmarks/gpu/step_presets.sh start     # detached
#   bash benchmarks/gpu/step_presets.sh collect                      # within 30 s of the last call; repeat until done
source benchmarks/gpu/env.sh
set +e
RECIPES=${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht,metis}
step() { echo "CUDA_VISIBLE_DEVICES=$1 python3 benchmarks/bench_step.py --preset $2 --recipes $RECIPES \
  --modes eager,graph --profile --out /tmp/steps"; }
kernels() { echo "CUDA_VISIBLE_DEVICES=$1 python3 benchmarks/bench_kernels.py --sections check,bw,averis --out /tmp/kernels"; }
case "${1:-start}" in
  start)
    if [ "$(nvidia-smi -L | wc -l)" -gt 1 ]; then
      bash benchmarks/gpu/bg.sh start steps0 bash -c "$(step 0 qwen3-0.6b)"
      bash benchmarks/gpu/bg.sh start steps1 bash -c "$(step 1 bench); $(kernels 1)"
    else
      bash benchmarks/gpu/bg.sh start steps0 bash -c "$(step 0 bench); $(step 0 qwen3-0.6b); $(kernels 0)"
      echo 0 > /tmp/bg/steps1.rc
    fi
    ;;
  collect)
    bash benchmarks/gpu/bg.sh watch "${WAIT:-540}" steps0 steps1
    cp /tmp/steps/*.json /tmp/kernels/*.json /tmp/bg/steps0.log /tmp/bg/steps1.log "$OUT"/ 2>/dev/null
    ;;
esac
