# GPU, issue "one quantized-GEMM path": the GPU tests on the new path, then the training step of the bench preset
# before and after the change (benchmarks/step_compare.py, detached: it outlasts one call).  Results in $OUT.
#   git archive 7035e6b src benchmarks | (mkdir -p .carry/before && tar -x -C .carry/before)   # here, once
#   bash benchmarks/gpu/qgemm_path.sh tests            # carry .carry/before; GPU tests (GPU 0, in $OUT)
#   GPU=1 RECIPES=averis,metis bash benchmarks/gpu/qgemm_path.sh compare   # the comparison on one GPU, -> /tmp/compare_$GPU
#   bash benchmarks/gpu/qgemm_path.sh collect          # waits for the comparisons, copies JSON, PNG and logs to $OUT
source benchmarks/gpu/env.sh
set +e
GPU=${GPU:-0}
case "${1:-tests}" in
  tests)
    CUDA_VISIBLE_DEVICES=$GPU python3 -m pytest -q -p no:cacheprovider -p no:logging --tb=short -rfE \
      tests/test_kernels.py tests/test_nn_gpu.py tests/test_qgemm_fidelity.py tests/test_nn_compile.py tests/test_backend.py \
      tests/test_nn.py \
      tests/test_adaptive_split.py tests/test_recipe_ablations.py tests/test_split_diag.py tests/test_nn_backends.py \
      tests/test_shared_input.py \
      "tests/test_train.py::test_a_released_graph_is_captured_again_with_the_same_numbers" > /tmp/gpu_tests.txt 2>&1
    tail -5 /tmp/gpu_tests.txt; cp /tmp/gpu_tests.txt "$OUT"/ 2>/dev/null
    ;;
  compare)
    CUDA_VISIBLE_DEVICES=$GPU python3 benchmarks/step_compare.py --trees "${TREES:-before=.carry/before,after=.}" \
      --recipes "${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht,metis}" --modes graph --rounds "${ROUNDS:-1}" \
      --out "/tmp/compare_$GPU"
    ;;
  collect)
    bash benchmarks/gpu/bg.sh watch "${WAIT:-540}" ${JOBS:-compare}
    cp /tmp/gpu_tests.txt /tmp/bg/*.log "$OUT"/ 2>/dev/null
    for d in /tmp/compare_*; do for f in "$d"/*; do cp "$f" "$OUT/${d##*/}_${f##*/}"; done; done
    ;;
esac
