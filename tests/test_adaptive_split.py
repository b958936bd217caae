"""The adaptive mean split (recipe option mean_threshold, built-in averis_adaptive).

Per layer call and source (X, dY): split iff the mean ratio R, estimated from the column statistics (sum, max,
min), is at least the threshold, decided on the device.
A source that does not split must be quantized exactly as nvfp4 quantizes it, one that splits exactly as
averis does (zero tolerance), the decisions are counted in the layer's ``averis_splits`` buffer, and nothing
synchronises with the host.
"""

import copy
import math

import pytest
import torch
from torch import nn

import averis
from averis import recipes
from averis.nn import split_counts, split_fractions_by_site
from averis.qgemm.operand import SourceStats, decide_split

pytestmark = pytest.mark.usefixtures("one_thread")


def _with_mean(shape, seed, mean=6.0):
    """A common per-channel shift far above the spread: removing it shrinks the amax a lot."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) + mean * (1 + torch.rand(shape[-1], generator=g))


def _outliers(shape, seed):
    """Zero-mean noise with a few large outliers of both signs: the mean is tiny, removing it changes nothing."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    flat = x.view(-1)
    idx = torch.randperm(flat.numel(), generator=g)[:6]
    flat[idx] = torch.tensor([40.0, -40.0, 35.0, -38.0, 42.0, -41.0])
    return x


def _estimated_r(x):
    """The rule's statistic, written independently on the float64 tensor: R = sqrt(sum mu^2 / (sum mu^2 +
    sum sigma^2)), each channel's sigma its range over the expected range of n normal draws, 2 sqrt(2 ln n)."""
    x = x.double().reshape(-1, x.shape[-1])
    mu = x.mean(0)
    sigma = (x.amax(0) - x.amin(0)) / (2 * math.sqrt(2 * math.log(x.shape[0])))
    return math.sqrt(float(mu.square().sum() / (mu.square().sum() + sigma.square().sum())))


def _want_split(x, threshold=0.3):
    return _estimated_r(x) >= threshold


@pytest.mark.parametrize("make, splits", [(_with_mean, True), (_outliers, False)])
def test_decision_on_constructed_inputs(make, splits):
    x = make((64, 48), seed=3)
    assert _want_split(x) is splits
    stats = SourceStats()
    decide_split(x, 0.3, stats)
    assert stats.split.dtype == torch.bool and stats.split.ndim == 0 and bool(stats.split) is splits
    if splits:  # the mean and the residual amax of the split, exactly those of the column statistics
        cs = averis.qgemm.column_stats(x)
        assert torch.equal(stats.mean, cs.mean) and torch.equal(stats.residual_amax, cs.residual_amax)
    else:  # a zero mean and X's own amax: plain quantization of X
        assert torch.equal(stats.mean, torch.zeros(48)) and torch.equal(stats.residual_amax, x.abs().amax())


def test_threshold_moves_the_decision():
    x = _with_mean((64, 48), seed=4, mean=0.3)  # a moderate mean: splits at a low threshold only
    ratio = _estimated_r(x)
    assert 0.05 < ratio < 0.95
    for threshold in (ratio * 0.99, ratio * 1.01):
        stats = SourceStats()
        decide_split(x, threshold, stats)
        assert bool(stats.split) is (ratio >= threshold)


def _layer(recipe, seed=0):
    torch.manual_seed(seed)
    root = nn.ModuleDict({"mlp": nn.ModuleDict({"up_proj": nn.Linear(64, 96)})})
    averis.quantize_model(root, recipe)
    return root["mlp"]["up_proj"]


def _run(layer, x, dy):
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(dy)
    return y.detach(), x.grad, layer.weight.grad, layer.bias.grad


