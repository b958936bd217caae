# SmolLM2-135M's GGUF file (98 MB) reaches the GPU machine in two carried halves (a call carries <= 64 MiB):
#   call 1: bash benchmarks/gpu/smollm2_gguf.sh stash      (carry .carry/gguf/part_aa)
#   call 2: bash benchmarks/gpu/smollm2_gguf.sh assemble   (carry .carry/gguf/part_ab), within 30 s of call 1
# Made here with: split -b 49m SmolLM2-135M-Instruct.Q4_1.gguf .carry/gguf/part_
set -euo pipefail
mkdir -p /tmp/smol
case "$1" in
  stash) cp .carry/gguf/part_aa /tmp/smol/ ;;
  assemble)
    cat /tmp/smol/part_aa .carry/gguf/part_ab > /tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf
    echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf" \
      | sha256sum -c - ;;
esac
