"""Fused kernels for one Mamba residual sub-layer's decode step at small batch (4 kernels per layer).

``x + Mamba(LayerNorm(x))`` for one token, as four Triton kernels instead of eight (norm, in_proj,
conv step, x_proj, dt_proj, state update, out_proj, residual add):

1. ``norm_linear``: LayerNorm prologue + in_proj GEMV -> xz (batch, 2 d_inner);
2. ``conv_xproj``: conv step (state rolled in place) + SiLU on a block of channels, and that
   block's share of x_proj -> xc (batch, d_inner) and split-K partials (S, batch, R + 2N) fp32;
3. ``ssm_update_xproj``: sums the partials (x_proj's output: dt_in, B, C), dt_proj GEMV on its
   channel block, bias + softplus, the state update, D skip and SiLU(z) gate -> y (batch, d_inner);
4. ``norm_linear`` again: out_proj GEMV + residual epilogue -> x + out_proj(y).

The GEMVs are small-M GEMMs on ``tl.dot`` (batch padded to 16 rows), so one program reads its
weight tile once for the whole batch. Intermediates that an unfused step rounds to the weights'
dtype (norm output, xz, conv output, x_proj and dt_proj outputs, y) are rounded the same way
here; the mixer output is added to the residual in fp32 and rounded once. The partial sums make
x_proj deterministic (no atomics). Triton only (CUDA, or the interpreter for tests); batch <= 16;
fp32 / fp16 / bf16.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from ssmbench.errors import BackendUnavailable, BadInput

HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    import triton
    import triton.language as tl

MAX_BATCH = 16
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def fused_decode_reason(x: Tensor) -> str | None:
    """Why the fused decode kernels cannot run on ``x`` (batch, d_model), or None when they can."""
    if not HAS_TRITON:
        return "triton is not installed"
    if x.device.type != "cuda" and not _interpreting():
        return "needs CUDA (or TRITON_INTERPRET=1)"
    if x.dim() != 2 or not 1 <= x.shape[0] <= MAX_BATCH:
        return f"batch must be 1..{MAX_BATCH}"
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} not supported"
    return None


def _require(x: Tensor) -> None:
    why = fused_decode_reason(x)
    if why is not None:
        raise BackendUnavailable(f"fused decode kernels: {why}")


def _dot_precision(dtype: torch.dtype) -> str:
    """'ieee' for fp32 (no TF32); 'f32' (operands cast to fp32, ieee) under the interpreter, whose
    dot mishandles bf16; else 'tf32' (ignored for fp16/bf16 operands)."""
    if _interpreting():
        return "f32"
    return "ieee" if dtype == torch.float32 else "tf32"


def gemv_shape(n: int) -> tuple[int, int, int, int]:
    """(BLOCK_N, BLOCK_K, num_warps, num_stages) of the GEMV on CUDA for n outputs (the fastest
    in benchmarks/gpu/profile_decode.py's sweep on an H100 at K 1792 -> 7168 and 3584 -> 1792)."""
    return (64, 128, 4, 4) if n >= 4096 else (16, 512, 4, 3)


if HAS_TRITON:

    @triton.jit
    def _dot(a, b, PREC: tl.constexpr):
        """a (M, K) @ b (K, N) accumulated in fp32."""
        if PREC == "f32":
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        return tl.dot(a, b, input_precision=PREC)

    @triton.jit
    def norm_linear_kernel(
        x, W, out, res, ln_w, ln_b,
        M, N, K, eps,
        s_x_m, s_x_k, s_w_n, s_w_k, s_o_m, s_o_n, s_r_m, s_r_n,
        LN: tl.constexpr, RES: tl.constexpr, PREC: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        pid = tl.program_id(0)
        o_m = tl.arange(0, BLOCK_M)
        m_m = o_m < M
        o_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        m_n = o_n < N
        # LayerNorm folded into the GEMV, one pass over x: LN(x) @ W.T =
        #   rstd * ((x * g) @ W.T - mean * (g @ W.T)) + b @ W.T, with the row sums of x and x^2
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        s1 = tl.zeros([BLOCK_M], dtype=tl.float32)
        s2 = tl.zeros([BLOCK_M], dtype=tl.float32)
        gw = tl.zeros([BLOCK_N], dtype=tl.float32)
        bw = tl.zeros([BLOCK_N], dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            o_k = k0 + tl.arange(0, BLOCK_K)
            m_k = o_k < K
            b_x = tl.load(
                x + o_m[:, None] * s_x_m + o_k[None, :] * s_x_k, mask=m_m[:, None] & m_k[None, :], other=0
            )  # (BM, BK)
            b_w = tl.load(
                W + o_n[:, None] * s_w_n + o_k[None, :] * s_w_k, mask=m_n[:, None] & m_k[None, :], other=0
            )  # (BN, BK)
            if LN:
                b_xf = b_x.to(tl.float32)
                s1 += tl.sum(b_xf, axis=1)
                s2 += tl.sum(b_xf * b_xf, axis=1)
                g = tl.load(ln_w + o_k, mask=m_k, other=0).to(tl.float32)
                b = tl.load(ln_b + o_k, mask=m_k, other=0).to(tl.float32)
                b_wf = b_w.to(tl.float32)
                gw += tl.sum(b_wf * g[None, :], axis=1)
                bw += tl.sum(b_wf * b[None, :], axis=1)
                b_x = b_xf * g[None, :]
            acc += _dot(b_x.to(b_w.dtype), tl.trans(b_w), PREC)
        if LN:
            mean = s1 / K
            rstd = 1.0 / tl.sqrt(tl.maximum(s2 / K - mean * mean, 0.0) + eps)
            acc = rstd[:, None] * (acc - mean[:, None] * gw[None, :]) + bw[None, :]
        m_o = m_m[:, None] & m_n[None, :]
        if RES:
            acc = acc.to(out.dtype.element_ty).to(tl.float32)  # the mixer output, in its dtype
            acc += tl.load(res + o_m[:, None] * s_r_m + o_n[None, :] * s_r_n, mask=m_o, other=0).to(
                tl.float32
            )
        tl.store(out + o_m[:, None] * s_o_m + o_n[None, :] * s_o_n, acc.to(out.dtype.element_ty), mask=m_o)

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
        b_p = _dot(b_xc.to(b_w.dtype), tl.trans(b_w), PREC)  # (BM, BNX) fp32
        tl.store(
            part + pid * s_p_s + o_m[:, None] * s_p_m + o_n[None, :] * s_p_n,
            b_p,
            mask=m_m[:, None] & m_n[None, :],
        )

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


def norm_linear(
    x: Tensor,
    weight: Tensor,
    norm_weight: Tensor | None = None,
    norm_bias: Tensor | None = None,
    eps: float = 1e-5,
    residual: Tensor | None = None,
    shape: tuple[int, int, int, int] | None = None,
) -> Tensor:
    """out = [residual +] [LayerNorm(x)] @ weight.T as one kernel.

    x: (M, K) with M <= 16; weight: (N, K); norm_weight, norm_bias: (K,) (both or neither);
    residual: (M, N). Returns (M, N) in x's dtype. shape: (BLOCK_N, BLOCK_K, warps, stages)."""
    _require(x)
    M, K = x.shape
    N = weight.shape[0]
    if weight.shape[1] != K or (residual is not None and tuple(residual.shape) != (M, N)):
        raise BadInput(f"norm_linear shapes: x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    ln = norm_weight is not None
    if ln and (norm_bias is None or norm_weight.shape != (K,) or norm_bias.shape != (K,)):
        raise BadInput("norm_linear wants norm_weight and norm_bias, both (K,)")
    out = torch.empty((M, N), dtype=x.dtype, device=x.device)
    bn, bk, warps, stages = (16, 16, 4, 1) if _interpreting() else (shape or gemv_shape(N))
    r = residual if residual is not None else out
    lw = norm_weight if ln else x
    lb = norm_bias if ln else x
    norm_linear_kernel[(triton.cdiv(N, bn),)](
        x, weight, out, r, lw, lb,
        M, N, K, float(eps),
        *x.stride(), *weight.stride(), *out.stride(), *r.stride(),
        LN=ln, RES=residual is not None, PREC=_dot_precision(weight.dtype),
        BLOCK_M=MAX_BATCH, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return out


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
    _require(x)
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
    bd = 16 if _interpreting() else (block_d or 32)
    S = triton.cdiv(D, bd)
    xc = torch.empty((M, D), dtype=x.dtype, device=x.device)
    part = torch.empty((S, M, NX), dtype=torch.float32, device=x.device)
    conv_xproj_kernel[(S,)](
        x, conv_state, conv_weight, conv_bias, x_proj_weight, xc, part,
        M, D, NX,
        *x.stride(), *conv_state.stride(), *conv_weight.stride(), *x_proj_weight.stride(), *xc.stride(),
        *part.stride(),
        STATE_LEN=L, WIDTH=width, PREC=_dot_precision(x_proj_weight.dtype),
        BLOCK_M=MAX_BATCH, BLOCK_D=bd, BLOCK_NX=max(16, triton.next_power_of_2(NX)), num_warps=4,
    )  # fmt: skip
    return xc, part


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
    _require(xc)
    S, M, NX = part.shape
    Din, N = A.shape
    R = dt_rank
    if NX != R + 2 * N or tuple(state.shape) != (M, Din, N) or tuple(dt_proj_weight.shape) != (Din, R):
        raise BadInput(
            f"ssm_update_xproj shapes: part {tuple(part.shape)}, state {tuple(state.shape)}, "
            f"dt_proj {tuple(dt_proj_weight.shape)}, A {tuple(A.shape)}"
        )
    bd = 16 if _interpreting() else (block_d or 64)
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