CASES = {  # X source, dY source -> (X splits, dY splits)
    "both": (_with_mean((48, 64), 1), _with_mean((48, 96), 2), True, True),
    "neither": (_outliers((48, 64), 1), _outliers((48, 96), 2), False, False),
    "x_only": (_with_mean((48, 64), 1), _outliers((48, 96), 2), True, False),
    "dy_only": (_outliers((48, 64), 1), _with_mean((48, 96), 2), False, True),
}


@pytest.mark.parametrize("exact_gemm", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_no_split_equals_nvfp4_and_split_equals_averis_bit_for_bit(case, autocast, exact_gemm):
    x, dy, split_x, split_dy = CASES[case]
    assert (_want_split(x), _want_split(dy)) == (split_x, split_dy)
    dy = dy.bfloat16() if autocast else dy
    with averis.use_backend("torch", exact_gemm=exact_gemm), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        got = _run(_layer("averis_adaptive"), x, dy)
        ref = {(sx, sd): _run(_layer(r), x, dy) for (sx, sd), r in {(True, True): "averis", (False, False): "nvfp4",
                                                                  (True, False): "averis_act",
                                                                  (False, True): "averis_grad"}.items()}
    want = ref[(split_x, split_dy)]
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    # the references differ, so the comparison above could fail
    assert not torch.equal(ref[(True, True)][0], ref[(False, False)][0])
    assert not torch.equal(ref[(True, True)][1], ref[(False, False)][1])


def test_counters_count_training_steps_not_evaluation():
    layer = _layer("averis_adaptive")
    assert torch.equal(layer.averis_splits, torch.zeros(4, dtype=torch.int64))
    steps = ["both", "neither", "x_only", "both", "dy_only"]
    for case in steps:
        x, dy, *_ = CASES[case]
        _run(layer, x, dy)
    with torch.no_grad():
        layer(CASES["both"][0])  # evaluation: decides, does not count
    n = len(steps)
    want = [n, sum(CASES[c][2] for c in steps), n, sum(CASES[c][3] for c in steps)]
    assert layer.averis_splits.tolist() == want == [5, 3, 5, 3]
    counts = split_counts(nn.ModuleDict({"mlp": nn.ModuleDict({"up_proj": layer})}))
    assert counts == {"mlp.up_proj": {"site": "mlp_in", "x_calls": 5, "x_splits": 3, "dy_calls": 5, "dy_splits": 3}}
    assert split_fractions_by_site(counts) == {"mlp_in": {"x": 0.6, "dy": 0.6}}


def test_only_adaptive_layers_have_counters():
    assert "averis_splits" not in dict(_layer("averis").named_buffers())
    act_only = _layer(recipes.get("averis_act").replace(mean_threshold=0.8))
    x, dy, *_ = CASES["both"]
    _run(act_only, x, dy)
    assert act_only.averis_splits.tolist() == [1, 1, 0, 0]  # dY is not split by this recipe: never decided


def test_no_host_sync_on_the_training_path(monkeypatch):
    """A host read of a tensor value (.item(), bool(), tolist(), float()) anywhere in a step fails it."""
    layer = _layer("averis_adaptive")
    x, dy, *_ = CASES["x_only"]

    def refuse(*_args, **_kw):
        raise AssertionError("host sync on the training path")

    for name in ("item", "__bool__", "tolist", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    _run(layer, x, dy)
    monkeypatch.undo()
    assert layer.averis_splits.tolist() == [1, 1, 1, 0]


def test_compile_fullgraph_matches_eager_and_counts():
    torch.manual_seed(0)
    model = averis.quantize_model(nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64)), "averis_adaptive")
    saved = copy.deepcopy(model.state_dict())
    inputs = [CASES[c][0] for c in ("both", "neither", "both")]

    def steps(m):
        out = []
        for x in inputs:
            y = m(x)
            y.pow(2).mean().backward()
            out.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
            for p in model.parameters():
                p.grad = None
        return out

    eager = steps(model)
    eager_counts = [b.clone() for n, b in model.named_buffers() if n.endswith("averis_splits")]
    model.load_state_dict(saved)
    compiled = steps(torch.compile(model, backend="aot_eager", fullgraph=True))
    counts = [b for n, b in model.named_buffers() if n.endswith("averis_splits")]
    for (y, g), (yc, gc) in zip(eager, compiled):
        assert torch.equal(y, yc) and all(torch.equal(a, b) for a, b in zip(g, gc))
    assert all(torch.equal(a, b) for a, b in zip(eager_counts, counts))
    assert counts[0].tolist()[:2] == [3, 2]  # the first layer's X: split, not, split


