# The next device session's plan (one nvidia-h200, ~30 device minutes): issue 17's SmolLM2-135M continued pretraining
# for one epoch of the corpus and the downstream table, in one held session (checkpoints never leave the machine).
#   1. the base model's zero-shot evaluation (every task, no limit) starts at once, beside the training;
#   2. continued pretraining, one epoch (943 steps of 16,384 tokens = the 15.45M training tokens in SmolLM2's
#      tokenizer), bf16, nvfp4, nvidia, averis, averis_rht, seeds 0, 1, 2 in seed-major order, 4 side by side (Metis
#      is left out: ~14x nvfp4's step at the bench preset);
#   3. each recipe's seed-0 checkpoint is evaluated as soon as its run is done (2 evaluations at a time), in its
#      trained numerics; then one comparison table (downstream.md).
# Runs the deadline stops are lost (no checkpoints leave): what finishes is in each watch call's snapshot.
# Carried: the bundle (benchmarks/gpu/bundle.sh pack .whl .carry/eval .carry/gguf .carry/tokens/smollm2: the GGUF, the
# token files, the evaluation files, the wheels of gguf and of lm-eval's packages the image lacks) in 4 calls:
#   bash benchmarks/gpu/bundle.sh stash    (x3: part_aa, _ab, _ac, each with SHA256 and PARTS)
#   bash benchmarks/gpu/bundle.sh unpack && AVERIS_COMMIT=<sha> bash .carry/session.sh start 1400;
#     bash .carry/session.sh watch 520     (part_ad + .carry/session.sh), then `watch 540` calls back to back.
SNAP="/tmp/export /tmp/evals"
RECIPES=${RECIPES:-bf16,nvfp4,nvidia,averis,averis_rht} SEEDS=${SEEDS:-0,1,2}
RUNS=/tmp/runs/smollm2
# a CPU smoke test of this plan sets RECIPES=bf16,averis SEEDS=0,1 STEPS=2 EVAL_FLAGS="--limit 2 --device cpu" SET_EXTRA="train.batch_size=1 ..."
STEPS=${STEPS:-943} EVAL_FLAGS=${EVAL_FLAGS:---batch-size 64 --device cuda}
evaluate() {  # NAME TARGET -> /tmp/evals/NAME/eval.json
  python3 -m averis eval "$2" $EVAL_FLAGS --out "/tmp/evals/$1" > "/tmp/bg/eval_$1.log" 2>&1
  echo "eval $1 rc $? ($(left) s left)"
}
plan() {
  frozen_copy
  export AVERIS_SMOLLM2_GGUF=$PWD/.carry/gguf/SmolLM2-135M-Instruct.Q4_1.gguf AVERIS_EVAL_DATA=$PWD/.carry/eval
  export HF_DATASETS_CACHE=/tmp/hf_datasets
  python3 -c "import lm_eval, datasets, pyarrow; print('lm_eval', lm_eval.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
  mkdir -p /tmp/evals
  evaluate base smollm2-135m &
  echo "training ($(left) s left)"
  python3 benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2 --out "$RUNS" --recipes "$RECIPES" \
    --seeds "$SEEDS" --jobs 4 --time-budget $(( $(left) - 40 )) --export /tmp/export/smollm2 \
    --set train.max_steps="$STEPS" train.eval_every=100 train.progress=false $SET_EXTRA > /tmp/bg/train.log 2>&1 &
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
