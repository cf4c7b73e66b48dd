"""The oracle itself, checked against a closed form and a brute-force materialised scan."""

import pytest
import torch

from ssmbench.errors import BadInput
from ssmbench.ops import available_backends, resolve_backend, selective_scan, selective_state_update
from ssmbench.ops.scan.counts import ScanShape, scan_bytes, scan_flops
from tests.helpers import assert_close


def materialised_scan(u, delta, A, B, C, D, z):
    """Independent formula: h_t = sum_{s<=t} exp(sum_{s<r<=t} dt_r A) dt_s B_s u_s (float64)."""
    dA_cum = torch.cumsum(delta[..., None] * A[None, :, None, :], dim=2)  # (b, d, L, N)
    L = u.shape[-1]
    ys = []
    for t in range(L):
        decay = torch.exp(dA_cum[:, :, t : t + 1] - dA_cum[:, :, : t + 1])  # (b,d,t+1,N)
        dbu = (delta[:, :, : t + 1] * u[:, :, : t + 1])[..., None]
        contrib = decay * dbu * B[:, None, :, : t + 1].transpose(-1, -2)
        h = contrib.sum(2)
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + u * D[None, :, None]
    return y * torch.nn.functional.silu(z)


def test_ref_matches_materialised_formula():
    b, d, L, n = 2, 3, 9, 4
    g = torch.Generator().manual_seed(1)
    u, delta, z = (torch.randn(b, d, L, generator=g, dtype=torch.float64) for _ in range(3))
    delta = delta.abs() * 0.3
    A = -torch.rand(d, n, generator=g, dtype=torch.float64)
    B, C = (torch.randn(b, n, L, generator=g, dtype=torch.float64) for _ in range(2))
    D = torch.randn(d, generator=g, dtype=torch.float64)
    out = selective_scan(u, delta, A, B, C, D, z, backend="ref")
    assert_close(out, materialised_scan(u, delta, A, B, C, D, z), 1e-12, "ref vs closed form")


def test_step_ref_equals_scan_ref():
    b, d, L, n = 2, 5, 7, 3
    u, delta, z = torch.randn(b, d, L), torch.randn(b, d, L), torch.randn(b, d, L)
    A = -torch.rand(d, n)
    B, C = torch.randn(b, n, L), torch.randn(b, n, L)
    D, bias = torch.randn(d), torch.randn(d)
    full, last = selective_scan(u, delta, A, B, C, D, z, bias, True, True, backend="ref")
    state = torch.zeros(b, d, n)
    outs = [
        selective_state_update(state, u[..., t], delta[..., t], A, B[..., t], C[..., t], D, z[..., t],
                               bias, True, backend="ref")
        for t in range(L)
    ]
    assert_close(torch.stack(outs, -1), full, 1e-6, "step vs scan")
    assert_close(state, last, 1e-6, "final state")


def test_backend_resolution_cpu():
    assert "ref" in available_backends("cpu") and "chunked" in available_backends("cpu")
    assert resolve_backend("auto", "cpu") == "chunked"
    with pytest.raises(BadInput):
        resolve_backend("nope", "cpu")


def test_counts_match_anchor():
    s = ScanShape(8, 1536, 2048, 16)
    # bf16 u, delta, z read and out written once: 4 x 50.3 MB; B, C 1 MB; about 202 MB in all
    assert 200e6 < scan_bytes(s, "fwd") < 204e6
    assert scan_flops(s, "fwd_bwd") == 3 * scan_flops(s, "fwd")
    with pytest.raises(ValueError):
        ScanShape(0, 1, 1, 1)
