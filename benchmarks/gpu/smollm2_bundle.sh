#!/usr/bin/env bash
# Here (with network), once before a SmolLM2 device session: everything the GPU machine lacks for SmolLM2-135M's
# continued pretraining and its downstream evaluation, packed into one bundle (benchmarks/gpu/bundle.sh; 4 parts,
# ~115 MB: the GGUF file is 98 MB of it):
#   .whl/                the wheels of benchmarks/gpu/eval_wheels.txt (gguf, lm-eval and what the image lacks for it)
#   .carry/gguf/         SmolLM2-135M-Instruct.Q4_1.gguf (from averis' cache; downloaded once from PyPI)
#   .carry/eval/         the evaluation files (../shared/data/eval or $AVERIS_EVAL_DATA), checksums checked
#   .carry/tokens/smollm2  the whole corpus in SmolLM2's tokenizer (15.45M training tokens: 943 steps = one epoch)
# On the GPU machine: `bundle.sh stash` (x3) and `bundle.sh unpack`; env.sh then points averis at the GGUF and data.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
rm -rf .whl && mkdir -p .whl .carry/gguf
grep -v '^#' benchmarks/gpu/eval_wheels.txt | while read -r spec; do
  [ -z "$spec" ] && continue
  $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$spec"
done
gguf=$($py -c "import sys; sys.path.insert(0, 'src'); from averis.models.hf import smollm2_gguf_path; print(smollm2_gguf_path())")
cp "$gguf" .carry/gguf/
data="${AVERIS_EVAL_DATA:-../shared/data/eval}"
rm -rf .carry/eval && mkdir -p .carry/eval && cp "$data"/*.jsonl* "$data"/README.md "$data"/SHA256SUMS .carry/eval/
(cd .carry/eval && sha256sum -c --quiet SHA256SUMS) && echo "evaluation files copied to .carry/eval and checked"
$py benchmarks/train_smollm2.py prep --tokens-out .carry/tokens/smollm2
bash benchmarks/gpu/bundle.sh pack .whl .carry/gguf .carry/eval .carry/tokens/smollm2
