"""Inside a metis layer (512 and 1000 tokens, GPU): does each quantize call give the same bits, layout and RNG
consumption through the Triton kernels and through the PyTorch reference?  (It found equal bits but different
layouts of U and V, which changed cuBLAS's kernel choice; the reference quantizer now returns contiguous tensors.)

    source benchmarks/gpu/env.sh && python3 benchmarks/gpu/diag/metis_layouts.py
"""
import torch
from _layer import layer_grads, same_small_svd_everywhere

import averis
from averis.qgemm import operand as F

same_small_svd_everywhere()
orig = F.quantize_operand
seen = []

def checked(x, spec, generator, axis=-1, out_dtype=None):
    # the layers draw from a counter-based stream (averis.formats.noise.Stream): its state is the draw count k
    pre = generator.k if generator is not None else None
    fast = orig(x, spec, generator, axis=axis, out_dtype=out_dtype)
    post = generator.k if generator is not None else None
    if generator is not None:
        generator.k = pre
    with averis.use_backend("torch"):
        slow = orig(x, spec, generator, axis=axis, out_dtype=out_dtype)
    if generator is not None:
        if generator.k != post:
            print(f"  RNG CONSUMPTION differs: shape {tuple(x.shape)} axis {axis} {spec.rounding}", flush=True)
        generator.k = post
    fb, sb = fast.float(), slow.float()
    nd = int((fb != sb).sum())
    nbits = int((fast.contiguous().view(torch.int32 if fast.element_size() == 4 else torch.int16) !=
                 slow.contiguous().view(torch.int32 if slow.element_size() == 4 else torch.int16)).sum())
    same_layout = fast.stride() == slow.stride() and fast.storage_offset() == slow.storage_offset()
    if not same_layout or fast.dtype != slow.dtype or nbits:
        print(f"  LAYOUT/BITS shape {tuple(x.shape)} axis {axis} {spec.rounding}: strides {fast.stride()} vs "
              f"{slow.stride()}, dtype {fast.dtype} vs {slow.dtype}, offsets {fast.storage_offset()} vs "
              f"{slow.storage_offset()}, storage {fast.untyped_storage().nbytes()} vs "
              f"{slow.untyped_storage().nbytes()}, "
              f"bit differences {nbits}", flush=True)
    seen.append((tuple(x.shape), x.stride(), str(x.dtype), axis, spec.rounding, str(out_dtype), nd))
    if nd:
        idx = (fb != sb).nonzero()[0].tolist()
        print(f"  MISMATCH shape {tuple(x.shape)} stride {x.stride()} {x.dtype} axis {axis} {spec.rounding} "
              f"out {out_dtype}: {nd} differ, first {idx} fast {fb[tuple(idx)].item()!r} "
              f"slow {sb[tuple(idx)].item()!r} x {x[tuple(idx)].item()!r}", flush=True)
    return fast

F.quantize_operand = checked
for tokens in (512, 1000):
    layer_grads(tokens)
    print(tokens, "calls:", len(seen), "mismatching:", sum(1 for s in seen if s[-1]), flush=True)
    for s in seen:
        print("   ", s)
    seen.clear()

