# The next device session's plan (one nvidia-h200, ~30 device minutes): issue 17's SmolLM2-135M continued pretraining
# for one epoch of the corpus and the downstream table, in one held session (checkpoints never leave the machine).
# It continues sessions/2026-12-02-e.sh (ec21a63) and -f.sh (3aeede1), which finished 9 of the 15 runs
# (benchmarks/results/smollm2_epoch/runs.tar.gz):
#   1. the finished runs (bf16 seeds 0-2, nvfp4 0-1, averis 0-1, nvidia 0, averis_rht 0) and the committed
#      evaluations (the base model; bf16, averis and nvidia seed 0) are unpacked where this plan's comparison and
#      evaluations look, so none runs again;
#   2. the other 6 runs (nvidia 1; averis_rht 1; nvfp4 2; nvidia 2; averis 2; averis_rht 2), 2 side by side: in f a
#      run held 33.4-34.5 GiB at its peak (summary.json), and nvfp4's median step was 107 ms beside bf16 but 244 ms
#      beside averis_rht and an evaluation (smollm2_epoch/report.json's runs): a third run at once would add
#      out-of-memory risk (e's five ran out) for little.  An estimate from f's 340-485 s a FP4 run two at a time:
#      three rounds, ~1,350 s;
#   3. averis_rht seed 1, nvfp4 seed 2, nvidia seed 1 and averis seed 2 are evaluated as soon as each is done (one
#      evaluation at a time beside the training), in their trained numerics, with per-document scores; then one table
#      of all (downstream.md; the committed rows included), paired by document against bf16 seed 0.
# Runs the deadline stops are lost (no checkpoints leave): what finishes is in each watch call's snapshot.  The held
# machine goes back after 30 s idle: make the watch calls back to back, nothing in between.
# Carried: the bundle of benchmarks/gpu/smollm2_bundle.sh (the GGUF, the token files, the evaluation files, the wheels
# the image lacks; env.sh points averis at them) in 4 calls:
#   bash benchmarks/gpu/bundle.sh stash    (x3: part_aa, _ab, _ac, each with SHA256 and PARTS)
#   bash benchmarks/gpu/bundle.sh unpack && AVERIS_COMMIT=<sha> bash .carry/session.sh start 1620; sleep 60;
#     bash .carry/session.sh watch 470     (part_ad + .carry/session.sh), then `watch 530` calls back to back.
SNAP="/tmp/export /tmp/evals"
RECIPES=${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht} SEEDS=${SEEDS:-0,1,2} JOBS=${JOBS:-2} EVAL_JOBS=${EVAL_JOBS:-1} COMPILE=${COMPILE:-true}
# evaluated here as they finish, in this order of preference (nvfp4 and averis_rht have no evaluated run yet;
# averis and nvidia seed 0 are committed without the per-document scores that pair evaluations); the table pairs
# against bf16 seed 0, committed with them
EVAL_RUNS=${EVAL_RUNS:-averis_rht/seed1 nvfp4/seed2 nvidia/seed1 averis/seed2}
RUNS=/tmp/runs/smollm2
R=benchmarks/results
PREVIOUS=${PREVIOUS-$R/smollm2_epoch/runs.tar.gz}  # for train_smollm2.sh: holds smollm2/<recipe>/seed<k>/
E=$R/downstream/smollm2_epoch_h200
PREVIOUS_EVALS=${PREVIOUS_EVALS-base=$R/downstream/base_h200/eval.json bf16_seed0=$E/bf16_seed0/eval.json averis=$E/averis_seed0/eval.json nvidia=$E/nvidia_seed0/eval.json}
# a CPU smoke test of this plan sets RECIPES=bf16,averis SEEDS=0,1 STEPS=2 EVAL_FLAGS="--limit 2 --device cpu"
# SET_EXTRA="train.batch_size=1 ... train.compile=false train.cuda_graph=false"
STEPS=${STEPS:-943} EVAL_FLAGS=${EVAL_FLAGS:---batch-size 64 --device cuda} SET_EXTRA=${SET_EXTRA:-}
plan() {
  frozen_copy
  export STEPS EVAL_FLAGS RUNS OUT=  # for train_smollm2.sh and downstream.sh; OUT= : the snapshots bring results back
  python3 -c "import lm_eval, datasets, pyarrow; print('lm_eval', lm_eval.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
  # what earlier sessions finished: the comparison skips finished runs, downstream.sh finished evaluations
  for e in $PREVIOUS_EVALS; do mkdir -p "/tmp/evals/${e%%=*}" && cp "${e#*=}" "/tmp/evals/${e%%=*}/eval.json"; done
  echo "evaluations carried: $(ls /tmp/evals | tr '\n' ' ')"
  # Hugging Face models train eagerly unless told (train/fast.py): eager FP4 steps are host-bound, ~30x slower, so
  # train_smollm2.sh forces the CUDA graph; COMPILE as the committed runs were trained
  PREVIOUS=$PREVIOUS JOBS=$JOBS BUDGET=$(( $(left) - 40 )) COMPILE=$COMPILE bash benchmarks/gpu/train_smollm2.sh --recipes "$RECIPES" \
    --seeds "$SEEDS" --set train.eval_every=100 train.progress=false $SET_EXTRA > /tmp/bg/train.log 2>&1 &
  local train=$! pending=" $EVAL_RUNS "
  while [ -n "${pending// /}" ] && [ "$(left)" -gt 60 ]; do  # evaluate each of EVAL_RUNS once it is done
    for r in $pending; do
      if [ -d "$RUNS/$r/checkpoints" ] && grep -qs '"status": "done"' "$RUNS/$r/summary.json" \
          && [ "$(pgrep -fc 'averis eval')" -lt "$EVAL_JOBS" ]; then
        ONLY=$r bash benchmarks/gpu/downstream.sh > "/tmp/bg/eval_${r/\//_}.log" 2>&1 &
        pending=${pending/ $r / }
      fi
    done
    sleep 10
  done
  wait $train; echo "training rc $? ($(left) s left)"
  wait
  ONLY= PAIR=bf16_seed0 bash benchmarks/gpu/downstream.sh > /tmp/bg/downstream.log 2>&1  # the table of all evaluated
  tail -12 /tmp/bg/downstream.log
}
source benchmarks/gpu/session.sh "$@"
