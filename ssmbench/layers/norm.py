"""Normalisation layers for pre-norm residual stacks."""

from __future__ import annotations

from torch import nn

NORM_KINDS = ("layernorm", "rmsnorm")


def build_norm(d_model: int, eps: float = 1e-5, kind: str = "layernorm") -> nn.Module:
    """A norm over the last dimension (width ``d_model``): LayerNorm (the zoo's default) or RMSNorm."""
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps)
    if kind == "rmsnorm":
        return nn.RMSNorm(d_model, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")
