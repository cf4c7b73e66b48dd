"""Rotary position embeddings (RoPE, rotate-half layout as in GPT-NeoX / LLaMA).

Angles are computed on the fly from integer positions, in float32: no buffers, so a model
built on the meta device or moved between devices needs nothing recomputed, and positions may
be a device tensor (CUDA-graph friendly decoding).
"""

from __future__ import annotations

import torch
from torch import Tensor


def rotary_cos_sin(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """positions: (T,) integer -> cos, sin: (T, head_dim) float32."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head dim, got {head_dim}")
    inv_freq = base ** (
        -torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )  # (head_dim / 2,)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, head_dim / 2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: (B, H, T, head_dim); cos, sin: (T, head_dim). Returns x rotated, in x's dtype."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)  # rotate_half(x)
    return (xf * cos + rotated * sin).to(x.dtype)
