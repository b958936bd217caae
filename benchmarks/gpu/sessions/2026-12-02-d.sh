# What ran in this session's second machine (the first, holding the SmolLM2 bundle, went back while idle after
# next.sh's training line failed on an unset variable; its base-model evaluation came back): issue 18's per-site
# ablation alone, the 17 runs left (averis_attn_in, _o_proj, _down_proj seeds 2-4; _mlp_in, _norm_in seeds 1-4),
# 6 side by side, restartable from the committed archive.  Carry .carry/session.sh (this file) and
# .carry/tokens/scratch16k:  AVERIS_COMMIT=<sha> bash .carry/session.sh start SECONDS; bash .carry/session.sh watch 500
SNAP="/tmp/export"
plan() {
  frozen_copy
  RECIPES=averis_attn_in,averis_o_proj,averis_mlp_in,averis_down_proj,averis_norm_in SEEDS=0,1,2,3,4 \
    PREVIOUS=benchmarks/results/ablation/runs.tar.gz BUDGET=$(( $(left) - 45 )) JOBS=6 \
    bash benchmarks/gpu/ablation.sh --set train.progress=false >> /tmp/bg/ablation.log 2>&1
  echo "ablation rc $? ($(left) s left)"
}
source benchmarks/gpu/session.sh "$@"
