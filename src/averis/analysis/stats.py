"""Mean-bias statistics of one (tokens x channels) matrix: the measurements of method.md section 6.

``activation_stats(X)`` answers, for a linear layer's input (or output gradient) X:
- how large the token mean mu is against the tokens (mean ratio R, sign coherence);
- whether mu is the dominant direction (|cos| of mu and X's leading right singular vector);
- how the energy splits into mean, spike (top singular directions of the centred matrix) and tail;
- what the largest entries are made of (outlier attribution);
- what FP4 quantization does to X with and without the mean removed.

The decomposition is exact and Frobenius-orthogonal: X = 1 mu + S + T, with S = Xc V_k V_k^T the
projection of the centred matrix Xc = X - 1 mu on its top-k right singular vectors and T = Xc - S.
Since every column of Xc sums to zero, 1 mu is orthogonal to S and T, so the three energy shares add
up to one, and the mean share equals R^2.
"""

from __future__ import annotations

import math

import torch

from ..qgemm import fake_quantize

FORMAT_BLOCKS = {"nvfp4": 16, "mxfp4": 32}
MEAN_MODES = ("plain", "mean_bf16", "mean_fp4")
MIN_TOKENS = 2
_STAT_DTYPE = torch.float64  # sums of squares of values up to ~1e4 over 1e7 entries: float64 keeps them exact


def activation_stats(
    x: torch.Tensor,
    *,
    spike_fraction: float = 0.01,
    outlier_fraction: float = 0.001,
    formats: tuple[str, ...] = ("nvfp4", "mxfp4"),
    max_svd_tokens: int = 8192,
    quantize: bool = True,
    seed: int = 0,
) -> dict:
    """Mean-bias statistics of a (tokens x channels) matrix ``x``; every value is a Python float or int.

    spike_fraction: the spike is the top k = max(1, floor(spike_fraction * m)) singular directions of
    the centred matrix.  outlier_fraction: the top share of entries by |x_ij| that the outlier
    attribution averages over (at least one entry).  max_svd_tokens: the singular vectors are
    estimated from at most this many tokens (a seeded random subset), then applied to all of them.
    quantize=False skips the FP4 measurements (the slow part on a CPU).
    """
    x = check_matrix(x)
    tokens, channels = x.shape
    xs = x.to(_STAT_DTYPE)
    mu = xs.mean(dim=0)
    centred = xs - mu
    total_energy = float(xs.square().sum())
    out: dict = {"tokens": tokens, "channels": channels, "total_energy": total_energy,
                 "rms": math.sqrt(total_energy / x.numel()), "absmax": float(xs.abs().max())}
    out.update(_mean_stats(xs, mu, total_energy))
    svd_rows = _svd_rows(tokens, max_svd_tokens, seed, x.device)
    v1, sigma1_sq = _top_right_singular(xs[svd_rows], 1)
    out["cos_mean_v1"] = _abs_cosine(mu, v1[:, 0])
    out["sigma1_energy_share"] = float(sigma1_sq[0] * tokens / len(svd_rows)) / _nonzero(total_energy)
    k = max(1, int(spike_fraction * channels))
    v_spike, _ = _top_right_singular(centred[svd_rows], k)
    spike = (centred @ v_spike) @ v_spike.T
    tail = centred - spike
    out.update(_energy_shares(tokens, mu, spike, tail, total_energy, k))
    out.update(_outlier_attribution(xs, mu, spike, tail, outlier_fraction))
    if quantize:
        out["quant"] = {fmt: quantization_damage(x, fmt) for fmt in formats}
    return out


