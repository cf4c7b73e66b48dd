"""Causal depthwise conv1d (+ SiLU) over a sequence in Triton: forward and backward kernels,
autograd, public function (causal-conv1d's ``causal_conv1d_fn`` contract for x, weight, bias and
activation; widths 1..4).

    y[b, d, t] = act(bias[d] + sum_k weight[d, k] * x[b, d, t - (W - 1) + k]),  x = 0 before t = 0

Forward: one program per tile of (BLOCK_D channels, BLOCK_L steps) of one batch row; the W taps
are W shifted loads of x (their overlap hits L1), sums in fp32, SiLU in the kernel, y written once.
x may be any strided (batch, dim, L) view, such as x = xz[:, :d_inner] of the Mamba layer's
in_proj output: no copy.

Backward: one kernel over the same tiles. g = dy * act'(pre), with the pre-activation recomputed
from x (only x, weight and bias are saved, as in causal-conv1d). dx[s] = sum_j weight[W-1-j] g[s+j]
needs g up to W - 1 steps past the tile: ``shift`` "gather" computes g once on the tile and once on
a halo of the W - 1 next steps and shifts it with ``tl.gather``; "recompute" computes g again at
each shift (W activations per element instead of one, no data movement between threads).
dweight and dbias: each program writes its tile's fp32 sums to its own slot and the host sums the
slots in a fixed order: deterministic, no atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.ops.conv.seq_ref import check_conv_inputs
from ssmbench.ops.scan.ref import compute_dtype
from ssmbench.ops.scan.triton_scan import _empty

MAX_WIDTH = 4
SHIFTS = ("gather", "recompute")


@triton.jit
def _pre(x, w, bias, r_x, o_d, m_d, o_t, L, s_x_l, s_w_d, s_w_k, s_bias,
         WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr,
         BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr):  # fmt: skip
    """bias + sum_k w[:, k] x[:, o_t - (WIDTH - 1) + k] at channels o_d, steps o_t: (BD, BT) in ACC."""
    b_y = tl.zeros([BLOCK_D, BLOCK_T], dtype=ACC)
    if HAS_BIAS:
        b_y += tl.load(bias + o_d * s_bias, mask=m_d, other=0).to(ACC)[:, None]
    for k in tl.static_range(WIDTH):
        o_s = o_t - (WIDTH - 1) + k
        m_s = m_d[:, None] & ((o_s >= 0) & (o_s < L))[None, :]
        b_x = tl.load(x + r_x[:, None] + o_s[None, :] * s_x_l, mask=m_s, other=0).to(ACC)
        b_w = tl.load(w + o_d * s_w_d + k * s_w_k, mask=m_d, other=0).to(ACC)
        b_y += b_w[:, None] * b_x
    return b_y


@triton.jit
def _dpre(x, w, bias, dy, r_x, r_dy, o_d, m_d, o_t, L, s_x_l, s_dy_l, s_w_d, s_w_k, s_bias,
          WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, ACC: tl.constexpr,
          BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr):  # fmt: skip
    """g = dy * act'(pre) at channels o_d, steps o_t >= 0: (BD, BT) in ACC, 0 from step L on."""
    m_t = m_d[:, None] & (o_t < L)[None, :]
    b_g = tl.load(dy + r_dy[:, None] + o_t[None, :] * s_dy_l, mask=m_t, other=0).to(ACC)
    if SILU:
        b_p = _pre(x, w, bias, r_x, o_d, m_d, o_t, L, s_x_l, s_w_d, s_w_k, s_bias,
                   WIDTH, HAS_BIAS, ACC, BLOCK_D, BLOCK_T)  # fmt: skip
        b_s = tl.sigmoid(b_p)
        # silu'(p) = s + p s (1 - s)
        b_g *= b_s * (1.0 + b_p * (1.0 - b_s))
    return b_g


@triton.jit
def causal_conv1d_fwd_kernel(
    x, w, bias, y,
    DIM, L, s_x_b, s_x_d, s_x_l, s_w_d, s_w_k, s_bias,
    WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, ACC: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
):  # fmt: skip
    i_l, i_d, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_t = i_l * BLOCK_L + tl.arange(0, BLOCK_L)
    m_d = o_d < DIM
    r_x = i_b.to(tl.int64) * s_x_b + o_d.to(tl.int64) * s_x_d
    b_y = _pre(x, w, bias, r_x, o_d, m_d, o_t, L, s_x_l, s_w_d, s_w_k, s_bias,
               WIDTH, HAS_BIAS, ACC, BLOCK_D, BLOCK_L)  # fmt: skip
    if SILU:
        b_y = b_y * tl.sigmoid(b_y)
    # y is a fresh contiguous (batch, dim, L)
    p_y = y + (i_b * DIM + o_d).to(tl.int64)[:, None] * L + o_t[None, :]
    tl.store(p_y, b_y.to(y.dtype.element_ty), mask=m_d[:, None] & (o_t < L)[None, :])


