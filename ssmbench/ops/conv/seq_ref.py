"""Causal depthwise conv1d over a whole sequence in plain PyTorch: the oracle of
``ssmbench.ops.conv.triton`` (causal-conv1d's ``causal_conv1d_fn`` contract for x, weight, bias,
activation).

    y[b, d, t] = act(bias[d] + sum_k weight[d, k] * x[b, d, t - (width - 1) + k]),  x = 0 before t = 0

x: (batch, dim, L), any strides; weight: (dim, width); bias: (dim,); act: None, or SiLU
('silu' and 'swish' are the same function). Written as the sum of width shifted products, not
through F.conv1d, so that a test against nn.Conv1d checks something.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ssmbench.errors import BadInput
from ssmbench.ops.scan.ref import compute_dtype

ACTIVATIONS = (None, "silu", "swish")


def check_conv_inputs(x: Tensor, weight: Tensor, bias: Tensor | None, activation: str | None) -> None:
    """BadInput unless x (batch, dim, L >= 1), weight (dim, width >= 1), bias (dim,) agree, sit on
    one device, and the activation is known."""
    if activation not in ACTIVATIONS:
        raise BadInput(f"unknown activation {activation!r}; choose from None, 'silu', 'swish'")
    if x.dim() != 3 or weight.dim() != 2:
        raise BadInput(
            f"causal conv1d wants x (batch, dim, L) and weight (dim, width); "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    dim, width = weight.shape
    if x.shape[1] != dim or width < 1 or x.shape[2] < 1:
        raise BadInput(
            f"causal conv1d shapes disagree: x {tuple(x.shape)}, weight {tuple(weight.shape)} "
            "(x's dim must be weight's, width and L at least 1)"
        )
    if bias is not None and tuple(bias.shape) != (dim,):
        raise BadInput(f"causal conv1d bias must be ({dim},), got {tuple(bias.shape)}")
    if any(t is not None and t.device != x.device for t in (weight, bias)):
        raise BadInput("causal conv1d: x, weight and bias must be on one device")


def causal_conv1d_ref(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None
) -> Tensor:
    """Causal depthwise conv1d (+ SiLU) in fp32 (fp64 when any input is fp64); differentiable.

    x: (batch, dim, L); weight: (dim, width); bias: (dim,). Returns y (batch, dim, L) in x's dtype.
    """
    check_conv_inputs(x, weight, bias, activation)
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
