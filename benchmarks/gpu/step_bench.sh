# GPU, issue "kernels": exactness of the fused layer path, the Averis quantization overhead, Metis's
# randomized SVD, and the training step eager vs CUDA-graphed (bench_step.py). Results land in $OUT.
# Two parts, one call each (compiling every model twice does not fit one call):
#   bash benchmarks/gpu/step_bench.sh 1   # GPU tests, averis + lowrank benches, bf16/nvfp4/averis eager+graph, profile
#   bash benchmarks/gpu/step_bench.sh 2   # nvidia/averis_rht/metis graphed, trainer check (.carry/tokens/scratch16k)
source benchmarks/gpu/env.sh
if [ "${1:-1}" = 1 ]; then
  python3 -m pytest -q -p no:cacheprovider tests/test_nn_gpu.py tests/test_lowrank.py 2>&1 | tail -4
  python3 benchmarks/bench_kernels.py --sections averis --out "$OUT"
  python3 benchmarks/bench_lowrank.py --out "$OUT"
  python3 benchmarks/bench_step.py --recipes bf16,nvfp4,averis --modes eager,graph --profile --out "$OUT/part1"
else
  python3 benchmarks/bench_step.py --recipes nvidia,averis_rht,metis --modes graph --out "$OUT/part2" \
    --tokens .carry/tokens/scratch16k --trainer-recipes nvfp4,averis
fi
