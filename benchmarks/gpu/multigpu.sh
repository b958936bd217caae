# GPU, issue 16: multi-GPU scaling of the trainer (1 GPU vs DDP vs FSDP2; graphed where possible) and the loss
# check (1 vs 2 GPUs over the same tokens), on nvidia-h200-x2; results in $OUT/multigpu (JSON, table, PNGs).
# Carry .carry/tokens/scratch16k for the loss check (else it falls back to the bundled text, byte tokens).
#   bash benchmarks/gpu/multigpu.sh            # both parts: the speed part took 14 min at c76c50d (compile on)
#   bash benchmarks/gpu/multigpu.sh speed      # one part per call when a call's 10 minutes are short;
#   bash benchmarks/gpu/multigpu.sh loss       #   merges into the first's JSON (the committed one on a fresh machine)
source benchmarks/gpu/env.sh
nvidia-smi topo -m || true
python3 -c "import torch; print('nccl', torch.cuda.nccl.version(), 'gpus', torch.cuda.device_count())"
# results kept in /tmp between the calls of one warm machine (each call's $OUT starts empty), copied to $OUT
mkdir -p /tmp/averis-multigpu-out
if [ "${1:-}" = loss ]; then cp benchmarks/results/multigpu/multigpu_nvidia_h200.json /tmp/averis-multigpu-out/ 2>/dev/null || true; fi
python3 benchmarks/multigpu.py --parts "${1:-speed,loss}" --out /tmp/averis-multigpu-out --workdir /tmp/averis-multigpu
mkdir -p "$OUT/multigpu" && cp /tmp/averis-multigpu-out/* "$OUT/multigpu/"
