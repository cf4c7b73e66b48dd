"""Decode step of the selective scan as one fused Triton kernel: one token, state updated in place.

Semantics of mamba_ssm's ``selective_state_update`` (the PyTorch oracle is ``state_update.ref``);
one kernel (no autograd) that reads and writes the state once. triton is a Linux-only
dependency: without it this module still imports, the dispatcher reports the triton backend
unavailable, and calling it raises.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable
from ssmbench.ops.checks import compute_dtype, state_update_shapes

HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def selective_state_update_kernel(
        state, x, dt, A, B, C, D, z, dt_bias, out,
        DIM, N, DIM_PER_GROUP,
        s_h_b, s_h_d, s_h_n, s_x_b, s_x_d, s_dt_b, s_dt_d, s_A_d, s_A_n,
        s_B_b, s_B_g, s_B_n, s_C_b, s_C_g, s_C_n, s_z_b, s_z_d, s_o_b, s_o_d,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    ):
        i_d, i_b = tl.program_id(0), tl.program_id(1)
        o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
        o_n = tl.arange(0, BLOCK_N)
        m_d = o_d < DIM
        m_dn = m_d[:, None] & (o_n < N)[None, :]
        i_g = o_d // DIM_PER_GROUP  # (BD,) the B/C group of each channel

        p_h = state + i_b * s_h_b + o_d[:, None] * s_h_d + o_n[None, :] * s_h_n
        b_h = tl.load(p_h, mask=m_dn, other=0).to(ACC)  # (BD, BN)
        b_x = tl.load(x + i_b * s_x_b + o_d * s_x_d, mask=m_d, other=0).to(ACC)
        b_dt = tl.load(dt + i_b * s_dt_b + o_d * s_dt_d, mask=m_d, other=0).to(ACC)
        if HAS_BIAS:
            b_dt += tl.load(dt_bias + o_d, mask=m_d, other=0).to(ACC)
        if SOFTPLUS:
            b_dt = tl.where(b_dt > 20.0, b_dt, tl.log(1.0 + tl.exp(tl.minimum(b_dt, 20.0))))
        b_A = tl.load(A + o_d[:, None] * s_A_d + o_n[None, :] * s_A_n, mask=m_dn, other=0).to(ACC)
        p_B = B + i_b * s_B_b + i_g[:, None] * s_B_g + o_n[None, :] * s_B_n
        p_C = C + i_b * s_C_b + i_g[:, None] * s_C_g + o_n[None, :] * s_C_n
        b_B = tl.load(p_B, mask=m_dn, other=0).to(ACC)
        b_C = tl.load(p_C, mask=m_dn, other=0).to(ACC)

        b_h = b_h * tl.exp(b_dt[:, None] * b_A) + (b_dt * b_x)[:, None] * b_B
        tl.store(p_h, b_h.to(state.dtype.element_ty), mask=m_dn)
        b_y = tl.sum(b_h * b_C, axis=1)  # (BD,)
        if HAS_D:
            b_y += b_x * tl.load(D + o_d, mask=m_d, other=0).to(ACC)
        if HAS_Z:
            b_z = tl.load(z + i_b * s_z_b + o_d * s_z_d, mask=m_d, other=0).to(ACC)
            b_y *= b_z * tl.sigmoid(b_z)
        tl.store(out + i_b * s_o_b + o_d * s_o_d, b_y.to(out.dtype.element_ty), mask=m_d)


def selective_state_update_triton(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
) -> Tensor:
    """One recurrent step as one Triton kernel (grid: channel blocks x batch); no autograd.

    state: (batch, dim, N), updated in place (any strides; fp32 recommended); x, dt, z:
    (batch, dim); A: (dim, N); B, C: (batch, N) or (batch, G, N); D, dt_bias: (dim,).
    Computes in fp32 (fp64 when state, x, dt or A is fp64). Returns out (batch, dim) in x's dtype.
    """
    batch, dim, N, groups = state_update_shapes(state, x, dt, A, B, C)
    B3 = B.unsqueeze(1) if B.dim() == 2 else B  # (batch, G, N)
    C3 = C.unsqueeze(1) if C.dim() == 2 else C
    if not HAS_TRITON:
        raise BackendUnavailable("the triton step needs the triton package")
    interpreting = triton_interpreting()
    if state.device.type != "cuda" and not interpreting:
        raise BackendUnavailable("the triton step needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    poison = os.environ.get("SSMBENCH_POISON_OUTPUTS") == "1"
    out = torch.full_like(x, float("nan")) if poison else torch.empty_like(x)
    block_d = 4 if interpreting else 16
    zz = z if z is not None else x
    grid = (triton.cdiv(dim, block_d), batch)
    selective_state_update_kernel[grid](
        state, x, dt, A, B3, C3, D if D is not None else x, zz, dt_bias if dt_bias is not None else x, out,
        dim, N, dim // groups,
        *state.stride(), *x.stride(), *dt.stride(), *A.stride(), *B3.stride(), *C3.stride(),
        *zz.stride(), *out.stride(),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus),
        ACC=tl.float64 if compute_dtype(state, x, dt, A) == torch.float64 else tl.float32,
        BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(N),
    )
    return out