def test_counters_are_buffers_saved_and_restored():
    layer = _layer("averis_adaptive")
    x, dy, *_ = CASES["both"]
    _run(layer, x, dy)
    root = nn.ModuleDict({"mlp": nn.ModuleDict({"up_proj": layer})})
    sd = copy.deepcopy(root.state_dict())
    assert sd["mlp.up_proj.averis_splits"].tolist() == [1, 1, 1, 1]
    fresh = _layer("averis_adaptive")
    fresh_root = nn.ModuleDict({"mlp": nn.ModuleDict({"up_proj": fresh})})
    buf = fresh.averis_splits
    fresh_root.load_state_dict(sd)
    assert fresh.averis_splits is buf and buf.tolist() == [1, 1, 1, 1]  # in place: a CUDA graph keeps its address
    plain = averis.nn.plain_state_dict(sd)
    assert not any(k.endswith(("averis_splits", "averis_rng")) for k in plain)
    fresh_root.load_state_dict(plain)  # a state_dict without the counters keeps the current ones
    assert buf.tolist() == [1, 1, 1, 1]
    averis.dequantize_model(fresh_root)
    assert "averis_splits" not in dict(fresh.named_buffers())


def test_rng_kept_leaves_the_split_counters_as_they_were():
    """A pass inside rng_kept (a CUDA graph's warm-up, an analysis forward) is not a training step: it moves
    neither the split counters nor the random streams; the same pass outside counts."""
    layer = _layer("averis_adaptive")
    x, dy, *_ = CASES["both"]
    root = nn.ModuleDict({"mlp": nn.ModuleDict({"up_proj": layer})})
    with averis.nn.rng_kept(root):
        _run(layer, x, dy)
    assert layer.averis_splits.tolist() == [0, 0, 0, 0]
    rng = layer.averis_rng.clone()
    _run(layer, x, dy)
    assert layer.averis_splits.tolist() == [1, 1, 1, 1]
    assert not torch.equal(layer.averis_rng, rng)


def test_trainer_logs_split_fractions_and_a_resume_keeps_the_counters(tmp_path):
    """The trainer writes per-site fractions at evaluation steps and per-layer counts to summary.json; a run
    stopped after one step and resumed ends with the counters of the run that went straight through."""
    import json

    from test_train import tiny

    from averis.train import Trainer

    sets = ["recipe=averis_adaptive", "train.max_steps=4", "train.eval_every=2"]
    straight = Trainer(tiny(tmp_path, "a", *sets)).fit()
    first = Trainer(tiny(tmp_path, "b", *sets, "train.time_limit_s=1e-9")).fit()
    assert first["status"] == "stopped" and first["step"] == 1
    resumed = Trainer(tiny(tmp_path, "b", *sets), resume=True).fit()
    assert resumed["split_counts"] == straight["split_counts"]
    counts = straight["split_counts"]
    assert len(counts) == 2 * 7 and all(c["x_calls"] == 4 and c["dy_calls"] == 4 for c in counts.values())
    assert set(straight["split_fractions"]) == {"attn_in", "o_proj", "mlp_in", "down_proj"}
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["split_counts"] == counts
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert "split_x/attn_in" in records[1] and "split_x/attn_in" not in records[0]
    assert records[-1]["split_dy/down_proj"] == straight["split_fractions"]["down_proj"]["dy"]
