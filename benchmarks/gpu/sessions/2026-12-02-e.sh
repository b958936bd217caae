# Kept as it ran (commit ec21a63, 2026-12-02, one nvidia-h200): 5 runs side by side ran the GPU out of memory;
# 5 of 15 runs finished (benchmarks/results/smollm2_epoch/README.md).  The plan that follows it is next.sh.
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
# a CPU smoke test of this plan sets RECIPES=bf16,averis SEEDS=0,1 STEPS=2 EVAL_FLAGS="--limit 2 --device cpu"
# SET_EXTRA="train.batch_size=1 ... train.compile=false train.cuda_graph=false"
STEPS=${STEPS:-943} EVAL_FLAGS=${EVAL_FLAGS:---batch-size 64 --device cuda} SET_EXTRA=${SET_EXTRA:-}
plan() {
  frozen_copy
  export STEPS EVAL_FLAGS RUNS OUT=  # for train_smollm2.sh and downstream.sh; OUT= : the snapshots bring results back
  python3 -c "import lm_eval, datasets, pyarrow; print('lm_eval', lm_eval.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
  # Hugging Face models train eagerly unless told (train/fast.py): eager FP4 steps are host-bound, ~30x slower, so
  # train_smollm2.sh forces the CUDA graph (it ran SmolLM2 on the H100, compile off).  torch.compile of SmolLM2 traced
  # on the CPU but is unverified on the GPU: 4 steps of averis try it first (this also warms Inductor's cache).
  local compile=true
  RUNS=/tmp/runs/preflight JOBS=1 STEPS=4 COMPILE=true EXPORT=/tmp/preflight bash benchmarks/gpu/train_smollm2.sh \
    --recipes averis --seeds 0 --set train.eval_every=4 train.eval_batches=1 train.progress=false $SET_EXTRA \
    > /tmp/bg/preflight.log 2>&1
  grep -qs '"status": "done"' /tmp/runs/preflight/averis/summary.json || compile=false
  echo "training, torch.compile $compile ($(left) s left)"
  JOBS=5 BUDGET=$(( $(left) - 40 )) COMPILE=$compile bash benchmarks/gpu/train_smollm2.sh --recipes "$RECIPES" \
    --seeds "$SEEDS" --set train.eval_every=100 train.progress=false $SET_EXTRA > /tmp/bg/train.log 2>&1 &
  local train=$! pending=" ${RECIPES//,/ } "
  while [ -n "${pending// /}" ] && [ "$(left)" -gt 60 ]; do  # evaluate each seed-0 run once it is done
    for r in $pending; do
      if grep -qs '"status": "done"' "$RUNS/$r/seed0/summary.json" && [ "$(pgrep -fc 'averis eval')" -lt 2 ]; then
        ONLY=$r bash benchmarks/gpu/downstream.sh > "/tmp/bg/eval_$r.log" 2>&1 &
        pending=${pending/ $r / }
      fi
    done
    sleep 10
  done
  wait $train; echo "training rc $? ($(left) s left)"
  wait
  ONLY= bash benchmarks/gpu/downstream.sh > /tmp/bg/downstream.log 2>&1  # the table of all evaluated
  tail -12 /tmp/bg/downstream.log
}
source benchmarks/gpu/session.sh "$@"
