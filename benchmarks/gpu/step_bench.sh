# GPU, issue "kernels": exactness (GPU tests, bench_kernels check), the Averis quantization overhead,
# Metis's randomized SVD, and the training step eager vs CUDA-graphed (bench_step.py). Results in $OUT.
# Two parts, one call each (compiling every model twice does not fit one call):
#   bash benchmarks/gpu/step_bench.sh 1   # tests, kernel check + averis + lowrank benches, bf16/nvfp4/averis/averis_rht
#                                         # eager + graph with a profile
#   bash benchmarks/gpu/step_bench.sh 2   # nvidia/metis graphed, trainer check (carry .carry/tokens/scratch16k),
#                                         # two eager runs of bf16 and averis against each other
source benchmarks/gpu/env.sh
set +e  # one failing part must not stop the others (each prints its own result)
if [ "${1:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_nn_gpu.py tests/test_lowrank.py 2>&1 | tail -6
  python3 benchmarks/bench_kernels.py --sections check,averis --out "$OUT"
  python3 benchmarks/bench_lowrank.py --out "$OUT" --repeats 10
  python3 benchmarks/bench_step.py --recipes bf16,nvfp4,averis,averis_rht --modes eager,graph --profile \
    --out "$OUT/part1"
else
  python3 benchmarks/bench_step.py --recipes nvidia,metis --modes graph --out "$OUT/part2" \
    --tokens .carry/tokens/scratch16k --trainer-recipes nvfp4,averis,averis_rht
  # is the compiled eager step itself reproducible? (graph and eager differed for bf16 and averis)
  python3 benchmarks/bench_step.py --recipes bf16,averis --modes eager,eager-again --out "$OUT/repeat"
fi
