"""Cut a token folder down to N evenly spaced chunks of its train split (so it fits a GPU call's 64 MiB).

    python benchmarks/gpu/subsample_tokens.py .carry/tokens/smollm2 .carry/tokens/smollm2_small --chunks 100

Evenly spaced chunks keep every source of the corpus represented; the validation split is copied whole.
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--chunks", type=int, default=100)
    ap.add_argument("--chunk-tokens", type=int, default=65536)
    args = ap.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    dst.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "train.json").read_text())
    tokens = np.memmap(src / "train.bin", dtype=np.dtype(meta["dtype"]), mode="r")
    n = len(tokens) // args.chunk_tokens
    if args.chunks > n:
        raise SystemExit(f"{src} has only {n} chunks of {args.chunk_tokens} tokens")
    starts = np.linspace(0, n - 1, args.chunks).round().astype(int) * args.chunk_tokens
    out = np.concatenate([tokens[s:s + args.chunk_tokens] for s in starts])
    out.tofile(dst / "train.bin")
    meta.update(num_tokens=int(len(out)), subsample=f"{args.chunks} evenly spaced chunks of {args.chunk_tokens} "
                f"tokens of {src}")
    (dst / "train.json").write_text(json.dumps(meta, indent=1))
    for name in ("val.bin", "val.json"):
        shutil.copy(src / name, dst / name)
    val = json.loads((src / "val.json").read_text())["num_tokens"]
    (dst / "done").write_text(json.dumps({"train_tokens": int(len(out)), "val_tokens": val}))
    print(f"{dst}: {len(out):,} training tokens ({out.nbytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
