"""The wgrad token sums on the GPU: the columnwise residual quantize emitting them as a by-product vs the GEMV path
it replaced (quantize, then values @ ones and a cast), on wgrad-sized operands (tokens x channels, BF16, NVFP4 with
stochastic rounding, the Averis mean).  Checks the kernel's sums against transforms.mean.token_sum bit for bit and
counts the channels where the GEMV's sums (cuBLAS order) differ after the rounding to BF16.

    python benchmarks/token_sums.py            # on the GPU (not run yet: no GPU measurement in the commit)
    TRITON_INTERPRET=1 python benchmarks/token_sums.py --cpu-smoke   # the same checks on a small shape, no timing
"""

from __future__ import annotations

import sys

import torch
import triton

from averis import provenance, transforms
from averis.formats import make_spec
from averis.kernels import dispatch
from averis.transforms.mean import GROUP, TOKEN_CHUNK

SHAPES = [(8192, 1024), (8192, 3072), (16384, 1024)]


def one_shape(tokens: int, channels: int, device: str = "cuda", timing: bool = True) -> str:
    spec = make_spec("nvfp4", rounding="stochastic")
    x = (torch.randn(tokens, channels, device=device) + torch.linspace(-1, 2, channels, device=device)).bfloat16()
    st = transforms.column_stats(x)
    g = torch.Generator(device).manual_seed(1)

    def plain():
        return dispatch.fake_quantize(x, spec, 0, g, True, st.residual_amax, torch.bfloat16, mu=st.mean)

    def gemv():  # the path before: a second read of the values
        vt = plain().T
        return vt, (vt @ vt.new_ones(tokens, 1)).float()

    def fused():
        return dispatch.fake_quantize(x, spec, 0, g, True, st.residual_amax, torch.bfloat16, mu=st.mean,
                                      token_sum=(TOKEN_CHUNK, GROUP, True))

    g.manual_seed(1)
    v0, s0 = gemv()
    g.manual_seed(1)
    v1, s1 = fused()
    assert torch.equal(v0.T.view(torch.int16), v1.view(torch.int16)), "values differ"
    exact = torch.equal(transforms.mean.token_sum(v1, True).view(torch.int32), s1.view(torch.int32))
    differ = int((s0.reshape(-1).view(torch.int32) != s1.view(torch.int32)).sum())
    line = f"{tokens} x {channels}: kernel sums == reference: {exact}; GEMV sums differ on {differ}/{channels} channels"
    if not timing:
        return line
    t_plain, t_gemv, t_fused = (triton.testing.do_bench(f, warmup=50, rep=300) * 1e3 for f in (plain, gemv, fused))
    return f"{line}; quantize {t_plain:.1f} us, + GEMV {t_gemv:.1f} us, with the sums {t_fused:.1f} us"


def main(argv: list[str]) -> None:
    torch.manual_seed(0)
    device = "cpu (Triton interpreter)" if "--cpu-smoke" in argv else torch.cuda.get_device_name(0)
    print(f"device {device}; commit {provenance.commit()}; command python benchmarks/token_sums.py {' '.join(argv)}")
    if "--cpu-smoke" in argv:  # the checks on the CPU (Triton's interpreter), a small shape, no timing
        print(one_shape(200, 48, "cpu", timing=False))
        return
    for tokens, channels in SHAPES:
        print(one_shape(tokens, channels))


if __name__ == "__main__":
    main(sys.argv[1:])
