#!/usr/bin/env bash
# Here (with network), for benchmarks/gpu/downstream.sh: the wheels of benchmarks/gpu/eval_wheels.txt for the GPU
# machine (python 3.12, manylinux x86_64), tarred and split into 30 MB parts that each fit one call's carry
# (.carry/evalwhl/part_aa, _ab, _ac: 81 MB of wheels, 55 MB of it pyarrow, which `datasets` cannot do without), and
# a copy of the evaluation files (.carry/eval, 7.4 MB, from ../shared/data/eval or $AVERIS_EVAL_DATA).
# The list was checked complete in a clean venv with only CPU torch + transformers + averis + these (--no-deps):
#   python3 -m venv /tmp/v && . /tmp/v/bin/activate && pip install torch transformers ml_dtypes pytest
#   pip install --no-deps $(grep -v '^#' benchmarks/gpu/eval_wheels.txt) && PYTHONPATH=src pytest -q tests/test_eval.py
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.carry/evalwhl
rm -rf "$dest" && mkdir -p "$dest/wheels"
grep -v '^#' benchmarks/gpu/eval_wheels.txt | while read -r spec; do
  [ -z "$spec" ] && continue
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dest/wheels" "$spec"
done
du -ch "$dest"/wheels/*.whl | tail -1
tar cf - -C "$dest" wheels | split -b 30m - "$dest/part_"
rm -rf "$dest/wheels"
ls -la "$dest"
data="${AVERIS_EVAL_DATA:-../shared/data/eval}"
rm -rf .carry/eval && mkdir -p .carry/eval && cp "$data"/*.jsonl* "$data"/README.md "$data"/SHA256SUMS .carry/eval/
(cd .carry/eval && sha256sum -c --quiet SHA256SUMS) && echo "evaluation files copied to .carry/eval and checked"
