# A plan queued behind next.sh (one nvidia-h200, ~30 device minutes: start with a deadline of ~1380 s).  It runs from
# a frozen copy of the tree; each watch call's snapshot holds every result and every training run finished so far:
# keep the calls back to back (the machine goes back after 30 s idle).  No kernel changed since 89d7628, whose GPU
# check passed 228/228 (benchmarks/results/step/89d7628/): no check this time.
#   1. alone, capped at 120 s: bench_kernels --sections shapes, with the columnwise quantization's suspects (rowwise SR,
#      columnwise RNE, a transpose copy, transpose + rowwise SR): which of them makes the columnwise pass 2.9-5x its
#      floor, the largest gap in the step (~70 s at 89d7628 without them).
#   2. side by side until the deadline:
#      - issue 17's long runs: bf16, nvfp4, nvidia, averis, one seed, the bench model for 3 epochs (2,775 steps) with
#        the mean statistics every 250 steps (long_runs.sh PART=bench; 4 processes).  Not restartable (no checkpoints
#        leave the machine): they get the larger share of the GPU.  Estimated from 89d7628's ablation (12 one-epoch
#        runs in 502 s at 6 side by side, ~42 s of H200 a run-epoch): 12 run-epochs + 11 analyses ~ 550 s of GPU,
#        ~950 s wall at 4 of 7 processes, plus ~60 s of compiling.
#      - issue 18's per-site ablation, the 2 runs left (averis_down_proj and averis_norm_in seed 4; the other 15 of
#        the 17 ran at 4f4db09), side by side, restartable: PREVIOUS= the committed archive.
# Carry this file as .carry/session.sh and .carry/tokens/scratch16k (`python benchmarks/train_scratch.py prep
# --tokens-out .carry/tokens/scratch16k`, ~50 s here); calls as in benchmarks/gpu/session.sh:
#   AVERIS_COMMIT=<sha> bash .carry/session.sh start 1380; bash .carry/session.sh watch 540   (then watch 540, ...)
# After: unpack snap.tgz's finished_runs.tgz (runs/long_bench/<recipe>, runs/ablation/<recipe>/seedN); `averis report`
# the long runs and `averis analyze`'s mean-bias tables over their mean_bias.jsonl (as benchmarks/results/scratch_stats).
SNAP="/tmp/export /tmp/kernels"
plan() {
  frozen_copy
  echo "phase 1: kernels at the step's shapes ($(left) s left)"
  timeout "$(cap 120)" python3 benchmarks/bench_kernels.py --sections shapes --out /tmp/kernels \
    > /tmp/bg/kernels.log 2>&1; echo "kernels rc $?"
  echo "phase 2: long runs beside the per-site ablation ($(left) s left)"
  PART=bench DEADLINE=$(( DEADLINE - 45 )) bash benchmarks/gpu/long_runs.sh > /tmp/bg/long.log 2>&1 &
  RECIPES=averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in SEEDS=0,1,2,3,4 \
    PREVIOUS=benchmarks/results/ablation/runs.tar.gz BUDGET=$(( $(left) - 45 )) JOBS=2 \
    bash benchmarks/gpu/ablation.sh --set train.progress=false >> /tmp/bg/ablation.log 2>&1
  echo "ablation rc $? ($(left) s left)"
  wait
  echo "long runs done ($(left) s left)"; tail -3 /tmp/bg/long.log
}
source benchmarks/gpu/session.sh "$@"
