"""Fused decode kernel: conv step (state rolled in place) + SiLU on a block of channels, and that
block's share of x_proj as split-K partials (summed by ``ssm_update_xproj``, no atomics).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BadInput
from ssmbench.ops.decode.common import HAS_TRITON, MAX_BATCH, dot_precision, require_fused

if HAS_TRITON:
    import triton
    import triton.language as tl

    from ssmbench.ops.decode.common import dot

    @triton.jit
    def conv_xproj_kernel(
        xz, state, cw, cb, W, xc, part,
        M, D, NX,
        s_x_m, s_x_d, s_s_b, s_s_d, s_s_l, s_cw_d, s_cw_k, s_w_n, s_w_d, s_c_m, s_c_d,
        s_p_s, s_p_m, s_p_n,
        STATE_LEN: tl.constexpr, WIDTH: tl.constexpr, PREC: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_NX: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        o_m = tl.arange(0, BLOCK_M)
        o_d = pid * BLOCK_D + tl.arange(0, BLOCK_D)
        m_m = o_m < M
        m_d = o_d < D
        m_md = m_m[:, None] & m_d[None, :]
        p_s = state + o_m[:, None] * s_s_b + o_d[None, :] * s_s_d  # (BM, BD) column 0
        b_x = tl.load(xz + o_m[:, None] * s_x_m + o_d[None, :] * s_x_d, mask=m_md, other=0)
        b_x = b_x.to(state.dtype.element_ty)
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        acc += tl.load(cb + o_d, mask=m_d, other=0).to(tl.float32)[None, :]
        for k in tl.static_range(WIDTH - 1):
            b_s = tl.load(p_s + (STATE_LEN + 1 - WIDTH + k) * s_s_l, mask=m_md, other=0)
            acc += (
                b_s.to(tl.float32)
                * tl.load(cw + o_d * s_cw_d + k * s_cw_k, mask=m_d, other=0).to(tl.float32)[None, :]
            )
        acc += (
            b_x.to(tl.float32)
            * tl.load(cw + o_d * s_cw_d + (WIDTH - 1) * s_cw_k, mask=m_d, other=0).to(tl.float32)[None, :]
        )
        # roll the state: every column is read before any is written (a barrier between)
        for i_l in tl.static_range(STATE_LEN - 1):
            b_next = tl.load(p_s + (i_l + 1) * s_s_l, mask=m_md, other=0)
            tl.debug_barrier()
            tl.store(p_s + i_l * s_s_l, b_next, mask=m_md)
            tl.debug_barrier()
        tl.store(p_s + (STATE_LEN - 1) * s_s_l, b_x, mask=m_md)
        b_xc = (acc * tl.sigmoid(acc)).to(xc.dtype.element_ty)  # (BM, BD) SiLU(conv), x's dtype
        tl.store(xc + o_m[:, None] * s_c_m + o_d[None, :] * s_c_d, b_xc, mask=m_md)
        # this block's share of x_proj: (BM, BD) @ (BD, NX)
        o_n = tl.arange(0, BLOCK_NX)
        m_n = o_n < NX
        b_w = tl.load(
            W + o_n[:, None] * s_w_n + o_d[None, :] * s_w_d, mask=m_n[:, None] & m_d[None, :], other=0
        )
        b_p = dot(b_xc.to(b_w.dtype), tl.trans(b_w), PREC)  # (BM, BNX) fp32
        tl.store(
            part + pid * s_p_s + o_m[:, None] * s_p_m + o_n[None, :] * s_p_n,
            b_p,
            mask=m_m[:, None] & m_n[None, :],
        )


def conv_xproj(
    x: Tensor,
    conv_state: Tensor,
    conv_weight: Tensor,
    conv_bias: Tensor,
    x_proj_weight: Tensor,
    block_d: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Conv step (SiLU, state rolled in place) and x_proj split over channel blocks.

    x: (M, D) any strides; conv_state: (M, D, L) with L >= width - 1; conv_weight: (D, width);
    conv_bias: (D,); x_proj_weight: (NX, D). Returns xc (M, D) in x's dtype and partials
    (S, M, NX) fp32 whose sum over S is x_proj(xc) (before rounding)."""
    require_fused(x)
    M, D = x.shape
    L, width = conv_state.shape[2], conv_weight.shape[1]
    NX = x_proj_weight.shape[0]
    if (
        conv_state.shape[:2] != (M, D)
        or conv_weight.shape[0] != D
        or width - 1 > L
        or (x_proj_weight.shape[1] != D)
    ):
        raise BadInput(
            f"conv_xproj shapes: x {tuple(x.shape)}, conv_state {tuple(conv_state.shape)}, "
            f"conv_weight {tuple(conv_weight.shape)}, x_proj {tuple(x_proj_weight.shape)}"
        )
    bd = 16 if triton_interpreting() else (block_d or 32)
    S = triton.cdiv(D, bd)
    xc = torch.empty((M, D), dtype=x.dtype, device=x.device)
    part = torch.empty((S, M, NX), dtype=torch.float32, device=x.device)
    conv_xproj_kernel[(S,)](
        x, conv_state, conv_weight, conv_bias, x_proj_weight, xc, part,
        M, D, NX,
        *x.stride(), *conv_state.stride(), *conv_weight.stride(), *x_proj_weight.stride(), *xc.stride(),
        *part.stride(),
        STATE_LEN=L, WIDTH=width, PREC=dot_precision(x_proj_weight.dtype),
        BLOCK_M=MAX_BATCH, BLOCK_D=bd, BLOCK_NX=max(16, triton.next_power_of_2(NX)), num_warps=4,
    )  # fmt: skip
    return xc, part
