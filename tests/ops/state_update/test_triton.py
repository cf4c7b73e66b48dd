"""The Triton decode step against the reference step, and step-by-step decoding against
the full scan."""

import pytest
import torch

from ssmbench.ops import selective_scan, selective_state_update
from ssmbench.ops.state_update.ref import selective_state_update_ref
from ssmbench.ops.state_update.triton import selective_state_update_triton
from tests.helpers import assert_close
from tests.ops.scan_cases import NAMES, Case, make_inputs


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("groups,options", [(0, True), (3, True), (0, False)])
def test_step_triton_matches_ref(dtype, groups, options, device):
    g = torch.Generator().manual_seed(groups + 2 * options)
    b, d, n = 3, 9, 5

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).to(device)

    state = rnd(b, d, n)
    x, dt, z = rnd(b, d), rnd(b, d), rnd(b, d)
    A = -torch.rand(d, n, generator=g, dtype=dtype).to(device)
    B, C = (rnd(b, n), rnd(b, n)) if groups == 0 else (rnd(b, groups, n), rnd(b, groups, n))
    D, bias = rnd(d), rnd(d)
    extra = dict(D=D, z=z, dt_bias=bias, dt_softplus=True) if options else {}
    ref_state = state.clone()
    y_ref = selective_state_update_ref(ref_state, x, dt, A, B, C, **extra)
    y = selective_state_update_triton(state, x, dt, A, B, C, **extra)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert_close(y, y_ref, tol, "step out")
    assert_close(state, ref_state, tol, "state updated in place")


def test_step_on_a_strided_cache_slice(device):
    # the state of one layer inside a larger cache (batch, dim, N, layers): not contiguous
    f64 = dict(dtype=torch.float64, device=device)
    cache = torch.randn(2, 7, 4, 3, **f64)
    state = cache[..., 1]
    ref = state.clone()
    x, dt = torch.randn(2, 7, **f64), torch.rand(2, 7, **f64)
    A = -torch.rand(7, 4, **f64)
    B, C = torch.randn(2, 4, **f64), torch.randn(2, 4, **f64)
    untouched = cache[..., [0, 2]].clone()
    y = selective_state_update_triton(state, x, dt, A, B, C)
    y_ref = selective_state_update_ref(ref, x, dt, A, B, C)
    assert_close(y, y_ref, 1e-12, "out")
    assert_close(cache[..., 1], ref, 1e-12, "state written through the view")
    assert torch.equal(cache[..., [0, 2]], untouched)


def test_steps_equal_the_full_scan(device):
    case = Case(2, 6, 13, 4, groups=2, dtype=torch.float32)
    x = make_inputs(case, seed=21, device=device)
    full, last = selective_scan(*[x[k] for k in NAMES], True, True, backend="triton")
    state = torch.zeros(case.batch, case.dim, case.N, device=device)
    outs = []
    for t in range(case.L):
        step_in = [x["u"][..., t], x["delta"][..., t], x["A"], x["B"][..., t], x["C"][..., t]]
        outs.append(selective_state_update(state, *step_in, x["D"], x["z"][..., t], x["delta_bias"], True,
                                           backend="triton"))
    assert_close(torch.stack(outs, -1), full, 1e-5, "steps vs scan")
    assert_close(state, last, 1e-5, "final state")


def test_step_bf16_inputs_fp32_state(device):
    g = torch.Generator().manual_seed(5)
    b, d, n = 2, 8, 16
    state = torch.randn(b, d, n, generator=g).to(device)
    x, dt, z = (torch.randn(b, d, generator=g).to(torch.bfloat16).to(device) for _ in range(3))
    A = -torch.rand(d, n, generator=g).to(device)
    B, C = (torch.randn(b, n, generator=g).to(torch.bfloat16).to(device) for _ in range(2))
    ref_state = state.clone()
    y_ref = selective_state_update_ref(ref_state, x, dt, A, B, C, z=z, dt_softplus=True)
    y = selective_state_update_triton(state, x, dt, A, B, C, z=z, dt_softplus=True)
    assert y.dtype == torch.bfloat16
    assert_close(y, y_ref, 1e-2, "bf16 out")
    assert_close(state, ref_state, 1e-5, "fp32 state")