def check_matrix(x) -> torch.Tensor:
    """x as a floating-point 2D tensor with at least MIN_TOKENS rows, finite: else a clear error."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor (tokens x channels), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"expected a 2D (tokens x channels) matrix, got shape {tuple(x.shape)}: "
                         f"flatten the leading dims first (x.reshape(-1, x.shape[-1]))")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point matrix, got {x.dtype}")
    if x.shape[0] < MIN_TOKENS or x.shape[1] < 1:
        raise ValueError(f"too few tokens: the statistics need at least {MIN_TOKENS} tokens (rows) and one "
                         f"channel, got shape {tuple(x.shape)}; feed more text")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(dim=1)).flatten()
        raise ValueError(f"the matrix holds {int(bad.sum())} NaN/Inf entries (first in token {int(rows[0])}): "
                         f"statistics of a diverged model are meaningless; check the model and its input")
    return x


# --------------------------------------------------------------------------- the mean
def _mean_stats(xs: torch.Tensor, mu: torch.Tensor, total_energy: float) -> dict:
    tokens = xs.shape[0]
    mu_norm = float(mu.norm())
    token_rms_norm = math.sqrt(total_energy / tokens)  # sqrt(mean_t ||x_t||^2)
    projections = xs @ mu
    return {
        "mean_norm": mu_norm,
        "mean_ratio": mu_norm / _nonzero(token_rms_norm),
        "sign_coherence": float((projections > 0).double().mean()) if mu_norm > 0 else 0.0,
        "mean_absmax": float(mu.abs().max()),
    }


def _energy_shares(tokens: int, mu, spike, tail, total_energy: float, k: int) -> dict:
    denom = _nonzero(total_energy)
    return {
        "spike_rank": k,
        "energy_mean": tokens * float(mu.square().sum()) / denom,
        "energy_spike": float(spike.square().sum()) / denom,
        "energy_tail": float(tail.square().sum()) / denom,
    }


# --------------------------------------------------------------------------- spectrum
def _svd_rows(tokens: int, max_rows: int, seed: int, device) -> torch.Tensor:
    if tokens <= max_rows:
        return torch.arange(tokens, device=device)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(tokens, generator=g)[:max_rows].sort().values.to(device)


def _top_right_singular(a: torch.Tensor, k: int, iters: int = 8, oversample: int = 8
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k right singular vectors (m x k) and squared singular values of ``a``.

    Small or nearly square problems: eigenvectors of the m x m Gram matrix (exact in float64 for the
    large singular values used here).  Otherwise seeded subspace iteration on a block of k + oversample
    vectors, then a Rayleigh-Ritz step: ~20 products with ``a`` instead of an O(m^3) eigensolve, and
    accurate wherever the top directions are well separated (where they are not, they carry no
    distinct meaning anyway and the captured energy is still within a hair of the optimum).
    """
    with torch.autocast(a.device.type, enabled=False):  # a callback may run under autocast: QR needs FP32
        return _top_right_singular_autocast_off(a, k, iters, oversample)


def _top_right_singular_autocast_off(a: torch.Tensor, k: int, iters: int, oversample: int):
    m = a.shape[1]
    k = min(k, m)
    width = min(m, k + oversample)
    if m <= 384 or 2 * width >= m:
        evals, evecs = torch.linalg.eigh(a.T @ a)  # ascending
        return evecs[:, -k:].flip(-1), evals[-k:].flip(-1).clamp(min=0)
    g = torch.Generator().manual_seed(1234)
    fast = a.float()  # the iteration only has to find the subspace; float32 halves its cost
    basis = torch.randn(m, width, generator=g).to(a.device)
    for _ in range(iters):
        basis, _ = torch.linalg.qr(fast.T @ (fast @ basis))
    basis = basis.to(a.dtype)
    projected = a @ basis  # Rayleigh-Ritz in the caller's precision
    evals, evecs = torch.linalg.eigh(projected.T @ projected)
    vectors = basis @ evecs
    return vectors[:, -k:].flip(-1), evals[-k:].flip(-1).clamp(min=0)


def _abs_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return 0.0
    return abs(float(a @ b)) / (na * nb)


# --------------------------------------------------------------------------- outliers
def _outlier_attribution(xs, mu, spike, tail, fraction: float) -> dict:
    """Over the top ``fraction`` of entries by |x|: how much of each entry is mean, spike and tail.

    ``outlier_<part>`` is the paper's share part_ij^2 / x_ij^2, averaged (the three need not add up
    to one: the parts can have opposite signs).  ``outlier_<part>_signed`` is part_ij / x_ij, which
    does add up to one; ``outlier_mean_dominant`` is the fraction of outliers whose largest part is
    the mean.
    """
    flat = xs.flatten()
    count = max(1, int(fraction * flat.numel()))
    idx = flat.abs().topk(count).indices
    rows, cols = idx // xs.shape[1], idx % xs.shape[1]
    value = flat[idx]
    parts = {"mean": mu[cols], "spike": spike[rows, cols], "tail": tail[rows, cols]}
    out: dict = {"outlier_count": count, "outlier_threshold": float(value.abs().min())}
    safe = torch.where(value == 0, torch.ones_like(value), value)
    for name, part in parts.items():
        out[f"outlier_{name}"] = float((part.square() / safe.square()).mean())
        out[f"outlier_{name}_signed"] = float((part / safe).mean())
    stacked = torch.stack([p.abs() for p in parts.values()])
    out["outlier_mean_dominant"] = float((stacked.argmax(dim=0) == 0).double().mean())
    return out


