"""The reference decode step, checked against the reference scan it steps through."""

import torch

from ssmbench.ops import selective_scan, selective_state_update
from tests.helpers import assert_close


def test_step_ref_equals_scan_ref():
    b, d, L, n = 2, 5, 7, 3
    u, delta, z = torch.randn(b, d, L), torch.randn(b, d, L), torch.randn(b, d, L)
    A = -torch.rand(d, n)
    B, C = torch.randn(b, n, L), torch.randn(b, n, L)
    D, bias = torch.randn(d), torch.randn(d)
    full, last = selective_scan(u, delta, A, B, C, D, z, bias, True, True, backend="ref")
    state = torch.zeros(b, d, n)
    outs = [
        selective_state_update(
            state, u[..., t], delta[..., t], A, B[..., t], C[..., t], D, z[..., t], bias, True, backend="ref"
        )
        for t in range(L)
    ]
    assert_close(torch.stack(outs, -1), full, 1e-6, "step vs scan")
    assert_close(state, last, 1e-6, "final state")
