"""Sequential selective scan: the oracle every other backend is checked against.

Computes in float32 (float64 when given float64), one time step at a time, never
materialising the (batch, dim, L, N) state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssmbench.ops.checks import compute_dtype


def expand_groups(M: Tensor, dim: int) -> Tensor:
    """B or C: (batch, N, L) -> (batch, 1, N, L); grouped (batch, G, N, L) -> (batch, dim, N, L)."""
    if M.dim() == 3:
        return M.unsqueeze(1)
    groups = M.shape[1]
    if dim % groups != 0:
        raise ValueError(f"dim {dim} is not divisible by the number of B/C groups {groups}")
    return M.repeat_interleave(dim // groups, dim=1)


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan, one step at a time.

    u, delta, z: (batch, dim, L); A: (dim, N); B, C: (batch, N, L) or (batch, G, N, L);
    D, delta_bias: (dim,). Returns out (batch, dim, L) in u's dtype, and with
    ``return_last_state`` the final state (batch, dim, N) in the compute dtype.
    """
    dtype_in = u.dtype
    ct = compute_dtype(u, delta, A, B, C)
    batch, dim, L = u.shape
    u_c = u.to(ct)
    dt = delta.to(ct)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    A_c = A.to(ct)
    B_c = expand_groups(B.to(ct), dim)  # (batch, dim or 1, N, L)
    C_c = expand_groups(C.to(ct), dim)
    h = u_c.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(L):
        dA = torch.exp(dt[:, :, t, None] * A_c)  # (batch, dim, N)
        h = dA * h + (dt[:, :, t] * u_c[:, :, t])[..., None] * B_c[..., t]
        ys.append((h * C_c[..., t]).sum(-1))  # (batch, dim)
    y = torch.stack(ys, dim=-1) if L > 0 else u_c.new_zeros(batch, dim, 0)
    if D is not None:
        y = y + u_c * D.to(ct)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    out = y.to(dtype_in)
    return (out, h) if return_last_state else out
