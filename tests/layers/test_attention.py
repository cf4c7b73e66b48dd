"""Causal attention against a naive masked softmax; KV-cache decoding against the full forward."""

import math

import pytest
import torch

from ssmbench.layers.attention import CausalSelfAttention
from ssmbench.layers.rotary import apply_rotary, rotary_cos_sin
from tests.helpers import assert_close


def naive_attention(layer: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Explicit projections, rotary by complex rotation of pairs (i, i + hd/2), masked softmax."""
    B, T, D = x.shape
    H, hd = layer.n_heads, layer.head_dim
    q, k, v = (x @ layer.qkv.weight.T).split(D, dim=-1)
    q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
    if layer.rotary:
        pos = torch.arange(T, dtype=torch.float64)
        freqs = layer.rope_base ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        rot = torch.polar(torch.ones(T, hd // 2, dtype=torch.float64), pos[:, None] * freqs[None])

        def rotate(t: torch.Tensor) -> torch.Tensor:
            c = torch.complex(t[..., : hd // 2].double(), t[..., hd // 2 :].double()) * rot
            return torch.cat([c.real, c.imag], dim=-1).to(t.dtype)

        q, k = rotate(q), rotate(k)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # (B, H, T, T)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, D)
    return y @ layer.out_proj.weight.T


@pytest.mark.parametrize("rotary", [True, False])
def test_attention_matches_naive(rotary):
    layer = CausalSelfAttention(d_model=24, n_heads=3, rotary=rotary)
    x = torch.randn(2, 13, 24)
    assert_close(layer(x), naive_attention(layer, x), 1e-5, "attention vs naive")


def test_attention_is_causal():
    layer = CausalSelfAttention(d_model=16, n_heads=2)
    x = torch.randn(1, 9, 16)
    y = layer(x)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 4, 16)
    y2 = layer(x2)
    assert torch.allclose(y[:, :5], y2[:, :5], atol=1e-6)
    assert not torch.allclose(y[:, 5:], y2[:, 5:], atol=1e-3)


def test_rotary_scores_depend_only_on_offset():
    hd = 8
    q, k = torch.randn(1, 1, 1, hd), torch.randn(1, 1, 1, hd)
    scores = []
    for start in (0, 7, 100):
        cos, sin = rotary_cos_sin(torch.tensor([start, start + 3]), hd)
        qr = apply_rotary(q, cos[:1], sin[:1])
        kr = apply_rotary(k, cos[1:], sin[1:])
        scores.append((qr * kr).sum().item())
    assert scores[0] == pytest.approx(scores[1], rel=1e-5) == pytest.approx(scores[2], rel=1e-4)


def test_kv_cache_prefill_chunks_and_steps_match_forward():
    layer = CausalSelfAttention(d_model=32, n_heads=4)
    x = torch.randn(3, 11, 32)
    full = layer(x)
    cache = layer.allocate_inference_cache(3, 16)
    outs = [layer.prefill(x[:, :4], cache, 0), layer.prefill(x[:, 4:7], cache, 4)]
    outs += [layer.step(x[:, t], cache, t)[:, None] for t in range(7, 9)]
    # the static path (tensor positions, graph-capturable) continues the same cache
    outs += [layer.step(x[:, t], cache, torch.tensor(t))[:, None] for t in range(9, 11)]
    assert_close(torch.cat(outs, dim=1), full, 1e-5, "cached decoding vs forward")


def test_kv_cache_overflow_raises():
    layer = CausalSelfAttention(d_model=16, n_heads=2)
    cache = layer.allocate_inference_cache(1, 4)
    with pytest.raises(ValueError, match="holds 4 positions"):
        layer.prefill(torch.randn(1, 5, 16), cache)
