"""Decode step of the selective scan in PyTorch: one token, state updated in place.

Semantics of mamba_ssm's ``selective_state_update``; the oracle of the Triton step.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ssmbench.ops.checks import compute_dtype


def _group_expand(M: Tensor, dim: int) -> Tensor:
    """(batch, N) -> (batch, 1, N); (batch, G, N) -> (batch, dim, N)."""
    if M.dim() == 2:
        return M.unsqueeze(1)
    return M.repeat_interleave(dim // M.shape[1], dim=1)


def selective_state_update_ref(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
) -> Tensor:
    """One recurrent step.

    state: (batch, dim, N), updated in place; x, dt, z: (batch, dim); A: (dim, N);
    B, C: (batch, N) or (batch, G, N); D, dt_bias: (dim,). Returns out (batch, dim) in x's dtype.
    """
    ct = compute_dtype(state, x, dt, A)
    dim = x.shape[1]
    dt_c = dt.to(ct)
    if dt_bias is not None:
        dt_c = dt_c + dt_bias.to(ct)
    if dt_softplus:
        dt_c = F.softplus(dt_c)
    dA = (dt_c[..., None] * A.to(ct)).exp()  # (batch, dim, N)
    B_c = _group_expand(B.to(ct), dim)
    C_c = _group_expand(C.to(ct), dim)
    new_state = state.to(ct) * dA + (dt_c * x.to(ct))[..., None] * B_c
    state.copy_(new_state.to(state.dtype))
    y = (new_state * C_c).sum(-1)
    if D is not None:
        y = y + x.to(ct) * D.to(ct)
    if z is not None:
        y = y * F.silu(z.to(ct))
    return y.to(x.dtype)
