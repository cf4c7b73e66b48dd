"""Decode step of the causal depthwise conv1d in PyTorch: one new input column, state rolled in place.

Semantics of causal-conv1d's ``causal_conv1d_update``; the oracle of the Triton conv step
(``conv.triton_update``, whose docstring gives the formula).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssmbench.ops.checks import compute_dtype, conv_update_shapes


def causal_conv1d_update_ref(
    x: Tensor,
    conv_state: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
) -> Tensor:
    """One conv step in PyTorch. x: (batch, dim); conv_state: (batch, dim, state_len), updated in
    place; weight: (dim, width); bias: (dim,). Returns out (batch, dim) in x's dtype."""
    conv_update_shapes(x, conv_state, weight, bias, activation)
    ct = compute_dtype(x, conv_state, weight)
    width = weight.shape[1]
    seq = torch.cat([conv_state, x[:, :, None].to(conv_state.dtype)], dim=-1)  # (B, D, state_len + 1)
    conv_state.copy_(seq[:, :, 1:])
    y = (seq[:, :, -width:].to(ct) * weight.to(ct)).sum(-1)  # (B, D)
    if bias is not None:
        y = y + bias.to(ct)
    if activation is not None:
        y = F.silu(y)
    return y.to(x.dtype)
