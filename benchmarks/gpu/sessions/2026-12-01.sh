# The device plan of the session of 2026-12-01 (nvidia-h200-x2, commit 7e8ecb9), as it ran: committed so that the
# results it made (docs/benchmarks.md, 'On the H200') name the whole orchestration, not only each part's command.
# Carried: .carry/tokens/scratch16k and this file (then at .carry/session.sh). Calls, each within 30 s of the last:
#   AVERIS_COMMIT=7e8ecb9... bash benchmarks/gpu/sessions/2026-12-01.sh start 1580
#   bash benchmarks/gpu/sessions/2026-12-01.sh watch 560   (three times: 560, 560, 420 s; each returned $OUT/snap.tgz)
set +e
case "$1" in
  start)
    echo $(( $(date +%s) + $2 )) > /tmp/deadline
    echo "$AVERIS_COMMIT" > /tmp/commit
    bash benchmarks/gpu/bg.sh start plan bash benchmarks/gpu/sessions/2026-12-01.sh plan ;;
  plan)
    export AVERIS_COMMIT=$(cat /tmp/commit)
    DEADLINE=$(cat /tmp/deadline); left() { echo $(( DEADLINE - $(date +%s) )); }
    echo "phase 1: multigpu loss check ($(left) s left)"
    mkdir -p /tmp/mg-out && cp benchmarks/results/multigpu/multigpu_nvidia_h200.json /tmp/mg-out/
    timeout 630 python3 benchmarks/multigpu.py --parts loss --recipes nvfp4,averis,bf16,averis_global \
      --mode-timeout 240 --out /tmp/mg-out --workdir /tmp/mg > /tmp/bg/mg.log 2>&1
    echo "multigpu rc $? ($(left) s left)"
    echo "phase 2: step presets on GPU 0; kernels, GPU tests, seeds on GPU 1"
    bash benchmarks/gpu/bg.sh start steps0 bash -c "CUDA_VISIBLE_DEVICES=0 python3 benchmarks/bench_step.py --preset bench \
      --recipes bf16,nvfp4,nvidia,averis,averis_rht,metis --modes eager,graph --profile --out /tmp/steps; \
      CUDA_VISIBLE_DEVICES=0 python3 benchmarks/bench_step.py --preset qwen3-0.6b \
      --recipes bf16,nvfp4,nvidia,averis,averis_rht --modes eager,graph --profile --out /tmp/steps"
    bash benchmarks/gpu/bg.sh start gpu1 bash -c "CUDA_VISIBLE_DEVICES=1 python3 benchmarks/bench_kernels.py \
      --sections check,bw,averis --out /tmp/kernels; GPU=1 bash benchmarks/gpu/qgemm_path.sh tests; \
      GPU=1 SEEDS=4,5 DEADLINE=$(( DEADLINE - 50 )) PREVIOUS=benchmarks/results/scratch_seeds/runs.tar.gz \
      bash benchmarks/gpu/seeds.sh"
    while [ ! -f /tmp/bg/steps0.rc ] || [ ! -f /tmp/bg/gpu1.rc ]; do
      [ "$(left)" -lt 45 ] && { echo "deadline: stopping"; pkill -f bench_step; pkill -f bench_kernels; pkill -f pytest; sleep 8; break; }
      sleep 5
    done
    echo "plan done ($(left) s left)" ;;
  watch)
    WATCH_LOGS="/tmp/bg/mg.log /tmp/bg/steps0.log /tmp/bg/gpu1.log" bash benchmarks/gpu/bg.sh watch "$2" plan
    rm -rf /tmp/snap; mkdir -p /tmp/snap/mg && cp -r /tmp/mg-out /tmp/steps /tmp/kernels /tmp/export /tmp/snap/ 2>/dev/null
    for d in /tmp/mg/loss/*/; do n=$(basename $d); mkdir -p /tmp/snap/mg/$n; cp $d/metrics.jsonl $d/summary.json /tmp/snap/mg/$n/ 2>/dev/null; done
    cp /tmp/bg/*.log /tmp/gpu_tests.txt /tmp/snap/ 2>/dev/null
    tar czf "$OUT/snap.tgz" -C /tmp snap; ls -la "$OUT" ;;
esac
