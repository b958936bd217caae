# A plan queued behind next.sh (one nvidia-h200, ~30 device minutes): issue 18's ablation on SmolLM2-135M, 3 seeds,
# where the mean is strong (the from-scratch model has little of it).  Continued pretraining for 300 steps of 16 x 1024
# tokens (configs/smollm2_cpt.yaml; the full corpus's token files of smollm2_bundle.sh), bf16, nvfp4, averis and the
# ablations that say which part of the split pays: activations only, gradients only, and the adaptive split.
#   - 18 runs (6 recipes x seeds 0-2), seed-major (whole seeds first), 2 side by side: in sessions/2026-12-02-f.sh a
#     FP4 step more than doubled with a second run and an evaluation beside it (docs/benchmarks.md).  CUDA-graphed
#     without torch.compile: compiling costs a run 70-141 s, more than it saves over 300 steps.  An estimate: 300
#     steps at f's median steps two side by side (107-246 ms) are 32-74 s, ~100 s a run with loading and capture,
#     ~900 s for all 18 (what the deadline stops is lost, what finished is in each snapshot).
#   - Restartable across sessions: PREVIOUS= an archive holding ablation_smollm2/<recipe>/seedN (the runs of an earlier
#     snapshot's finished_runs.tgz, `tar czf prev.tgz -C <unpacked>/runs ablation_smollm2`): those are skipped.
# Carried: the bundle of benchmarks/gpu/smollm2_bundle.sh in 4 calls, as next.sh says:
#   bash benchmarks/gpu/bundle.sh stash    (x3: part_aa, _ab, _ac, each with SHA256 and PARTS)
#   bash benchmarks/gpu/bundle.sh unpack && AVERIS_COMMIT=<sha> bash .carry/session.sh start 1620; sleep 60;
#     bash .carry/session.sh watch 470     (part_ad + .carry/session.sh, this file), then `watch 530` calls back to back.
# After: unpack snap.tgz's finished_runs.tgz and `averis report <dir>/runs/ablation_smollm2 --paired-against
# nvfp4,averis --meta device=... --meta commit=... --meta command=...` into benchmarks/results/ablation_smollm2/.
SNAP="/tmp/export"
RECIPES=${RECIPES:-bf16,nvfp4,averis,averis_act,averis_grad,averis_adaptive} SEEDS=${SEEDS:-0,1,2} JOBS=${JOBS:-2}
# a CPU smoke test sets RECIPES=bf16,averis SEEDS=0 SET_EXTRA="train.max_steps=2 train.batch_size=1 data.seq_len=64
# train.eval_batches=1 train.cuda_graph=false" (ablation.sh's cuda_graph=true comes first; the later --set wins)
SET_EXTRA=${SET_EXTRA:-}
plan() {
  frozen_copy
  export OUT=  # ablation.sh writes no tarball: the snapshots bring /tmp/export and the finished runs back
  RECIPES=$RECIPES SEEDS=$SEEDS JOBS=$JOBS BENCH=smollm2 COMPILE=false PREVIOUS=${PREVIOUS:-} \
    BUDGET=$(( $(left) - 40 )) bash benchmarks/gpu/ablation.sh --set train.progress=false $SET_EXTRA \
    > /tmp/bg/ablation.log 2>&1
  echo "ablation rc $? ($(left) s left)"; grep -a "finished with\|out of memory" /tmp/bg/ablation.log | tail -20
}
source benchmarks/gpu/session.sh "$@"
