"""Continued pretraining of SmolLM2-135M on the offline corpus (its own tokenizer) under each recipe.

    # CPU, once: the corpus in SmolLM2's tokenizer (vocabulary 49,152: uint16), ~28 MB
    python benchmarks/train_smollm2.py prep --tokens-out .carry/tokens/smollm2
    # GPU: needs SmolLM2-135M's GGUF file there (AVERIS_SMOLLM2_GGUF=path, or the cache of averis.models.hf)
    python benchmarks/train_smollm2.py run --tokens .carry/tokens/smollm2 --out runs/smollm2 \\
        --time-budget 540 --export $OUT/smollm2 [--set train.max_steps=300] [--seeds 0]

Settings: configs/smollm2_cpt.yaml (300 steps of 16 x 1024 tokens, LR 1e-4, 30 warm-up steps).
"""

import sys

from train_common import main

DATA = ["data.source=corpus", "data.tokenizer=smollm2-135m", "data.val_fraction=0.02"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "smollm2_cpt.yaml", DATA, [], default_jobs=3, default_seeds="0"))