@triton.jit
def causal_conv1d_bwd_kernel(
    x, w, bias, dy, dx, dw_part, dbias_part,
    DIM, L, N_L, s_x_b, s_x_d, s_x_l, s_dy_b, s_dy_d, s_dy_l, s_w_d, s_w_k, s_bias,
    WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, GATHER: tl.constexpr,
    ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    i_l, i_d, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_i = tl.arange(0, BLOCK_L)
    o_t = i_l * BLOCK_L + o_i
    m_d = o_d < DIM
    r_x = i_b.to(tl.int64) * s_x_b + o_d.to(tl.int64) * s_x_d
    r_dy = i_b.to(tl.int64) * s_dy_b + o_d.to(tl.int64) * s_dy_d
    b_g = _dpre(x, w, bias, dy, r_x, r_dy, o_d, m_d, o_t, L, s_x_l, s_dy_l, s_w_d, s_w_k, s_bias,
                WIDTH, HAS_BIAS, SILU, ACC, BLOCK_D, BLOCK_L)  # fmt: skip
    # dx[t] = sum_j w[W - 1 - j] g[t + j]
    b_dx = tl.load(w + o_d * s_w_d + (WIDTH - 1) * s_w_k, mask=m_d, other=0).to(ACC)[:, None] * b_g
    if GATHER and WIDTH > 1:
        # g at the BLOCK_H >= W - 1 steps after the tile
        o_h = (i_l + 1) * BLOCK_L + tl.arange(0, BLOCK_H)
        b_gh = _dpre(x, w, bias, dy, r_x, r_dy, o_d, m_d, o_h, L, s_x_l, s_dy_l, s_w_d, s_w_k, s_bias,
                     WIDTH, HAS_BIAS, SILU, ACC, BLOCK_D, BLOCK_H)  # fmt: skip
    for j in tl.static_range(1, WIDTH):
        if GATHER:
            o_j = o_i + j
            i_in = tl.broadcast_to(tl.minimum(o_j, BLOCK_L - 1)[None, :], (BLOCK_D, BLOCK_L))
            i_out = tl.broadcast_to(tl.maximum(o_j - BLOCK_L, 0)[None, :], (BLOCK_D, BLOCK_L))
            b_gj = tl.where(
                (o_j < BLOCK_L)[None, :], tl.gather(b_g, i_in, axis=1), tl.gather(b_gh, i_out, axis=1)
            )
        else:
            b_gj = _dpre(x, w, bias, dy, r_x, r_dy, o_d, m_d, o_t + j, L, s_x_l, s_dy_l, s_w_d, s_w_k,
                         s_bias, WIDTH, HAS_BIAS, SILU, ACC, BLOCK_D, BLOCK_L)  # fmt: skip
        b_w = tl.load(w + o_d * s_w_d + (WIDTH - 1 - j) * s_w_k, mask=m_d, other=0).to(ACC)
        b_dx += b_w[:, None] * b_gj
    p_dx = dx + (i_b * DIM + o_d).to(tl.int64)[:, None] * L + o_t[None, :]
    tl.store(p_dx, b_dx.to(dx.dtype.element_ty), mask=m_d[:, None] & (o_t < L)[None, :])
    # this tile's sums of dweight[:, k] = sum_t g[t] x[t - (W - 1) + k] and dbias = sum_t g[t],
    # each into the tile's own slot (g is 0 from step L on)
    i_p = (i_b * N_L + i_l).to(tl.int64)
    for k in tl.static_range(WIDTH):
        o_s = o_t - (WIDTH - 1) + k
        m_s = m_d[:, None] & ((o_s >= 0) & (o_s < L))[None, :]
        b_x = tl.load(x + r_x[:, None] + o_s[None, :] * s_x_l, mask=m_s, other=0).to(ACC)
        tl.store(dw_part + (i_p * WIDTH + k) * DIM + o_d, tl.sum(b_g * b_x, axis=1), mask=m_d)
    if HAS_BIAS:
        tl.store(dbias_part + i_p * DIM + o_d, tl.sum(b_g, axis=1), mask=m_d)


@dataclass(frozen=True)
class ConvLaunch:
    """How one kernel runs: a tile of block_d channels x block_l steps per program, num_warps."""

    block_d: int = 16
    block_l: int = 128
    num_warps: int = 4

    def __post_init__(self) -> None:
        if any(v < 1 or v & (v - 1) for v in (self.block_d, self.block_l, self.num_warps)):
            raise BadInput(f"conv block sizes and warps must be powers of two, got {self}")


@dataclass(frozen=True)
class ConvConfig:
    """Launch shapes of the forward and the backward kernel, and how the backward gets g at
    the W - 1 later steps ("gather" or "recompute"; see the module docstring)."""

    fwd: ConvLaunch = ConvLaunch()
    bwd: ConvLaunch = ConvLaunch()
    shift: str = "gather"

    def __post_init__(self) -> None:
        if self.shift not in SHIFTS:
            raise BadInput(f"conv backward shift must be one of {', '.join(SHIFTS)}, got {self.shift!r}")


def default_config() -> ConvConfig:
    """Tiles of 16 channels x 128 steps, 4 warps (128 threads, 16 elements each, 8 consecutive
    steps per thread so the aligned loads and stores are 16 bytes in bf16), backward by gather.
    Chosen without GPU measurements: benchmarks/gpu/conv_variants.py times the alternatives.
    Under the interpreter (which pays per program, not per element): 8 x 32 tiles, so small
    test shapes still span several tiles."""
    if triton_interpreting():
        return ConvConfig(ConvLaunch(8, 32, 1), ConvLaunch(8, 32, 1))
    return ConvConfig()


def _acc(ct: torch.dtype) -> tl.dtype:
    return tl.float64 if ct == torch.float64 else tl.float32


def _fwd(
    x: Tensor, weight: Tensor, bias: Tensor | None, silu: bool, ls: ConvLaunch, ct: torch.dtype
) -> Tensor:
    """y (batch, dim, L), contiguous, in x's dtype."""
    batch, dim, L = x.shape
    y = _empty(batch, dim, L, like=x)
    bb = bias if bias is not None else weight
    grid = (triton.cdiv(L, ls.block_l), triton.cdiv(dim, ls.block_d), batch)
    causal_conv1d_fwd_kernel[grid](
        x, weight, bb, y,
        dim, L, *x.stride(), *weight.stride(), bb.stride(0),
        WIDTH=weight.shape[1], HAS_BIAS=bias is not None, SILU=silu, ACC=_acc(ct),
        BLOCK_D=ls.block_d, BLOCK_L=ls.block_l, num_warps=ls.num_warps,
    )  # fmt: skip
    return y


def _bwd(
    x: Tensor, weight: Tensor, bias: Tensor | None, dy: Tensor, silu: bool, cfg: ConvConfig, ct: torch.dtype
) -> tuple[Tensor, Tensor, Tensor | None]:
    """dx (batch, dim, L) in x's dtype; dweight (dim, width) and dbias (dim,) as ct sums."""
    batch, dim, L = x.shape
    width = weight.shape[1]
    ls = cfg.bwd
    n_l = triton.cdiv(L, ls.block_l)
    dx = _empty(batch, dim, L, like=x)
    dw_part = _empty(batch * n_l, width, dim, like=x, dtype=ct)
    dbias_part = _empty(batch * n_l, dim, like=x, dtype=ct) if bias is not None else dw_part
    bb = bias if bias is not None else weight
    grid = (n_l, triton.cdiv(dim, ls.block_d), batch)
    causal_conv1d_bwd_kernel[grid](
        x, weight, bb, dy, dx, dw_part, dbias_part,
        dim, L, n_l, *x.stride(), *dy.stride(), *weight.stride(), bb.stride(0),
        WIDTH=width, HAS_BIAS=bias is not None, SILU=silu, GATHER=cfg.shift == "gather", ACC=_acc(ct),
        BLOCK_D=ls.block_d, BLOCK_L=ls.block_l, BLOCK_H=triton.next_power_of_2(max(width - 1, 1)),
        num_warps=ls.num_warps,
    )  # fmt: skip
    dweight = dw_part.sum(0).t()  # (dim, width)
    dbias = dbias_part.sum(0) if bias is not None else None
    return dx, dweight, dbias


class CausalConv1dTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, silu, cfg):
        ct = compute_dtype(x, weight, bias)
        y = _fwd(x, weight, bias, silu, cfg.fwd, ct)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, weight, bias)
            ctx.args = (silu, cfg, ct)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        silu, cfg, ct = ctx.args
        dx, dweight, dbias = _bwd(x, weight, bias, dy, silu, cfg, ct)
        return (
            dx, dweight.to(weight.dtype), None if dbias is None else dbias.to(bias.dtype), None, None,
        )  # fmt: skip


def causal_conv1d_triton(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
    *,
    config: ConvConfig | None = None,
) -> Tensor:
    """Causal depthwise conv1d (+ SiLU), differentiable (causal-conv1d ``causal_conv1d_fn``
    contract for x, weight, bias and activation).

    x: (batch, dim, L), fp64/fp32/bf16/fp16, any strides (a view such as xz[:, :dim] is read in
    place); weight: (dim, width), width 1..4; bias: (dim,); activation: None, 'silu' or 'swish'.
    Sums in fp32 (fp64 when any input is fp64). Returns y (batch, dim, L), contiguous, in x's
    dtype; the gradients of weight and bias are fp32 sums over batch and steps, cast to their dtype.
    """
    check_conv_inputs(x, weight, bias, activation)
    if weight.shape[1] > MAX_WIDTH:
        raise BadInput(f"the triton causal conv1d takes widths 1..{MAX_WIDTH}, got {weight.shape[1]}")
    if x.device.type != "cuda" and not triton_interpreting():
        raise BackendUnavailable("the triton causal conv1d needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    return CausalConv1dTriton.apply(x, weight, bias, activation is not None, config or default_config())
