# The device plan of the second session of 2026-12-01 (nvidia-h200, one GPU, ~19 device minutes left after a first
# call): the GPU tests (first: three kernels never run on a GPU), the kernel table, then the qwen3-0.6b step graphed
# for the issue-15 targets, and averis again with the row-by-row column-statistics kernel. Timings run alone.
# Calls, each within 30 s of the last (carry this file as .carry/session.sh):
#   AVERIS_COMMIT=<sha> bash .carry/session.sh start SECONDS     (detached; returns at once)
#   bash .carry/session.sh watch SECONDS                           (progress; $OUT/snap.tgz holds all results so far)
# It ran at commit e72a8ce; bench_step.py's --stats-kernel (phase 4) was removed with the row-by-row kernel afterwards.
set +e
case "$1" in
  start)
    echo $(( $(date +%s) + $2 )) > /tmp/deadline
    echo "$AVERIS_COMMIT" > /tmp/commit
    bash benchmarks/gpu/bg.sh start plan bash .carry/session.sh plan ;;
  plan)
    export AVERIS_COMMIT=$(cat /tmp/commit)
    DEADLINE=$(cat /tmp/deadline); left() { echo $(( DEADLINE - $(date +%s) )); }
    cap() { local t=$(left); t=$(( t - 20 )); [ "$t" -gt "$1" ] && t=$1; [ "$t" -lt 10 ] && t=10; echo $t; }
    echo "phase 1: GPU tests ($(left) s left)"
    timeout $(cap 300) bash benchmarks/gpu/qgemm_path.sh tests > /tmp/bg/tests.log 2>&1; echo "tests rc $?"; pkill -f pytest
    echo "phase 2: kernel table ($(left) s left)"
    timeout $(cap 120) python3 benchmarks/bench_kernels.py --sections bw,averis --out /tmp/kernels > /tmp/bg/kernels.log 2>&1
    echo "kernels rc $? ($(left) s left)"
    echo "phase 3: qwen3-0.6b graphed"
    timeout $(cap 480) python3 benchmarks/bench_step.py --preset qwen3-0.6b --recipes bf16,nvfp4,averis,nvidia,averis_rht \
      --modes graph --out /tmp/steps > /tmp/bg/steps.log 2>&1
    echo "steps rc $? ($(left) s left)"
    echo "phase 4: averis with the row-by-row statistics kernel"
    timeout $(cap 150) python3 benchmarks/bench_step.py --preset qwen3-0.6b --recipes averis --modes graph \
      --stats-kernel rows --out /tmp/steps_rows > /tmp/bg/steps_rows.log 2>&1
    echo "rows rc $? ($(left) s left)"
    echo "plan done" ;;
  watch)
    bash benchmarks/gpu/bg.sh watch "$2" plan
    rm -rf /tmp/snap; mkdir -p /tmp/snap
    cp -r /tmp/steps /tmp/steps_rows /tmp/kernels /tmp/snap/ 2>/dev/null
    cp /tmp/bg/*.log /tmp/gpu_tests.txt /tmp/snap/ 2>/dev/null
    tar czf "$OUT/snap.tgz" -C /tmp snap; ls -la "$OUT" ;;
esac
