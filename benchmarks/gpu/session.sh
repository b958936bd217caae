# The start / watch protocol of a device-session plan (benchmarks/gpu/sessions/*.sh): a plan outlasts one device
# call (10 min), so it runs detached until an absolute deadline and the following calls, each within the machine's
# idle limit of the last, watch it and bring back a snapshot of everything it has written so far.
# A plan file defines plan() (its phases; DEADLINE, left, cap and frozen_copy are set for it) and SNAP (the paths each snapshot
# copies), then ends with `source benchmarks/gpu/session.sh "$@"`.  Carry the plan as .carry/session.sh:
#   AVERIS_COMMIT=<sha> bash .carry/session.sh start SECONDS     (detached; returns at once)
#   bash .carry/session.sh watch SECONDS                           (progress; $OUT/snap.tgz holds all results so far;
#                                                                    exit 3 at once on a fresh machine: no plan to watch)
set +e
_plan_file=${BASH_SOURCE[1]}
left() { echo $(( DEADLINE - $(date +%s) )); }
cap() { local t; t=$(( $(left) - 20 )); [ "$t" -gt "$1" ] && t=$1; [ "$t" -lt 10 ] && t=10; echo $t; }  # a phase's limit
# a plan's first step: run from a frozen copy of the tree (later calls may carry another), its GPU environment set
frozen_copy() {
  rm -rf /tmp/frozen && mkdir -p /tmp/frozen && cp -r src benchmarks configs tests pyproject.toml .carry /tmp/frozen/; [ -d .whl ] && cp -r .whl /tmp/frozen/
  cd /tmp/frozen && source benchmarks/gpu/env.sh; set +e
  echo "$(nvidia-smi -L | wc -l) GPU(s), $(left) s left"
}
case "$1" in
  start)
    echo $(( $(date +%s) + $2 )) > /tmp/deadline
    echo "$AVERIS_COMMIT" > /tmp/commit
    bash benchmarks/gpu/bg.sh start plan bash "$_plan_file" plan ;;
  plan)
    export AVERIS_COMMIT=$(cat /tmp/commit)
    DEADLINE=$(cat /tmp/deadline)
    plan
    echo "plan done" ;;
  watch)
    bash benchmarks/gpu/bg.sh watch "$2" plan || exit $?  # exit 3: a fresh machine, no plan here to snapshot
    rm -rf /tmp/snap; mkdir -p /tmp/snap
    for path in $SNAP /tmp/bg/*.log; do cp -r "$path" /tmp/snap/ 2>/dev/null; done
    # every training run finished so far under /tmp/runs (no checkpoints): a machine lost later loses only the runs
    # in flight (their export comes at the end).  Untar beside the exports and `averis report` the folder.
    (cd /tmp && find runs -name summary.json 2>/dev/null | xargs -r grep -l '"status": "done"' | xargs -r -n1 dirname) \
      > /tmp/snap_runs.txt
    [ -s /tmp/snap_runs.txt ] && tar czf /tmp/snap/finished_runs.tgz -C /tmp --exclude=checkpoints \
      --exclude=tensorboard -T /tmp/snap_runs.txt
    tar czf "$OUT/snap.tgz" -C /tmp snap; ls -la "$OUT" ;;
  *) echo "usage: $_plan_file start SECONDS | watch SECONDS" >&2; exit 2 ;;
esac
