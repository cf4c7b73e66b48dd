"""Residual add + LayerNorm in plain PyTorch, the oracle of ``norm.triton``.

    s = residual + x            (in residual's dtype; s = residual without x)
    out = LayerNorm(s) * weight + bias   (computed in fp32, fp64 for fp64 inputs)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssmbench.errors import BadInput
from ssmbench.ops.checks import compute_dtype


def norm_shapes(x: Tensor | None, residual: Tensor, weight: Tensor, bias: Tensor | None) -> int:
    """The input check of every backend: x (when given) and residual (..., D) alike, weight and
    bias (D,). Returns D."""
    D = residual.shape[-1]
    if x is not None and x.shape != residual.shape:
        raise BadInput(f"x {tuple(x.shape)} and residual {tuple(residual.shape)} differ")
    if weight.shape != (D,) or (bias is not None and bias.shape != (D,)):
        raise BadInput(f"norm weight and bias must be ({D},), got {tuple(weight.shape)}")
    return D


def add_layer_norm_ref(
    x: Tensor | None,
    residual: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    eps: float = 1e-5,
    out_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """x: (..., D) or None; residual: (..., D); weight, bias: (D,). Returns (out (..., D) in
    out_dtype (default: residual's), s = residual + x (..., D) in residual's dtype); differentiable."""
    norm_shapes(x, residual, weight, bias)
    s = residual if x is None else (residual + x).to(residual.dtype)
    ct = compute_dtype(s, weight, bias)
    out = F.layer_norm(s.to(ct), (s.shape[-1],), weight.to(ct), None if bias is None else bias.to(ct), eps)
    return out.to(out_dtype or residual.dtype), s
