# The device plan of the third session of 2026-12-01 (nvidia-h200, one GPU, 30 device minutes): issue 17's
# from-scratch seeds, to ten per recipe: seed 2 of averis, averis_tail and averis_rht (cut by a budget at 0507b37)
# and seeds 6-9 of the seven recipes, four runs side by side, seed-major so a cut leaves whole seeds.
# Calls, each within 30 s of the last (carry this file as .carry/session.sh, and .carry/tokens/scratch16k):
#   AVERIS_COMMIT=<sha> bash .carry/session.sh start SECONDS     (detached; returns at once)
#   bash .carry/session.sh watch SECONDS                           (progress; $OUT/snap.tgz holds all results so far)
set +e
case "$1" in
  start)
    echo $(( $(date +%s) + $2 )) > /tmp/deadline
    echo "$AVERIS_COMMIT" > /tmp/commit
    bash benchmarks/gpu/bg.sh start plan bash .carry/session.sh plan ;;
  plan)
    export AVERIS_COMMIT=$(cat /tmp/commit)
    DEADLINE=$(cat /tmp/deadline)
    echo "seeds 2,6,7,8,9 ($(( DEADLINE - $(date +%s) )) s left)"
    GPU=0 SEEDS=2,6,7,8,9 PREVIOUS=benchmarks/results/scratch_seeds/runs.tar.gz DEADLINE=$DEADLINE \
      bash benchmarks/gpu/seeds.sh
    echo "plan done" ;;
  watch)
    WATCH_LOGS='/tmp/runs/seeds_0/*/seed[26789]/train.log' bash benchmarks/gpu/bg.sh watch "$2" plan
    rm -rf /tmp/snap; mkdir -p /tmp/snap
    cp -r /tmp/export /tmp/snap/ 2>/dev/null
    cp /tmp/bg/*.log /tmp/snap/ 2>/dev/null
    for s in /tmp/runs/seeds_0/*/seed*/summary.json; do echo "$s $(tr -d '\n' < "$s" | cut -c1-200)"; done > /tmp/snap/summaries.txt 2>/dev/null
    tar czf "$OUT/snap.tgz" -C /tmp snap; ls -la "$OUT"; tail -3 /tmp/snap/summaries.txt ;;
esac
