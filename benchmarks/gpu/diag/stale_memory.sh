# GPU: stale_memory.py (-> stale_memory.txt), then compute-sanitizer's initcheck on one averis layer and one
# plain BF16 layer at 1000 tokens (-> initcheck_head.txt).
#   bash benchmarks/gpu/diag/stale_memory.sh
source benchmarks/gpu/env.sh
cd benchmarks/gpu/diag
timeout 330 python3 stale_memory.py 2>&1 | tee "$OUT/stale_memory.txt"
timeout 150 /usr/local/cuda/bin/compute-sanitizer --tool initcheck --print-limit 4 --show-backtrace no python3 -c "
from _layer import layer_grads
layer_grads(1000, 'averis'); print('done averis', flush=True)
layer_grads(1000, 'bf16'); print('done bf16', flush=True)
" 2>&1 | grep -v "^=========     \|Host Frame" | head -60 | tee "$OUT/initcheck_head.txt"
