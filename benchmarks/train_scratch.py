"""From-scratch benchmark: the Qwen3-style "bench" model (~40M) on the whole offline corpus, our own 16k BPE,
one epoch (~15M tokens), 3 seeds per recipe; loss gap of every FP4 recipe against BF16.

    # CPU, once (about 2-3 minutes on two cores): 16k BPE + uint16 token files, ~30 MB
    python benchmarks/train_scratch.py prep --tokens-out .carry/tokens/scratch16k
    # GPU: 6 recipes x 3 seeds, 6 processes side by side; stops by itself within the budget, rerun to continue
    python benchmarks/train_scratch.py run --tokens .carry/tokens/scratch16k --out runs/scratch \\
        --time-budget 540 --export $OUT/scratch
    python benchmarks/train_scratch.py report runs/scratch     # or: averis report runs/scratch

Settings: configs/scratch_bench.yaml (override with --set, e.g. --set train.max_steps=100).
"""

import sys

from train_common import main

DATA = ["data.source=corpus", "data.tokenizer=bpe", "data.vocab_size=16384", "data.val_fraction=0.02"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "scratch_bench.yaml", DATA, [], default_jobs=6, default_seeds="0,1,2"))
