"""Causal attention at the scan's width and length: the other side of the crossover (Mamba Fig. 8).

Width dim = n_heads * head_dim, length L = seqlen. ``step`` is one decode token
attending over a KV cache of length L.

FLOP convention (as FlashAttention's benchmarks): causal forward 4*B*H*L^2*hd / 2
(two matmuls of 2*L^2*hd FLOPs per head, half of them masked away); forward+backward is
3.5x forward (backward = 2.5x forward: five matmuls instead of two). A decode step is
4*B*H*L*hd. Minimum bytes: q, k, v read and o written once (forward); forward+backward
adds reading q, k, v, o, dout and writing dq, dk, dv; a decode step reads the K and V
cache, q, and writes o. The softmax statistics are not counted.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from ssmbench.device import dtype_bytes, parse_dtype
from ssmbench.profile.problem import Problem, generator, max_rel_err, randn
from ssmbench.profile.spec import RowSpec

# Tried in this order; the first one that runs the problem is timed and recorded.
SDPA_ORDER = {
    "cuda": (
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.MATH,
    ),
    "cpu": (SDPBackend.FLASH_ATTENTION, SDPBackend.MATH),
}
# Largest (batch * heads * L * L) score matrix the float64 oracle may build; beyond it the check
# runs on batch 1 and a shorter L.
ORACLE_MAX_SCORES = 1 << 26
ORACLE_SEQLEN = 512


def attention_flops(spec: RowSpec) -> int:
    b, d, L, _ = spec.shape
    if spec.mode == "step":
        return 4 * b * d * L
    fwd = 4 * b * d * L * L // 2
    return fwd if spec.mode == "fwd" else int(3.5 * fwd)


def attention_bytes(spec: RowSpec) -> int:
    b, d, L, _ = spec.shape
    e = dtype_bytes(spec.dtype)
    if spec.mode == "step":
        return 2 * b * d * L * e + 2 * b * d * e
    one = b * d * L * e
    return 4 * one if spec.mode == "fwd" else 4 * one + 8 * one


def unsupported_reason(spec: RowSpec) -> str | None:
    if spec.dim % spec.head_dim:
        return f"dim {spec.dim} is not a multiple of head_dim {spec.head_dim}"
    return None


def _qkv(spec: RowSpec, device: torch.device, seed: int, grad: bool) -> tuple[Tensor, Tensor, Tensor]:
    b, d, L, _ = spec.shape
    h, hd = d // spec.head_dim, spec.head_dim
    dtype = parse_dtype(spec.dtype)
    gen = generator(device, seed)
    q_len = 1 if spec.mode == "step" else L
    q = randn((b, h, q_len, hd), gen, device, dtype)  # (B, H, Lq, hd)
    k = randn((b, h, L, hd), gen, device, dtype)  # (B, H, L, hd)
    v = randn((b, h, L, hd), gen, device, dtype)
    return q.requires_grad_(grad), k.requires_grad_(grad), v.requires_grad_(grad)


def _call(spec: RowSpec, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    # A single decode query sees the whole cache: no mask.
    return F.scaled_dot_product_attention(q, k, v, is_causal=spec.mode != "step")


def _context(backend: SDPBackend) -> AbstractContextManager[Any]:
    return sdpa_kernel([backend])


def _pick_backend(spec: RowSpec, q: Tensor, k: Tensor, v: Tensor) -> SDPBackend:
    errors = []
    for backend in SDPA_ORDER.get(q.device.type, (SDPBackend.MATH,)):
        try:
            with _context(backend):
                out = _call(spec, q, k, v)
                if spec.mode == "fwd_bwd":
                    torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
            return backend
        except RuntimeError as e:
            errors.append(f"{backend.name}: {str(e).splitlines()[0]}")
    raise RuntimeError("no SDPA backend runs this problem (" + "; ".join(errors) + ")")


def attention_problem(spec: RowSpec, device: torch.device, seed: int) -> Problem:
    """The timed SDPA call for ``spec`` (inputs built here, outside the timed region)."""
    grad = spec.mode == "fwd_bwd"
    q, k, v = _qkv(spec, device, seed, grad)
    backend = _pick_backend(spec, q, k, v)
    name = f"sdpa-{backend.name.lower()}"
    if not grad:
        return Problem(run=lambda: _call(spec, q, k, v), backend=name, context=lambda: _context(backend))
    dout = randn(tuple(q.shape), generator(device, seed + 1), device, q.dtype)

    def fwd_bwd() -> object:
        out = _call(spec, q, k, v)
        return torch.autograd.grad(out, (q, k, v), dout)

    return Problem(run=fwd_bwd, backend=name, context=lambda: _context(backend))


def _oracle(spec: RowSpec, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Plain attention in q's dtype (float64 for the check): softmax(q k^T / sqrt(hd) + causal mask) v."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, Lq, L)
    if spec.mode != "step":
        L = scores.shape[-1]
        mask = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def check_spec(spec: RowSpec) -> RowSpec:
    """The shape the oracle checks on: the row's own, or batch 1 and a shorter L when too big."""
    b, d, L, n = spec.shape
    heads = d // spec.head_dim
    q_len = 1 if spec.mode == "step" else L
    if b * heads * q_len * L <= ORACLE_MAX_SCORES:
        return spec
    short = min(L, ORACLE_SEQLEN)
    return RowSpec(spec.impl, spec.mode, 1, d, short, n, spec.dtype, spec.head_dim)


def attention_rel_err(spec: RowSpec, device: torch.device, seed: int, backend: str) -> tuple[float, RowSpec]:
    """Relative error of SDPA (with the timed backend) against the float64 oracle, on fresh inputs.

    In fwd_bwd mode the worst of the output and the q, k, v gradients.
    """
    cspec = check_spec(spec)
    grad = spec.mode == "fwd_bwd"
    q, k, v = _qkv(cspec, device, seed, grad)
    sdpa = getattr(SDPBackend, backend.removeprefix("sdpa-").upper())
    with _context(sdpa):
        out = _call(cspec, q, k, v)
    leaves = tuple(t.detach().double().requires_grad_(grad) for t in (q, k, v))
    ref = _oracle(cspec, *leaves)
    if not grad:
        return max_rel_err([(out, ref)]), cspec
    dout = randn(tuple(out.shape), generator(device, seed + 1), device, out.dtype)
    grads = torch.autograd.grad(out, (q, k, v), dout)
    ref_grads = torch.autograd.grad(ref, leaves, dout.double())
    pairs = [(out, ref), *zip(grads, ref_grads, strict=True)]
    return max_rel_err(pairs), cspec
