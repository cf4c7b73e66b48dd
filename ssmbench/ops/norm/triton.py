"""Residual add + LayerNorm in Triton: forward and backward kernels, autograd, public function
(the contract of ``norm.ref.add_layer_norm_ref``; mamba_ssm's ``layer_norm_fn`` with a residual
and residual_in_fp32).

    s = residual + x,   out = (s - mean(s)) * rstd(s) * weight + bias

Forward: one program per row (BLOCK_D >= D columns): reads x and residual once, writes s (in the
residual's dtype, fp32 in the LM) and out straight in the compute dtype (bf16 under autocast),
keeping mean and rstd (fp32) for the backward. Unfused, the same work is an add, a LayerNorm in
fp32 and a cast, each a pass over the activations, and three more in the backward.

Backward: each program takes a block of rows; per row, with xhat = (s - mean) * rstd and
g = dout * weight, ds = rstd * (g - mean(g) - xhat * mean(g * xhat)) + ds_next (the gradient
that reached s from its later uses); ds is written once per input that needs it (x's dtype and
the residual's). The program's dweight = sum dout * xhat and dbias = sum dout go to its own
slot, summed on the host in a fixed order: deterministic, no atomics.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable
from ssmbench.ops.buffers import new_output
from ssmbench.ops.checks import compute_dtype
from ssmbench.ops.norm.ref import norm_shapes

# backward: about this many programs (each writes a dweight/dbias partial sum), at most
# MAX_ROWS_PER_PROGRAM rows each
BWD_PROGRAMS = 1024
MAX_ROWS_PER_PROGRAM = 64


@triton.jit
def add_layer_norm_fwd_kernel(
    x, res, w, b, out, res_out, mean, rstd,
    D, eps,
    HAS_X: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i_r = tl.program_id(0).to(tl.int64)
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    b_s = tl.load(res + i_r * D + o_d, mask=m_d, other=0).to(ACC)
    if HAS_X:
        b_s += tl.load(x + i_r * D + o_d, mask=m_d, other=0).to(ACC)
        b_s = b_s.to(res_out.dtype.element_ty).to(ACC)  # s as it is stored, as the reference sees it
        tl.store(res_out + i_r * D + o_d, b_s.to(res_out.dtype.element_ty), mask=m_d)
    b_mean = tl.sum(b_s, axis=0) / D
    b_c = tl.where(m_d, b_s - b_mean, 0.0)
    b_rstd = 1.0 / tl.sqrt(tl.sum(b_c * b_c, axis=0) / D + eps)
    tl.store(mean + i_r, b_mean)
    tl.store(rstd + i_r, b_rstd)
    b_y = b_c * b_rstd * tl.load(w + o_d, mask=m_d, other=0).to(ACC)
    if HAS_BIAS:
        b_y += tl.load(b + o_d, mask=m_d, other=0).to(ACC)
    tl.store(out + i_r * D + o_d, b_y.to(out.dtype.element_ty), mask=m_d)


@triton.jit
def add_layer_norm_bwd_kernel(
    s, w, mean, rstd, dout, ds_next, dx, dres, dw_part, db_part,
    D, N_ROWS, ROWS,
    HAS_DS_NEXT: tl.constexpr, WRITE_DX: tl.constexpr, WRITE_DRES: tl.constexpr, ACC: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    i_p = tl.program_id(0)
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    b_w = tl.load(w + o_d, mask=m_d, other=0).to(ACC)
    b_dw = tl.zeros([BLOCK_D], dtype=ACC)
    b_db = tl.zeros([BLOCK_D], dtype=ACC)
    for i in range(ROWS):
        i_r = (i_p * ROWS + i).to(tl.int64)
        if i_r < N_ROWS:
            p_row = i_r * D + o_d
            b_rstd = tl.load(rstd + i_r)
            b_xhat = (tl.load(s + p_row, mask=m_d, other=0).to(ACC) - tl.load(mean + i_r)) * b_rstd
            b_xhat = tl.where(m_d, b_xhat, 0.0)
            b_do = tl.load(dout + p_row, mask=m_d, other=0).to(ACC)
            b_g = b_do * b_w
            c1 = tl.sum(b_g * b_xhat, axis=0) / D
            c2 = tl.sum(b_g, axis=0) / D
            b_ds = (b_g - (b_xhat * c1 + c2)) * b_rstd
            if HAS_DS_NEXT:
                b_ds += tl.load(ds_next + p_row, mask=m_d, other=0).to(ACC)
            if WRITE_DX:
                tl.store(dx + p_row, b_ds.to(dx.dtype.element_ty), mask=m_d)
            if WRITE_DRES:
                tl.store(dres + p_row, b_ds.to(dres.dtype.element_ty), mask=m_d)
            b_dw += b_do * b_xhat
            b_db += b_do
    tl.store(dw_part + i_p * D + o_d, b_dw, mask=m_d)
    tl.store(db_part + i_p * D + o_d, b_db, mask=m_d)


def _acc(ct: torch.dtype) -> tl.dtype:
    return tl.float64 if ct == torch.float64 else tl.float32


def _warps(block_d: int) -> int:
    """Warps per row: about 8 elements per thread, 1 to 8 warps."""
    return max(1, min(8, block_d // 256))


def _rows(t: Tensor) -> Tensor:
    """t (..., D) as contiguous rows (N, D); a copy only when t is not row-contiguous."""
    return t.reshape(-1, t.shape[-1]).contiguous()


class AddLayerNormTriton(torch.autograd.Function):
    """(x or None, residual, weight, bias, eps, out_dtype) -> (out, s) with x, else out."""

    @staticmethod
    def forward(ctx: Any, x, residual, weight, bias, eps, out_dtype):
        shape, D = residual.shape, residual.shape[-1]
        res = _rows(residual)
        xr = _rows(x) if x is not None else None
        n = res.shape[0]
        ct = compute_dtype(res, xr, weight, bias)
        out = new_output(n, D, like=res, dtype=out_dtype)
        s = new_output(n, D, like=res) if x is not None else res
        mean, rstd = new_output(n, like=res, dtype=ct), new_output(n, like=res, dtype=ct)
        block_d = triton.next_power_of_2(D)
        add_layer_norm_fwd_kernel[(n,)](
            xr if xr is not None else res, res, weight, bias if bias is not None else weight,
            out, s, mean, rstd, D, eps,
            HAS_X=x is not None, HAS_BIAS=bias is not None, ACC=_acc(ct), BLOCK_D=block_d,
            num_warps=_warps(block_d),
        )  # fmt: skip
        ctx.save_for_backward(s, weight, bias, mean, rstd)
        ctx.args = (shape, ct, x is not None, None if x is None else x.dtype, residual.dtype)
        if x is None:
            return out.view(shape)
        return out.view(shape), s.view(shape)

    @staticmethod
    def backward(ctx: Any, dout, ds_next=None):
        s, weight, bias, mean, rstd = ctx.saved_tensors
        shape, ct, has_x, x_dtype, res_dtype = ctx.args
        n, D = s.shape
        rows = max(1, min(MAX_ROWS_PER_PROGRAM, triton.cdiv(n, BWD_PROGRAMS)))
        n_prog = triton.cdiv(n, rows)
        write_dx = has_x and ctx.needs_input_grad[0]
        write_dres = ctx.needs_input_grad[1]
        dx = new_output(n, D, like=s, dtype=x_dtype) if write_dx else None
        dres = new_output(n, D, like=s, dtype=res_dtype) if write_dres else None
        dw_part = new_output(n_prog, D, like=s, dtype=ct)
        db_part = new_output(n_prog, D, like=s, dtype=ct)
        dout = _rows(dout)
        ds_next = _rows(ds_next) if ds_next is not None else None
        block_d = triton.next_power_of_2(D)
        add_layer_norm_bwd_kernel[(n_prog,)](
            s, weight, mean, rstd, dout, ds_next if ds_next is not None else dout,
            dx if dx is not None else dw_part, dres if dres is not None else dw_part, dw_part, db_part,
            D, n, rows, HAS_DS_NEXT=ds_next is not None, WRITE_DX=write_dx, WRITE_DRES=write_dres,
            ACC=_acc(ct), BLOCK_D=block_d, num_warps=_warps(block_d),
        )  # fmt: skip
        dw = dw_part.sum(0).to(weight.dtype)
        db = db_part.sum(0).to(bias.dtype) if bias is not None else None
        return (
            dx.view(shape) if dx is not None else None, dres.view(shape) if dres is not None else None,
            dw, db, None, None,
        )  # fmt: skip


def add_layer_norm_triton(
    x: Tensor | None,
    residual: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    eps: float = 1e-5,
    out_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Residual add + LayerNorm, fused (the contract of ``add_layer_norm_ref``), differentiable.

    x: (..., D) or None (then s is residual itself); residual: (..., D); weight, bias: (D,).
    Statistics in fp32 (fp64 for fp64 inputs). Returns (out (..., D) in out_dtype (default:
    residual's), s = residual + x in residual's dtype); weight and bias gradients are fp32 sums.
    """
    norm_shapes(x, residual, weight, bias)
    if residual.device.type != "cuda" and not triton_interpreting():
        raise BackendUnavailable(
            "the triton add + LayerNorm needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)"
        )
    out_dtype = out_dtype or residual.dtype
    if x is None:
        return AddLayerNormTriton.apply(None, residual, weight, bias, eps, out_dtype), residual
    return AddLayerNormTriton.apply(x, residual, weight, bias, eps, out_dtype)
