# GPU, issue "one quantized-GEMM path": the GPU tests on the new path, then the training step of the bench preset
# before and after the change (benchmarks/step_compare.py, detached: it outlasts one call).  Results in $OUT.
#   git archive 7035e6b src benchmarks | (mkdir -p .carry/before && tar -x -C .carry/before)   # here, once
#   bash benchmarks/gpu/qgemm_path.sh tests     # carry .carry/before; GPU tests + starts the comparison
#   bash benchmarks/gpu/qgemm_path.sh collect   # waits for the comparison, copies its JSON, PNG and log to $OUT
source benchmarks/gpu/env.sh
set +e
case "${1:-tests}" in
  tests)
    python3 -m pytest -q -p no:cacheprovider tests/test_nn_gpu.py tests/test_qgemm_fidelity.py tests/test_nn_compile.py \
      tests/test_backend.py tests/test_nn.py 2>&1 | tail -25 | tee "$OUT/gpu_tests.txt"
    bash benchmarks/gpu/bg.sh start compare python3 benchmarks/step_compare.py --trees "before=.carry/before,after=.,exact=.:--exact-gemm" \
      --recipes "${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht,metis}" --modes graph --rounds 2 --out /tmp/compare
    ;;
  collect)
    bash benchmarks/gpu/bg.sh watch "${WAIT:-540}" compare
    cp /tmp/compare/* /tmp/bg/compare.log "$OUT"/ 2>/dev/null
    ;;
esac
