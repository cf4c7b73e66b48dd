"""Fused decode kernel: [residual +] [LayerNorm(x)] @ W.T as one small-M GEMM (batch <= 16).

Serves in_proj (LayerNorm prologue) and out_proj (residual epilogue) of the fused decode step.
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
            acc += dot(b_x.to(b_w.dtype), tl.trans(b_w), PREC)
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


def gemv_shape(n: int) -> tuple[int, int, int, int]:
    """(BLOCK_N, BLOCK_K, num_warps, num_stages) of the GEMV on CUDA for n outputs (the fastest
    in benchmarks/gpu/profile_decode.py's sweep on an H100 at K 1792 -> 7168 and 3584 -> 1792)."""
    return (64, 128, 4, 4) if n >= 4096 else (16, 512, 4, 3)


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
    require_fused(x)
    M, K = x.shape
    N = weight.shape[0]
    if weight.shape[1] != K or (residual is not None and tuple(residual.shape) != (M, N)):
        raise BadInput(f"norm_linear shapes: x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    ln = norm_weight is not None
    if ln and (norm_bias is None or norm_weight.shape != (K,) or norm_bias.shape != (K,)):
        raise BadInput("norm_linear wants norm_weight and norm_bias, both (K,)")
    out = torch.empty((M, N), dtype=x.dtype, device=x.device)
    bn, bk, warps, stages = (16, 16, 4, 1) if triton_interpreting() else (shape or gemv_shape(N))
    r = residual if residual is not None else out
    lw = norm_weight if ln else x
    lb = norm_bias if ln else x
    norm_linear_kernel[(triton.cdiv(N, bn),)](
        x, weight, out, r, lw, lb,
        M, N, K, float(eps),
        *x.stride(), *weight.stride(), *out.stride(), *r.stride(),
        LN=ln, RES=residual is not None, PREC=dot_precision(weight.dtype),
        BLOCK_M=MAX_BATCH, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return out
