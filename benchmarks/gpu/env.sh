# Sourced by the GPU scripts: wheels carried in .whl (benchmarks/gpu/eval_wheels.txt), averis from this checkout,
# unbuffered output.
set -euo pipefail
# installed once per machine (scripts source this file again, some side by side: a second pip into the same
# --target at the same time breaks the first)
if ls .whl/*.whl >/dev/null 2>&1; then
  wheels=$(cd .whl && ls -- *.whl | tr '\n' ' ')
  if [ "$(cat /tmp/site/.wheels 2>/dev/null)" != "$wheels" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    echo "$wheels" > /tmp/site/.wheels
  fi
fi
export PYTHONPATH="/tmp/site:$PWD/src:$PWD/benchmarks"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
# what benchmarks/gpu/smollm2_bundle.sh carried (bundle.sh unpack): SmolLM2's GGUF file and the evaluation files
[ -f .carry/gguf/SmolLM2-135M-Instruct.Q4_1.gguf ] && export AVERIS_SMOLLM2_GGUF=$PWD/.carry/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
[ -d .carry/eval ] && export AVERIS_EVAL_DATA=$PWD/.carry/eval HF_DATASETS_CACHE=/tmp/hf_datasets
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" \
  || echo "env.sh: no CUDA device visible to torch"
