# The next device session's plan (one nvidia-h100-x1 or nvidia-h200, ~30 device minutes): issue 17's SmolLM2-135M
# continued pretraining for one epoch of the corpus and the downstream table, in one held session (checkpoints never
# leave the machine).  It continues sessions/2026-12-02-e.sh (ec21a63) and -f.sh (3aeede1), which finished 9 of the
# 15 runs (benchmarks/results/smollm2_epoch/runs.tar.gz):
#   1. the finished runs (bf16 seeds 0-2, nvfp4 0-1, averis 0-1, nvidia 0, averis_rht 0) and the committed
#      evaluations (the base model; bf16, averis and nvidia seed 0) are unpacked where this plan's comparison and
#      evaluations look, so none runs again;
#   2. round 1: nvfp4 and averis seed 2, side by side (the third seed of the paper's main comparison first);
#      round 2: nvidia seeds 1-2 and averis_rht seeds 1-2.  In f a run held 33.4-34.5 GiB at its peak (report.json's
#      gpu_peak_gib, reserved) and an evaluation at batch 64 runs beside: on an H200 (141 GiB) both rounds run 2 side
#      by side with one evaluation beside; on an 80 GiB H100 two runs and an evaluation would risk running out of
#      memory (e's five ran out), so round 1 runs alone and round 2 one run at a time beside one evaluation;
#   3. nvfp4 seed 2, averis seed 2, nvidia seed 1 and averis_rht seed 1 are evaluated in that order as soon as each is
#      done and evaluations may run (one at a time), in their trained numerics, with per-document scores; then one
#      table of all (downstream.md; the committed rows included), paired by document against bf16 seed 0.
#   Expected from f and e (H200: 340-485 s a FP4 run two at a time, 513-606 s an FP4 evaluation beside training; an
#   H100 has 0.7x the memory bandwidth): rounds 1 and part of 2 and two or three evaluations, not all of it.
# Runs the deadline stops are lost (no checkpoints leave): what finishes is in each watch call's snapshot.  The held
# machine goes back after 30 s idle: make the watch calls back to back, nothing in between.
# Carried: the bundle of benchmarks/gpu/smollm2_bundle.sh (the GGUF, the token files, the evaluation files, the wheels
# the image lacks; env.sh points averis at them) in 4 calls:
#   bash benchmarks/gpu/bundle.sh stash    (x3: part_aa, _ab, _ac, each with SHA256 and PARTS)
#   bash benchmarks/gpu/bundle.sh unpack && AVERIS_COMMIT=<sha> bash .carry/session.sh start 1620; sleep 60;
#     bash .carry/session.sh watch 470     (part_ad + .carry/session.sh), then `watch 530` calls back to back.
SNAP="/tmp/export /tmp/evals"
# ROUND1 and ROUND2: "RECIPES SEEDS" of each round
ROUND1=${ROUND1:-"nvfp4,averis 2"} ROUND2=${ROUND2:-"nvidia,averis_rht 1,2"} EVAL_JOBS=${EVAL_JOBS:-1} COMPILE=${COMPILE:-true}
# evaluated as they finish, in this order (nvfp4 has no evaluated run yet; averis and nvidia seed 0 are committed
# without the per-document scores that pair evaluations); the table pairs against bf16 seed 0, committed with them
EVAL_RUNS=${EVAL_RUNS:-nvfp4/seed2 averis/seed2 nvidia/seed1 averis_rht/seed1}
RUNS=/tmp/runs/smollm2
R=benchmarks/results
PREVIOUS=${PREVIOUS-$R/smollm2_epoch/runs.tar.gz}  # for train_smollm2.sh: holds smollm2/<recipe>/seed<k>/
E=$R/downstream/smollm2_epoch_h200
PREVIOUS_EVALS=${PREVIOUS_EVALS-base=$R/downstream/base_h200/eval.json bf16_seed0=$E/bf16_seed0/eval.json averis=$E/averis_seed0/eval.json nvidia=$E/nvidia_seed0/eval.json}
# a CPU smoke test of this plan sets ROUND1="bf16,averis 0,1" ROUND2="averis 2" STEPS=2 EVAL_RUNS="averis/seed0 averis/seed2"
# EVAL_FLAGS="--limit 2 --device cpu" SET_EXTRA="train.batch_size=1 ... train.compile=false train.cuda_graph=false"
STEPS=${STEPS:-943} EVAL_FLAGS=${EVAL_FLAGS:---batch-size 64 --device cuda} SET_EXTRA=${SET_EXTRA:-}
train_round() {  # train_round "RECIPES SEEDS" JOBS
  set -- $1 "$2"
  echo "training $1 seeds $2, $3 side by side ($(left) s left)"
  PREVIOUS= JOBS=$3 BUDGET=$(( $(left) - 40 )) COMPILE=$COMPILE bash benchmarks/gpu/train_smollm2.sh --recipes "$1" \
    --seeds "$2" --set train.eval_every=100 train.progress=false $SET_EXTRA >> /tmp/bg/train.log 2>&1
  echo "round rc $? ($(left) s left)"
}
# each of EVAL_RUNS once it is done and /tmp/evals_ok exists, EVAL_JOBS at a time; none starts with less than
# EVAL_MIN s left (half an evaluation is worth nothing), and each is stopped 60 s before the deadline (the table)
EVAL_MIN=${EVAL_MIN:-300}
evaluate_as_done() {
  local pending=" $EVAL_RUNS "
  while [ -n "${pending// /}" ] && [ "$(left)" -gt "$EVAL_MIN" ]; do
    for r in $pending; do
      if [ -e /tmp/evals_ok ] && [ -d "$RUNS/$r/checkpoints" ] && grep -qs '"status": "done"' "$RUNS/$r/summary.json" \
          && [ "$(pgrep -fc 'averis eval')" -lt "$EVAL_JOBS" ]; then
        echo "evaluating $r ($(left) s left)"
        ONLY=$r timeout $(( $(left) - 60 )) bash benchmarks/gpu/downstream.sh > "/tmp/bg/eval_${r/\//_}.log" 2>&1 &
        pending=${pending/ $r / }
      fi
    done
    sleep 10
  done
  wait
}
plan() {
  frozen_copy
  export STEPS EVAL_FLAGS RUNS OUT=  # for train_smollm2.sh and downstream.sh; OUT= : the snapshots bring results back
  python3 -c "import lm_eval, datasets, pyarrow; print('lm_eval', lm_eval.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
  # what earlier sessions finished: the comparison skips finished runs, downstream.sh finished evaluations
  [ -n "$PREVIOUS" ] && mkdir -p "$(dirname "$RUNS")" && tar xzf "$PREVIOUS" -C "$(dirname "$RUNS")"
  for e in $PREVIOUS_EVALS; do mkdir -p "/tmp/evals/${e%%=*}" && cp "${e#*=}" "/tmp/evals/${e%%=*}/eval.json"; done
  echo "evaluations carried: $(ls /tmp/evals | tr '\n' ' ')"
  # GPU memory decides what shares it (see the header); no GPU (a CPU smoke test) counts as small
  local mib; mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
  rm -f /tmp/evals_ok; [ "${mib:-0}" -ge 120000 ] && touch /tmp/evals_ok
  echo "GPU memory ${mib:-none} MiB: evaluations $([ -e /tmp/evals_ok ] && echo beside both rounds || echo from round 2 on)"
  evaluate_as_done &
  local evals=$!
  # Hugging Face models train eagerly unless told (train/fast.py): eager FP4 steps are host-bound, ~30x slower, so
  # train_smollm2.sh forces the CUDA graph; COMPILE as the committed runs were trained
  train_round "$ROUND1" 2
  if [ -e /tmp/evals_ok ]; then train_round "$ROUND2" 2; else touch /tmp/evals_ok; train_round "$ROUND2" 1; fi
  wait $evals
  ONLY= PAIR=bf16_seed0 bash benchmarks/gpu/downstream.sh > /tmp/bg/downstream.log 2>&1  # the table of all evaluated
  tail -12 /tmp/bg/downstream.log
}
source benchmarks/gpu/session.sh "$@"
