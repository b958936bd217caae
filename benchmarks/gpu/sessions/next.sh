# The next device session's plan (one nvidia-h200, ~30 device minutes): issue 17's SmolLM2-135M continued pretraining
# for one epoch of the corpus and the downstream table, in one held session (checkpoints never leave the machine).
#   1. (the base model's row of the table is committed: benchmarks/results/downstream/base_h200/, 10effda)
#   2. continued pretraining, one epoch (943 steps of 16,384 tokens = the 15.45M training tokens in SmolLM2's
#      tokenizer), bf16, nvfp4, nvidia, averis, averis_rht, seeds 0, 1, 2 in seed-major order, 5 side by side (Metis
#      is left out: ~14x nvfp4's step at the bench preset).  Estimated from the bench preset's 17 one-epoch runs in
#      707 s at 6 side by side (4f4db09) scaled by FLOPs a token (~3.4x): ~140 s of the GPU a run, so seed 0's five
#      runs take ~12 minutes and seeds 1-2 mostly fall to a later session (restartable from zero only);
#   3. each recipe's seed-0 checkpoint is evaluated as soon as its run is done (2 evaluations at a time), in its
#      trained numerics; then one comparison table (downstream.md; with the base row, here afterwards:
#      averis eval --compare benchmarks/results/downstream/base_h200/eval.json SNAP/evals/*/eval.json).
# Runs the deadline stops are lost (no checkpoints leave): what finishes is in each watch call's snapshot.
# Carried: the bundle of benchmarks/gpu/smollm2_bundle.sh (the GGUF, the token files, the evaluation files, the wheels
# the image lacks; env.sh points averis at them) in 4 calls:
#   bash benchmarks/gpu/bundle.sh stash    (x3: part_aa, _ab, _ac, each with SHA256 and PARTS)
#   bash benchmarks/gpu/bundle.sh unpack && AVERIS_COMMIT=<sha> bash .carry/session.sh start 1400;
#     bash .carry/session.sh watch 520     (part_ad + .carry/session.sh), then `watch 540` calls back to back.
SNAP="/tmp/export /tmp/evals"
RECIPES=${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht} SEEDS=${SEEDS:-0,1,2}
RUNS=/tmp/runs/smollm2
# a CPU smoke test of this plan sets RECIPES=bf16,averis SEEDS=0,1 STEPS=2 EVAL_FLAGS="--limit 2 --device cpu" SET_EXTRA="train.batch_size=1 ..."
STEPS=${STEPS:-943} EVAL_FLAGS=${EVAL_FLAGS:---batch-size 64 --device cuda} SET_EXTRA=${SET_EXTRA:-}
evaluate() {  # NAME TARGET -> /tmp/evals/NAME/eval.json (once: a restarted plan skips what is done)
  if [ -f "/tmp/evals/$1/eval.json" ]; then echo "eval $1 done earlier"; return; fi
  python3 -m averis eval "$2" $EVAL_FLAGS --out "/tmp/evals/$1" > "/tmp/bg/eval_$1.log" 2>&1
  echo "eval $1 rc $? ($(left) s left)"
}
plan() {
  frozen_copy
  python3 -c "import lm_eval, datasets, pyarrow; print('lm_eval', lm_eval.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
  mkdir -p /tmp/evals
  # Hugging Face models train eagerly unless told (train/fast.py): eager FP4 steps are host-bound, ~30x slower.  The
  # CUDA graph ran SmolLM2 on the H100 (benchmarks/results/smollm2, compile off); torch.compile of SmolLM2 traced on
  # the CPU but is unverified on the GPU, so 4 steps of averis try it first (this also warms Inductor's cache).
  local compile=true
  python3 benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2 --out /tmp/runs/preflight --recipes averis \
    --seeds 0 --jobs 1 --set train.max_steps=4 train.eval_every=4 train.eval_batches=1 train.compile=true \
    train.cuda_graph=true train.progress=false $SET_EXTRA > /tmp/bg/preflight.log 2>&1
  grep -qs '"status": "done"' /tmp/runs/preflight/averis/summary.json || compile=false
  echo "training, torch.compile $compile ($(left) s left)"
  python3 benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2 --out "$RUNS" --recipes "$RECIPES" \
    --seeds "$SEEDS" --jobs 5 --time-budget $(( $(left) - 40 )) --export /tmp/export/smollm2 \
    --set train.max_steps="$STEPS" train.eval_every=100 train.progress=false train.cuda_graph=true \
    train.compile=$compile $SET_EXTRA > /tmp/bg/train.log 2>&1 &
  local train=$! pending=" ${RECIPES//,/ } "
  while [ -n "${pending// /}" ] && [ "$(left)" -gt 60 ]; do  # evaluate each seed-0 run once it is done
    for r in $pending; do
      if grep -qs '"status": "done"' "$RUNS/$r/seed0/summary.json" && [ "$(pgrep -fc 'averis eval')" -lt 2 ]; then
        evaluate "$r" "$RUNS/$r/seed0" & pending=${pending/ $r / }
      fi
    done
    sleep 10
  done
  wait $train; echo "training rc $? ($(left) s left)"
  wait
  python3 -m averis eval --compare /tmp/evals/*/eval.json --out /tmp/evals/downstream.md
}
source benchmarks/gpu/session.sh "$@"
