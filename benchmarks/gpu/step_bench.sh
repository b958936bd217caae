# GPU: the kernels' exactness (GPU tests + bench_kernels check), the Averis quantization overhead, and the
# training step eager vs CUDA-graphed with a profile (bench_step.py). Results land in $OUT.
# Usage: bash benchmarks/gpu/step_bench.sh [RECIPES] [extra bench_step.py args]
source benchmarks/gpu/env.sh
python3 -m pytest -q -x -p no:cacheprovider tests/test_nn_gpu.py 2>&1 | tail -3
python3 benchmarks/bench_kernels.py --sections check,averis --out "$OUT"
python3 benchmarks/bench_step.py --recipes "${1:-bf16,nvfp4,averis,nvidia}" --profile --out "$OUT" "${@:2}"
