"""Causal depthwise conv1d in plain PyTorch, the oracle of the Triton kernels beside it.

``causal_conv1d_ref``: over a whole sequence (causal-conv1d's ``causal_conv1d_fn`` contract for x,
weight, bias, activation; oracle of ``conv.triton``), written as the sum of width shifted products,
not through F.conv1d, so that a test against nn.Conv1d checks something:

    y[b, d, t] = act(bias[d] + sum_k weight[d, k] * x[b, d, t - (width - 1) + k]),  x = 0 before t = 0

``causal_conv1d_update_ref``: one decode step, one new input column, state rolled in place
(causal-conv1d's ``causal_conv1d_update``; oracle of ``conv.triton_update``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssmbench.ops.checks import compute_dtype, conv_shapes, conv_update_shapes


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


def causal_conv1d_ref(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None
) -> Tensor:
    """Causal depthwise conv1d (+ SiLU) in fp32 (fp64 when any input is fp64); differentiable.

    x: (batch, dim, L); weight: (dim, width); bias: (dim,). Returns y (batch, dim, L) in x's dtype.
    """
    conv_shapes(x, weight, bias, activation)
    ct = compute_dtype(x, weight, bias)
    width, L = weight.shape[1], x.shape[2]
    xp = F.pad(x.to(ct), (width - 1, 0))  # (batch, dim, width - 1 + L): zeros before t = 0
    w = weight.to(ct)
    y = w[:, 0, None] * xp[..., :L]
    for k in range(1, width):
        y = y + w[:, k, None] * xp[..., k : k + L]
    if bias is not None:
        y = y + bias.to(ct)[:, None]
    if activation is not None:
        y = F.silu(y)
    return y.to(x.dtype)
