"""Causal multi-head self-attention with rotary embeddings and a KV cache for decoding.

Training and prefill go through ``F.scaled_dot_product_attention`` (flash / memory-efficient
kernels where PyTorch has them). Decoding writes one key/value per step into a preallocated
``KVCache`` and attends over the filled prefix.

Positions during decoding are either a Python int (the cost of a step grows with the
position, as it really does) or a 0-dim device tensor (the static path: every step attends over
the whole buffer under a mask, so its shapes never change and it can be captured in a CUDA graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmbench.layers.rotary import apply_rotary, rotary_cos_sin


@dataclass
class KVCache:
    """Keys and values of one attention layer: k, v (batch, n_heads, max_seqlen, head_dim)."""

    k: Tensor
    v: Tensor

    @property
    def max_seqlen(self) -> int:
        return self.k.shape[2]

    def reset(self) -> None:
        self.k.zero_()
        self.v.zero_()


class CausalSelfAttention(nn.Module):
    """x: (B, T, d_model) -> (B, T, d_model). 4 * d_model^2 parameters (no biases).

    rotary: apply RoPE to queries and keys (turn off for models with learned positions).
    """

    def __init__(self, d_model: int, n_heads: int, rope_base: float = 10000.0, rotary: bool = True) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.rope_base = rope_base
        self.rotary = rotary
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj.weight._residual_out = True  # type: ignore[attr-defined]

    def _project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, T, D), positions: (T,) -> q, k, v: (B, H, T, hd), rotary applied."""
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, hd)
        if self.rotary:
            cos, sin = rotary_cos_sin(positions, self.head_dim, self.rope_base)  # (T, hd)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def _merge(self, y: Tensor) -> Tensor:
        """y: (B, H, T, hd) -> (B, T, D) through the output projection."""
        B, _, T, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(B, T, self.d_model))

    def forward(self, x: Tensor) -> Tensor:
        positions = torch.arange(x.shape[1], device=x.device)
        q, k, v = self._project(x, positions)
        return self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def allocate_inference_cache(
        self,
        batch_size: int,
        max_seqlen: int,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> KVCache:
        """Zeroed keys/values for ``max_seqlen`` positions, in the layer's dtype by default."""
        w = self.qkv.weight
        shape = (batch_size, self.n_heads, max_seqlen, self.head_dim)
        kw = {"dtype": dtype or w.dtype, "device": device or w.device}
        return KVCache(k=torch.zeros(shape, **kw), v=torch.zeros(shape, **kw))

    def prefill(self, x: Tensor, cache: KVCache, offset: int = 0) -> Tensor:
        """x: (B, T, D) at positions offset..offset+T-1; writes their keys/values. -> (B, T, D)."""
        B, T, _ = x.shape
        end = offset + T
        if end > cache.max_seqlen:
            raise ValueError(f"cache holds {cache.max_seqlen} positions, prefill needs {end}")
        q, k, v = self._project(x, torch.arange(offset, end, device=x.device))
        cache.k[:B, :, offset:end] = k
        cache.v[:B, :, offset:end] = v
        if offset == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # query i (position offset + i) sees keys 0..offset + i: a bottom-right causal mask
            rows = torch.arange(offset, end, device=x.device)[:, None]
            mask = torch.arange(end, device=x.device)[None, :] <= rows  # (T, end)
            y = F.scaled_dot_product_attention(q, cache.k[:B, :, :end], cache.v[:B, :, :end], attn_mask=mask)
        return self._merge(y)

    def step(self, x: Tensor, cache: KVCache, pos: int | Tensor) -> Tensor:
        """x: (B, D), one token at position ``pos`` (int, or 0-dim long tensor for the static
        path). Writes its key/value and attends over positions 0..pos. -> (B, D)."""
        B = x.shape[0]
        pos_t = pos.reshape(1) if isinstance(pos, Tensor) else torch.arange(pos, pos + 1, device=x.device)
        q, k, v = self._project(x[:, None], pos_t)  # each (B, H, 1, hd)
        if isinstance(pos, Tensor):
            cache.k[:B].index_copy_(2, pos_t, k)
            cache.v[:B].index_copy_(2, pos_t, v)
            mask = (torch.arange(cache.max_seqlen, device=x.device) <= pos_t)[None, :]  # (1, S)
            y = F.scaled_dot_product_attention(q, cache.k[:B], cache.v[:B], attn_mask=mask)
        else:
            if pos >= cache.max_seqlen:
                raise ValueError(f"cache holds {cache.max_seqlen} positions, step is at {pos}")
            cache.k[:B, :, pos] = k[:, :, 0]
            cache.v[:B, :, pos] = v[:, :, 0]
            y = F.scaled_dot_product_attention(q, cache.k[:B, :, : pos + 1], cache.v[:B, :, : pos + 1])
        return self._merge(y)[:, 0]

    def flops_per_token(self, seq_len: int) -> int:
        """Forward FLOPs per token: 2 per projection weight plus 4 * seq_len * d_model for the
        scores and the weighted sum over the full context (no halving for the causal mask)."""
        weights = self.qkv.weight.numel() + self.out_proj.weight.numel()
        return 2 * weights + 4 * seq_len * self.d_model
