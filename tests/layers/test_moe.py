"""Switch MoE: grouped dispatch (bmm and grouped_mm) against a per-expert loop, values and grads."""

import math

import pytest
import torch

from ssmbench.layers.moe import SwitchMoE, _grouped_mm_fn
from tests.helpers import assert_close


def moe_loop_ref(m: SwitchMoE, x: torch.Tensor, drop: bool = True):
    """Plain Switch layer: a Python loop over experts, each taking its first `capacity` tokens."""
    flat = x.reshape(-1, m.d_model)
    N = flat.shape[0]
    probs = (flat @ m.router.weight.T).float().softmax(-1)
    gate, expert = probs.max(-1)
    capacity = math.ceil(m.capacity_factor * N / m.n_experts) if drop else N
    out = torch.zeros_like(flat)
    kept = torch.zeros(N, dtype=torch.bool)
    for e in range(m.n_experts):
        idx = (expert == e).nonzero()[:, 0][:capacity]  # first tokens in token order
        kept[idx] = True
        h = torch.relu(flat[idx] @ m.w_in[e].T)
        out = out.index_put((idx,), (h @ m.w_out[e].T) * gate[idx, None])
    frac = torch.bincount(expert, minlength=m.n_experts).float() / N
    lb = m.n_experts * (frac * probs.mean(0)).sum()
    return out.view(x.shape), lb, frac, 1 - kept.float().mean()


def _layer(dispatch: str, n_experts: int = 5, capacity_factor: float = 1.0) -> SwitchMoE:
    m = SwitchMoE(
        d_model=12, d_expert=20, n_experts=n_experts, capacity_factor=capacity_factor, dispatch=dispatch
    )
    with torch.no_grad():
        m.router.weight.normal_(std=1.0)  # decisive routing so that some experts overflow
    return m


@pytest.mark.parametrize("dispatch", ["bmm", "grouped_mm"])
@pytest.mark.parametrize("capacity_factor", [0.5, 1.0, 8.0])
def test_grouped_dispatch_matches_loop(dispatch, capacity_factor):
    if dispatch == "grouped_mm" and _grouped_mm_fn() is None:
        pytest.skip("this PyTorch has no grouped_mm")
    m = _layer(dispatch, capacity_factor=capacity_factor)
    x = torch.randn(3, 13, 12, requires_grad=True)  # 39 tokens over 5 experts: ragged groups
    y, stats = m(x)
    ref, lb, frac, dropped = moe_loop_ref(m, x)
    assert stats.dispatch == m.last_dispatch == dispatch
    assert_close(y, ref, 1e-5, "moe output")
    assert_close(stats.lb_loss, lb, 1e-6, "lb loss")
    assert torch.equal(stats.expert_fraction, frac)
    assert stats.dropped_fraction.item() == pytest.approx(dropped.item())
    if capacity_factor < 1:
        assert stats.dropped_fraction > 0
    dy = torch.randn_like(y)
    params = [x, m.router.weight, m.w_in, m.w_out]
    grads = torch.autograd.grad((y * dy).sum() + stats.lb_loss, params)
    ref_grads = torch.autograd.grad((ref * dy).sum() + lb, params)
    for name, g, r in zip(["x", "router", "w_in", "w_out"], grads, ref_grads, strict=True):
        assert_close(g, r, 1e-5, f"grad {name}")


def test_dropped_tokens_output_zero_and_capacity():
    m = _layer("bmm", n_experts=4, capacity_factor=0.25)
    assert m.capacity(100) == math.ceil(0.25 * 100 / 4)
    x = torch.randn(1, 40, 12)
    y, stats = m(x)
    zero_rows = (y[0].abs().sum(-1) == 0).float().mean()
    assert stats.capacity == 3
    assert zero_rows.item() == pytest.approx(stats.dropped_fraction.item())
    over = (stats.expert_fraction * 40 - 3).clamp(min=0).sum() / 40  # tokens beyond 3 slots per expert
    assert stats.dropped_fraction.item() == pytest.approx(over.item()) and over > 0


@pytest.mark.parametrize("dispatch", ["bmm", "grouped_mm"])
def test_eval_mode_keeps_every_token(dispatch):
    if dispatch == "grouped_mm" and _grouped_mm_fn() is None:
        pytest.skip("this PyTorch has no grouped_mm")
    m = _layer(dispatch, capacity_factor=0.2)
    x = torch.randn(2, 9, 12)
    assert m(x)[1].dropped_fraction.item() > 0  # training mode: the capacity binds
    y, stats = m.eval()(x)
    ref, *_ = moe_loop_ref(m, x, drop=False)
    assert stats.dropped_fraction.item() == 0 and stats.capacity == 0
    assert_close(y, ref, 1e-5, "moe without dropping")


@pytest.mark.parametrize("dispatch", ["bmm", "grouped_mm"])
def test_eval_output_does_not_depend_on_batching(dispatch):
    if dispatch == "grouped_mm" and _grouped_mm_fn() is None:
        pytest.skip("this PyTorch has no grouped_mm")
    m = _layer(dispatch, capacity_factor=1.0).eval()
    x = torch.randn(6, 13, 12)
    with torch.no_grad():
        whole = m(x)[0]
        one_by_one = torch.cat([m(x[i : i + 1])[0] for i in range(6)])
        by_three = torch.cat([m(x[i : i + 3])[0] for i in range(0, 6, 3)])
        token_by_token = torch.stack([m(x[:, t : t + 1])[0][:, 0] for t in range(13)], dim=1)
    for got, what in ((one_by_one, "batch 1"), (by_three, "batch 3"), (token_by_token, "one token")):
        assert_close(got, whole, 1e-6, f"{what} vs batch 6")


def test_router_runs_in_fp32_under_bf16_autocast():
    m = _layer("bmm")
    x = torch.randn(3, 13, 12)
    with torch.no_grad():
        ref = (x.reshape(-1, 12).double() @ m.router.weight.double().T).softmax(-1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            probs = m.router_probs(x.reshape(-1, 12))
            _, stats = m(x)
        bf16 = (x.reshape(-1, 12).bfloat16() @ m.router.weight.bfloat16().T).float().softmax(-1)
    assert probs.dtype == torch.float32
    assert (probs.double() - ref).abs().max() < 1e-6
    assert (bf16.double() - ref).abs().max() > 1e-4  # what a bf16 router would have got
    _, lb, frac, _ = moe_loop_ref(m, x)
    assert torch.equal(stats.expert_fraction, frac)
    assert_close(stats.lb_loss, lb, 1e-6, "lb loss under autocast")


def test_auto_dispatch_on_cpu_is_bmm():
    m = SwitchMoE(8, 16, 3)
    m(torch.randn(1, 4, 8))
    assert m.last_dispatch == "bmm"
    assert m.active_params() == 8 * 3 + 2 * 8 * 16
