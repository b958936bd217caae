# SmolLM2-135M's GGUF file (98 MB) reaches the GPU machine in three carried parts: a call carries <= 64 MiB
# together with the tracked files (~16 MB), so each part is 33 MB. Consecutive calls, within 30 s of each other:
#   call 1: bash benchmarks/gpu/smollm2_gguf.sh stash      (carry .carry/gguf/part_aa)
#   call 2: bash benchmarks/gpu/smollm2_gguf.sh stash      (carry .carry/gguf/part_ab)
#   call 3: bash benchmarks/gpu/smollm2_gguf.sh assemble   (carry .carry/gguf/part_ac, + what the job needs)
# Made here with: split -b 33m SmolLM2-135M-Instruct.Q4_1.gguf .carry/gguf/part_
set -euo pipefail
mkdir -p /tmp/smol
cp .carry/gguf/part_* /tmp/smol/ 2>/dev/null || true  # whichever part this call carried
case "$1" in
  stash) ls -la /tmp/smol ;;
  assemble)
    cat /tmp/smol/part_* > /tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
    echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf" \
      | sha256sum -c - ;;
  *) echo "usage: smollm2_gguf.sh stash | assemble" >&2; exit 2 ;;
esac
