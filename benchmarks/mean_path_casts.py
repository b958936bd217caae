"""Dtype conversions (each a small kernel on the GPU) in one QuantLinear forward + backward on the Triton path,
per recipe and place in the code: counted on the CPU (TRITON_INTERPRET=1, 256 tokens, 512 -> 1536, BF16 autocast)
by wrapping Tensor.to / .float() / .bfloat16() / .double().  What the Averis path adds over NVFP4's.

    python benchmarks/mean_path_casts.py nvfp4 averis > benchmarks/results/mean_path/casts.txt
"""

import collections
import os
import shlex
import sys
import traceback

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import torch  # noqa: E402

import averis  # noqa: E402
from averis import provenance  # noqa: E402

COUNTS: collections.Counter = collections.Counter()
ON = [False]


def record(t: torch.Tensor, dtype) -> None:
    if ON[0] and dtype is not None and dtype != t.dtype:
        frames = [f for f in traceback.extract_stack()[:-2] if "/averis/" in f.filename]
        where = " < ".join(f"{f.filename.split('/averis/')[-1]}:{f.lineno}" for f in frames[-2:][::-1])
        COUNTS[(str(t.dtype)[6:], str(dtype)[6:], "x".join(map(str, t.shape)), where)] += 1


def spy() -> None:
    to = torch.Tensor.to

    def wrapped_to(self, *a, **k):
        dtype = k.get("dtype")
        for v in a:
            dtype = v if isinstance(v, torch.dtype) else v.dtype if isinstance(v, torch.Tensor) else dtype
        record(self, dtype)
        return to(self, *a, **k)

    torch.Tensor.to = wrapped_to
    for name, dtype in (("float", torch.float32), ("bfloat16", torch.bfloat16), ("double", torch.float64)):
        method = getattr(torch.Tensor, name)
        setattr(torch.Tensor, name, lambda self, *a, m=method, d=dtype, **k: (record(self, d), m(self, *a, **k))[1])


def main() -> None:
    print(f"commit {provenance.commit()}; device cpu (Triton interpreter); command python {shlex.join(sys.argv)}")
    spy()
    for recipe in sys.argv[1:] or ["nvfp4", "averis"]:
        torch.manual_seed(0)
        layer = averis.quantize_model(torch.nn.Sequential(torch.nn.Linear(512, 1536, bias=False)), recipe)
        x = torch.randn(256, 512) + 1
        with averis.use_backend("triton"), torch.autocast("cpu", torch.bfloat16):
            layer(x.requires_grad_()).float().sum().backward()  # warm-up
            COUNTS.clear()
            ON[0] = True
            layer(x.requires_grad_()).float().sum().backward()
            ON[0] = False
        print(f"\n{recipe}: {sum(COUNTS.values())} conversions (from, to, shape, where)")
        for key, n in sorted(COUNTS.items(), key=lambda kv: kv[0][3]):
            print(f"  {n} {key}")


if __name__ == "__main__":
    main()
