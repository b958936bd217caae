# GPU, issue "Averis at the paper's cost": the training step of every recipe, eager and graphed, at the bench
# preset and the qwen3-0.6b shape (bench_step.py --preset), plus the kernel bandwidth table (bench_kernels.py),
# detached (the two presets outlast one call).  Results: step_<device>_<preset>.json, kernels JSON, logs in $OUT.
#   AVERIS_COMMIT=<sha> bash benchmarks/gpu/step_presets.sh start     # GPU 0: bench then qwen3-0.6b; GPU 1 (if any): kernels
#   bash benchmarks/gpu/step_presets.sh collect                      # within 30 s of the last call; repeat until done
source benchmarks/gpu/env.sh
set +e
RECIPES=${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht,metis}
case "${1:-start}" in
  start)
    bash benchmarks/gpu/bg.sh start steps bash -c "for p in ${PRESETS:-bench qwen3-0.6b}; do CUDA_VISIBLE_DEVICES=0 \
      python3 benchmarks/bench_step.py --preset \$p --recipes $RECIPES --modes eager,graph --out /tmp/steps; done"
    gpu=$(( $(nvidia-smi -L | wc -l) > 1 ? 1 : 0 ))
    bash benchmarks/gpu/bg.sh start kernels bash -c "CUDA_VISIBLE_DEVICES=$gpu python3 benchmarks/bench_kernels.py \
      --sections check,bw,averis --out /tmp/kernels"
    ;;
  collect)
    bash benchmarks/gpu/bg.sh watch "${WAIT:-540}" steps kernels
    cp /tmp/steps/*.json /tmp/kernels/*.json /tmp/bg/steps.log /tmp/bg/kernels.log "$OUT"/ 2>/dev/null
    ;;
esac
