"""Is the Trainer (no compile, 6 steps) repeatable eager vs eager and graph vs graph, and eager == graph?

    source benchmarks/gpu/env.sh && python3 benchmarks/gpu/diag/trainer_repeat.py .carry/tokens/scratch16k averis,nvfp4
"""
import json
import sys
import tempfile
from pathlib import Path

from averis.train.config import load_config
from averis.train.trainer import Trainer

tokens = Path(sys.argv[1])
for recipe in sys.argv[2].split(","):
    res = {}
    for tag, graph in (("eager1", False), ("eager2", False), ("graph1", True), ("graph2", True)):
        with tempfile.TemporaryDirectory() as out:
            cfg = load_config("configs/scratch_bench.yaml", [
                f"recipe={recipe}", f"out={out}", f"data.train_tokens={tokens / 'train.bin'}",
                f"data.val_tokens={tokens / 'val.bin'}", "train.max_steps=6", "train.eval_every=0",
                "train.ckpt_every=0", "train.progress=false", "train.tensorboard=false", "train.compile=false",
                f"train.cuda_graph={str(graph).lower()}", "train.batch_size=16", "train.grad_accum=2"])
            Trainer(cfg).fit()
            lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
            res[tag] = [json.loads(x)["loss"] for x in lines if '"loss"' in x]
    print(recipe, {k: v for k, v in res.items()}, flush=True)
    print(f"  {recipe}: eager repeatable {res['eager1'] == res['eager2']}, graph repeatable "
          f"{res['graph1'] == res['graph2']}, eager == graph {res['eager1'] == res['graph1']}", flush=True)
