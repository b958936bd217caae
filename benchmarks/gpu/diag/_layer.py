"""The layer of tests/test_nn_gpu.py, for the GPU diagnostics: Linear 256 -> 384 under a recipe, X with a channel
mean, a small BF16 dY; forward under BF16 autocast and backward on CUDA.  (A diagnostic does not import a test.)"""
import torch
from torch import nn

import averis


def same_small_svd_everywhere() -> None:
    """Metis's r x r SVD by the Triton Jacobi kernel whether or not the quantizers take the Triton path."""
    averis.use_backend(averis.current_backend(), small_svd="jacobi")


def layer_grads(tokens: int, recipe: str = "metis"):
    """(Y, dX, dW) of one forward and backward pass."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(256, 384, bias=False)).cuda()
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(tokens, 256, device="cuda", generator=g) + 2 * torch.linspace(-1, 2, 256, device="cuda")
    dy = (torch.randn(tokens, 384, device="cuda", generator=g) * 1e-3 + 1e-3).to(torch.bfloat16)
    layer = averis.quantize_model(base, recipe)
    x.requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = layer(x)
    y.backward(dy)
    return y, x.grad, layer[0].weight.grad
