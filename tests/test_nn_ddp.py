"""DDP on two CPU processes (gloo): the Averis mean optionally all-reduced across ranks."""

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import averis
from averis import recipes
from averis.transforms import mean_split
from averis.transforms.mean import CHUNK, column_stats


def _data(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(24, 32, generator=g) + 3 * rank, torch.randn(24, 32, generator=g)


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x, target = _data(rank)
        everyone = torch.cat([_data(r)[0] for r in range(world)])
        local_mu = mean_split(x)[0]
        global_mu = mean_split(x, all_reduce=True)[0]
        # 2 whole chunks a rank: the global mean is the concatenated batch's fixed-order mean bit for bit
        big = [torch.randn(2 * CHUNK, 32, generator=torch.Generator().manual_seed(7 + r)) * 10 + r
               for r in range(world)]
        exact_mu = mean_split(big[rank], all_reduce=True)[0]
        exact_want = column_stats(torch.cat(big)).mean.reshape(1, -1)
        exact_cols = mean_split(big[rank].T.contiguous(), dim=1, all_reduce=True)[0]  # the channels-first layout
        torch.manual_seed(0)
        plain = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        recipe = recipes.get("averis").replace(mean_all_reduce=True).with_identity_quantizers()
        quant = averis.quantize_model(copy.deepcopy(plain), recipe)
        grads = {}
        for name, model in (("plain", plain), ("quant", quant)):
            ddp = nn.parallel.DistributedDataParallel(model)
            nn.functional.mse_loss(ddp(x), target).backward()
            grads[name] = [p.grad.clone() for p in model.parameters()]
        real = averis.quantize_model(nn.Linear(32, 32), recipes.get("averis").replace(mean_all_reduce=True))
        ddp = nn.parallel.DistributedDataParallel(real)  # keep a reference: its reducer must outlive backward
        ddp(x).pow(2).mean().backward()
        torch.save({"local_mu": local_mu, "global_mu": global_mu, "want_mu": everyone.mean(0, keepdim=True),
                    "exact_mu": exact_mu, "exact_want": exact_want, "exact_cols": exact_cols,
                    "grads": grads, "real": real.weight.grad}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears the group down while the other is still in a collective
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_with_all_reduced_mean(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for r in (r0, r1):
        torch.testing.assert_close(r["global_mu"], r["want_mu"])  # 24 rows a rank: equal to rounding
        assert torch.equal(r["exact_mu"], r["exact_want"])
        assert torch.equal(r["exact_cols"], r["exact_want"].T)
        # identity quantizers + a cross-rank mean: the four-term wgrad still gives the exact gradient
        for a, b in zip(r["grads"]["quant"], r["grads"]["plain"]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert torch.isfinite(r["real"]).all()
    assert torch.equal(r0["global_mu"], r1["global_mu"]), "every rank gets the same global mean"
    assert not torch.equal(r0["local_mu"], r1["local_mu"]), "per-rank means differ"
    assert torch.equal(r0["real"], r1["real"]), "DDP averages the quantized gradients: ranks agree"
