"""Fused decode kernel: the selective state update fed by x_proj's split-K partials, with the
dt_proj GEMV, its bias and softplus, the D skip and the SiLU(z) gate inside.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BadInput
from ssmbench.ops.decode.common import HAS_TRITON, require_fused

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def ssm_update_xproj_kernel(
        part, Wdt, dt_bias, state, xc, z, A, Dskip, y,
        S, DIM, R, N,
        s_p_s, s_p_m, s_p_n, s_wd_d, s_wd_r, s_h_b, s_h_d, s_h_n, s_x_m, s_x_d, s_z_m, s_z_d,
        s_A_d, s_A_n, s_y_m, s_y_d,
        BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        i_d, i_b = tl.program_id(0), tl.program_id(1)
        o_s = tl.arange(0, BLOCK_S)
        m_s = o_s < S
        o_r = tl.arange(0, BLOCK_R)
        m_r = o_r < R
        o_n = tl.arange(0, BLOCK_N)
        m_n = o_n < N
        o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
        m_d = o_d < DIM
        m_dn = m_d[:, None] & m_n[None, :]
        wdt = Wdt.dtype.element_ty  # x_proj/dt_proj outputs are rounded to the weights' dtype
        p_p = part + o_s[:, None] * s_p_s + i_b * s_p_m
        b_dtin = tl.sum(
            tl.load(p_p + o_r[None, :] * s_p_n, mask=m_s[:, None] & m_r[None, :], other=0), axis=0
        )
        b_B = tl.sum(
            tl.load(p_p + (R + o_n)[None, :] * s_p_n, mask=m_s[:, None] & m_n[None, :], other=0), axis=0
        )
        b_C = tl.sum(
            tl.load(p_p + (R + N + o_n)[None, :] * s_p_n, mask=m_s[:, None] & m_n[None, :], other=0), axis=0
        )
        b_dtin = b_dtin.to(wdt).to(tl.float32)  # (BR,)
        b_B = b_B.to(wdt).to(tl.float32)  # (BN,)
        b_C = b_C.to(wdt).to(tl.float32)
        b_w = tl.load(
            Wdt + o_d[:, None] * s_wd_d + o_r[None, :] * s_wd_r, mask=m_d[:, None] & m_r[None, :], other=0
        ).to(tl.float32)  # (BD, BR)
        b_dt = tl.sum(b_w * b_dtin[None, :], axis=1).to(wdt).to(tl.float32)  # (BD,) dt_proj output
        b_dt += tl.load(dt_bias + o_d, mask=m_d, other=0).to(tl.float32)
        b_dt = tl.where(b_dt > 20.0, b_dt, tl.log(1.0 + tl.exp(tl.minimum(b_dt, 20.0))))  # softplus
        p_h = state + i_b * s_h_b + o_d[:, None] * s_h_d + o_n[None, :] * s_h_n
        b_h = tl.load(p_h, mask=m_dn, other=0).to(tl.float32)  # (BD, BN)
        b_x = tl.load(xc + i_b * s_x_m + o_d * s_x_d, mask=m_d, other=0).to(tl.float32)
        b_A = tl.load(A + o_d[:, None] * s_A_d + o_n[None, :] * s_A_n, mask=m_dn, other=0).to(tl.float32)
        b_h = b_h * tl.exp(b_dt[:, None] * b_A) + (b_dt * b_x)[:, None] * b_B[None, :]
        tl.store(p_h, b_h.to(state.dtype.element_ty), mask=m_dn)
        b_y = tl.sum(b_h * b_C[None, :], axis=1)  # (BD,)
        b_y += b_x * tl.load(Dskip + o_d, mask=m_d, other=0).to(tl.float32)
        b_z = tl.load(z + i_b * s_z_m + o_d * s_z_d, mask=m_d, other=0).to(tl.float32)
        b_y *= b_z * tl.sigmoid(b_z)
        tl.store(y + i_b * s_y_m + o_d * s_y_d, b_y.to(y.dtype.element_ty), mask=m_d)


def ssm_update_xproj(
    part: Tensor,
    dt_rank: int,
    dt_proj_weight: Tensor,
    dt_bias: Tensor,
    state: Tensor,
    xc: Tensor,
    z: Tensor,
    A: Tensor,
    D: Tensor,
    block_d: int | None = None,
) -> Tensor:
    """Selective state update fed by x_proj's partials; dt_proj inside; softplus; D; SiLU(z) gate.

    part: (S, M, R + 2N) from ``conv_xproj``; dt_proj_weight: (D_in, R); dt_bias, D: (D_in,);
    state: (M, D_in, N) updated in place; xc, z: (M, D_in); A: (D_in, N) fp32.
    Returns y (M, D_in) in xc's dtype."""
    require_fused(xc)
    S, M, NX = part.shape
    Din, N = A.shape
    R = dt_rank
    if NX != R + 2 * N or tuple(state.shape) != (M, Din, N) or tuple(dt_proj_weight.shape) != (Din, R):
        raise BadInput(
            f"ssm_update_xproj shapes: part {tuple(part.shape)}, state {tuple(state.shape)}, "
            f"dt_proj {tuple(dt_proj_weight.shape)}, A {tuple(A.shape)}"
        )
    bd = 16 if triton_interpreting() else (block_d or 64)
    y = torch.empty((M, Din), dtype=xc.dtype, device=xc.device)
    ssm_update_xproj_kernel[(triton.cdiv(Din, bd), M)](
        part, dt_proj_weight, dt_bias, state, xc, z, A, D, y,
        S, Din, R, N,
        *part.stride(), *dt_proj_weight.stride(), *state.stride(), *xc.stride(), *z.stride(),
        *A.stride(), *y.stride(),
        BLOCK_S=triton.next_power_of_2(S), BLOCK_D=bd, BLOCK_R=triton.next_power_of_2(R),
        BLOCK_N=triton.next_power_of_2(N), num_warps=4,
    )  # fmt: skip
    return y
