"""Decode step of the causal depthwise conv1d: one new input column, conv state rolled in place.

Semantics of causal-conv1d's ``causal_conv1d_update`` (the kernel mamba_ssm's decode step calls)
as one fused Triton kernel (roll + new column + depthwise conv + bias + SiLU; no autograd) that
reads and writes each state element once, one thread per channel; the PyTorch oracle is
``conv.ref``.

Shapes: x (batch, dim), the new column; conv_state (batch, dim, state_len) with
state_len >= width - 1, the last state_len inputs, oldest first; weight (dim, width); bias (dim,).
Over the sequence s = (conv_state ++ x) of state_len + 1 columns:
    out[b, d] = act(sum_k weight[d, k] * s[b, d, state_len + 1 - width + k] + bias[d])
and conv_state becomes s[..., 1:]. The new column is stored in (and convolved at) the state's
dtype; the sum is taken in fp32 (fp64 when x, conv_state or weight is fp64); out has x's dtype.
triton is a Linux-only dependency: without it this module still imports, and the triton function
raises BackendUnavailable.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable
from ssmbench.ops.checks import compute_dtype, conv_update_shapes

HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def causal_conv1d_update_kernel(
        x, state, w, bias, out,
        DIM,
        s_x_b, s_x_d, s_s_b, s_s_d, s_s_l, s_w_d, s_w_k, s_bias, s_o_b, s_o_d,
        STATE_LEN: tl.constexpr, WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
        ACC: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        i_d, i_b = tl.program_id(0), tl.program_id(1)
        o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
        m_d = o_d < DIM
        p_s = state + i_b * s_s_b + o_d * s_s_d  # (BD,) column 0 of each channel's state
        p_w = w + o_d * s_w_d
        b_x = tl.load(x + i_b * s_x_b + o_d * s_x_d, mask=m_d, other=0).to(state.dtype.element_ty)
        if HAS_BIAS:
            b_y = tl.load(bias + o_d * s_bias, mask=m_d, other=0).to(ACC)
        else:
            b_y = tl.zeros([BLOCK_D], dtype=ACC)
        # the window: state columns STATE_LEN + 1 - WIDTH .. STATE_LEN - 1, then the new column
        for k in tl.static_range(WIDTH - 1):
            b_s = tl.load(p_s + (STATE_LEN + 1 - WIDTH + k) * s_s_l, mask=m_d, other=0)
            b_y += b_s.to(ACC) * tl.load(p_w + k * s_w_k, mask=m_d, other=0).to(ACC)
        b_y += b_x.to(ACC) * tl.load(p_w + (WIDTH - 1) * s_w_k, mask=m_d, other=0).to(ACC)
        # shift left in ascending column order; the same thread owns all columns of a channel,
        # so each column is read before it is overwritten
        for i_l in tl.static_range(STATE_LEN - 1):
            tl.store(p_s + i_l * s_s_l, tl.load(p_s + (i_l + 1) * s_s_l, mask=m_d, other=0), mask=m_d)
        tl.store(p_s + (STATE_LEN - 1) * s_s_l, b_x, mask=m_d)
        if SILU:
            b_y = b_y * tl.sigmoid(b_y)
        tl.store(out + i_b * s_o_b + o_d * s_o_d, b_y.to(out.dtype.element_ty), mask=m_d)


def causal_conv1d_update_triton(
    x: Tensor,
    conv_state: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
) -> Tensor:
    """One conv step as one Triton kernel (grid: channel blocks x batch); no autograd.

    x: (batch, dim), any strides (a view of the in_proj output is fine); conv_state:
    (batch, dim, state_len), updated in place, any strides; weight: (dim, width); bias: (dim,).
    Returns out (batch, dim), contiguous, in x's dtype.
    """
    # bad input is BadInput on any machine
    batch, dim, state_len, width = conv_update_shapes(x, conv_state, weight, bias, activation)
    if not HAS_TRITON:
        raise BackendUnavailable("the triton conv step needs the triton package")
    interpreting = triton_interpreting()
    if conv_state.device.type != "cuda" and not interpreting:
        raise BackendUnavailable("the triton conv step needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    poison = os.environ.get("SSMBENCH_POISON_OUTPUTS") == "1"
    out = torch.empty((batch, dim), dtype=x.dtype, device=x.device)
    if poison:
        out.fill_(float("nan"))
    block_d = 8 if interpreting else 64  # the interpreter runs programs one by one
    bb = bias if bias is not None else weight
    grid = (triton.cdiv(dim, block_d), batch)
    causal_conv1d_update_kernel[grid](
        x, conv_state, weight, bb, out,
        dim,
        *x.stride(), *conv_state.stride(), *weight.stride(), bb.stride(0), *out.stride(),
        STATE_LEN=state_len, WIDTH=width, HAS_BIAS=bias is not None, SILU=activation is not None,
        ACC=tl.float64 if compute_dtype(x, conv_state, weight) == torch.float64 else tl.float32,
        BLOCK_D=block_d, num_warps=2,
    )  # fmt: skip
    return out