# --------------------------------------------------------------------------- quantization
def quantization_damage(x: torch.Tensor, fmt: str) -> dict:
    """FP4 error of x quantized in 1 x block chunks along channels, with and without the mean removed.

    Modes: "plain" Q(X); "mean_bf16" Q(X - 1 mu) + 1 bf16(mu) (Averis, default precision of the mean);
    "mean_fp4" Q(X - 1 mu) + 1 Q(mu) (the paper's text).  Per mode: relative error ||X^ - X|| / ||X||,
    SQNR in dB, the relative error of the token-centred part (how well the informative variation
    survives), the fraction of the quantized operand's non-zero entries flushed to zero, and the
    operand's per-block dynamic range.  ``error_explained_by_mean``: the share of the plain error's
    energy that removing the mean takes away (negative where removing it adds error).
    """
    if fmt not in FORMAT_BLOCKS:
        raise ValueError(f"unknown FP4 format {fmt!r}: use one of {', '.join(FORMAT_BLOCKS)}")
    block = FORMAT_BLOCKS[fmt]
    xf = x.float()
    mu = xf.double().mean(dim=0).float()
    residual = xf - mu
    q_plain, q_residual = _fake_quantize(xf, fmt), _fake_quantize(residual, fmt)
    x_energy = float(xf.double().square().sum())
    centred_energy = float(residual.double().square().sum())
    plain_operand = _operand_stats(xf, q_plain, block)
    residual_operand = _operand_stats(residual, q_residual, block)
    # Both mean-split modes quantize the same residual: only the added mean differs.
    errors = {"plain": q_plain - xf,
              "mean_bf16": (q_residual - residual) + (mu.to(torch.bfloat16).float() - mu),
              "mean_fp4": (q_residual - residual) + (_fake_quantize(mu[None], fmt)[0] - mu)}
    out: dict = {}
    for mode in MEAN_MODES:
        out[mode] = {**_error_stats(errors[mode], x_energy, centred_energy),
                     **(plain_operand if mode == "plain" else residual_operand)}
    out["error_explained_by_mean"] = error_explained_by_mean(out["plain"]["rel_error"], out["mean_bf16"]["rel_error"])
    return out


def error_explained_by_mean(plain_err: float, split_err: float) -> float:
    """The share of the plain FP4 error's energy that removing the mean takes away, from the two relative
    errors (negative where removing it adds error; 0 for an exact operand)."""
    return 1.0 - (split_err / plain_err) ** 2 if plain_err > 0 else 0.0


def _fake_quantize(x: torch.Tensor, fmt: str) -> torch.Tensor:
    return fake_quantize(x.contiguous(), fmt, pad=True, check_finite=False)


def _error_stats(err: torch.Tensor, x_energy: float, centred_energy: float) -> dict:
    """Whole and token-centred relative error; ||C e||^2 = ||e||^2 - l ||mean(e)||^2 needs no centred copy."""
    err = err.double()
    err_energy = float(err.square().sum())
    centred_err_energy = max(0.0, err_energy - err.shape[0] * float(err.mean(dim=0).square().sum()))
    return {
        "rel_error": math.sqrt(err_energy / _nonzero(x_energy)),
        "sqnr_db": _sqnr_db(x_energy, err_energy),
        "rel_error_centred": math.sqrt(centred_err_energy / _nonzero(centred_energy)),
    }


def _operand_stats(operand: torch.Tensor, q_operand: torch.Tensor, block: int) -> dict:
    """What FP4 does to the tensor it quantizes: non-zeros flushed to zero, per-block dynamic range."""
    nonzero = operand != 0
    flushed = int((nonzero & (q_operand == 0)).sum())
    return {"flush_to_zero": flushed / max(1, int(nonzero.sum())), **_block_dynamic_range(operand, block)}


def _sqnr_db(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return 10.0 * math.log10(signal / noise)


def _block_dynamic_range(operand: torch.Tensor, block: int) -> dict:
    """Median over blocks of log2(max|x| / min non-zero |x|) and of max|x| / rms (the crest factor).

    FP4 with one scale per block covers log2(6 / 0.5) = 3.6 binades: entries further below the block
    maximum are rounded coarsely or to zero.
    """
    blocks = _blocks(operand.abs(), block)
    amax = blocks.amax(dim=-1)
    inf = torch.tensor(float("inf"), device=blocks.device)
    amin = torch.where(blocks > 0, blocks, inf).amin(dim=-1)
    live = amax > 0
    if not bool(live.any()):
        return {"block_range_log2": 0.0, "block_crest": 0.0}
    rms = blocks.square().mean(dim=-1).sqrt()
    return {
        "block_range_log2": float(torch.log2(amax[live] / amin[live]).median()),
        "block_crest": float((amax[live] / rms[live]).median()),
    }


def _blocks(a: torch.Tensor, block: int) -> torch.Tensor:
    extra = (-a.shape[-1]) % block
    if extra:
        a = torch.nn.functional.pad(a, (0, extra))
    return a.unflatten(-1, (-1, block))


def _nonzero(v: float) -> float:
    return v if v != 0 else 1.0
