"""The oracle itself, checked against a closed form and a brute-force materialised scan."""

import torch

from ssmbench.ops import selective_scan
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
