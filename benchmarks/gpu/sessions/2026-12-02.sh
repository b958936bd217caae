# The device call of 2026-12-02 (one nvidia-h200, the session's last ~7 device minutes): one foreground call, each
# phase capped and writing straight under $OUT, so that a call cut short by the budget still brings back what finished.
#   1. bench_kernels check: every kernel bit for bit against the reference on the GPU, with the column statistics
#      read as 16 row blocks side by side (a (16 x 64) tile a step, 16-byte loads, each column's tree in registers).
#   2. only if the check is whole: bench_step, bench preset, graphed: nvfp4, averis and nvidia (Dynamo reset
#      between recipes now).  Predicted: column statistics ~27 -> ~10 us a launch (112 a step), averis 19.8 ->
#      ~18 ms; nvfp4 15.2 unchanged; nvidia ~15.7 (its graph row at 48b1419 was spoiled by the recompile limit).
#   3. bench_kernels shapes: each kernel at the step's shapes against its floor, the statistics' tiles swept.
# Run: bash benchmarks/gpu/sessions/2026-12-02.sh   (no carry needed)
source benchmarks/gpu/env.sh
set +e
export AVERIS_COMMIT=${AVERIS_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}
mkdir -p "$OUT/kernels" "$OUT/steps"
timeout 170 python3 benchmarks/bench_kernels.py --sections check --out "$OUT/kernels" > "$OUT/kernels_check_log.txt" 2>&1
echo "check rc $?"; grep -E "equal|bit-exact" "$OUT/kernels_check_log.txt"
if grep -Eq "bit-exact: ([0-9]+)/\1 cases equal" "$OUT/kernels_check_log.txt"; then
  timeout 150 python3 benchmarks/bench_step.py --preset bench --recipes nvfp4,averis,nvidia --modes graph \
    --out "$OUT/steps" > "$OUT/step_log.txt" 2>&1
  echo "steps rc $?"; grep -E "ms/step|^\|" "$OUT/step_log.txt"
fi
timeout 120 python3 benchmarks/bench_kernels.py --sections shapes --out "$OUT/kernels_shapes" \
  > "$OUT/kernels_shapes_log.txt" 2>&1
echo "shapes rc $?"; grep -E "^  (bench|qwen3)" "$OUT/kernels_shapes_log.txt" | cut -c1-220
