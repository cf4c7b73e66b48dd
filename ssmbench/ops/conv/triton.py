"""Causal depthwise conv1d (+ SiLU) over a sequence in Triton: forward and backward kernels,
autograd, public function (causal-conv1d's ``causal_conv1d_fn`` contract for x, weight, bias and
activation; widths 1..4).

    y[b, d, t] = act(bias[d] + sum_k weight[d, k] * x[b, d, t - (W - 1) + k]),  x = 0 before t = 0

Both kernels: one program per tile of (BLOCK_D channels, BLOCK_L steps) of one batch row, each
thread owning whole chunks of CHUNK consecutive steps of a channel (16 bytes: 8 in bf16/fp16, 4 in
fp32). A chunk and its neighbour chunk are aligned vector loads, split into CHUNK columns of
registers (``tl.split``/``tl.join`` only rename registers), so the taps x[t - s] are registers: no
unaligned loads, no data exchanged between threads. Sums in fp32 (fp64 for fp64 inputs). x (and
dy) may have any batch and channel strides, such as x = xz[:, :d_inner] of the Mamba layer's
in_proj output: read in place, no copy; only a tensor whose steps are not adjacent in memory
(channels-last) is copied first.

Forward: y = act(pre) from the chunk and the one before it; SiLU in the kernel, y written once.

Backward: g = dy * act'(pre), the pre-activation recomputed from x (only x, weight and bias are
saved, as in causal-conv1d): on each chunk, and on the first W - 1 steps of the next one (so
3 in 8 activations twice, with W = 4). Then dx[s] = sum_j weight[W-1-j] g[s+j] and the tile's
dweight[W-1-j] = sum_s x[s] g[s+j] and dbias = sum_s g[s]: each program writes its fp32 sums to its
own slot and the host sums the slots in a fixed order: deterministic, no atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.ops.buffers import new_output
from ssmbench.ops.checks import compute_dtype, conv_shapes

MAX_WIDTH = 4
# steps per chunk: 16 bytes of x (8 in bf16/fp16, 4 in fp32, at least 4 so that the taps,
# MAX_WIDTH - 1 steps back at most, reach only into the previous chunk)
MAX_CHUNK = 8


@triton.jit
def _split8(b, BLOCK_D: tl.constexpr, C: tl.constexpr):
    """(BD, 8 C) -> its 8 columns, a tuple of (BD, C): column r holds steps 8 i + r."""
    e, o = tl.split(tl.reshape(b, (BLOCK_D, C, 4, 2)))
    ee, eo = tl.split(tl.reshape(e, (BLOCK_D, C, 2, 2)))
    oe, oo = tl.split(tl.reshape(o, (BLOCK_D, C, 2, 2)))
    c0, c4 = tl.split(ee)
    c2, c6 = tl.split(eo)
    c1, c5 = tl.split(oe)
    c3, c7 = tl.split(oo)
    return (c0, c1, c2, c3, c4, c5, c6, c7)


@triton.jit
def _join8(c, BLOCK_D: tl.constexpr, C: tl.constexpr):
    """The inverse of _split8: 8 columns (BD, C) -> (BD, 8 C)."""
    e = tl.reshape(tl.join(tl.join(c[0], c[4]), tl.join(c[2], c[6])), (BLOCK_D, C, 4))
    o = tl.reshape(tl.join(tl.join(c[1], c[5]), tl.join(c[3], c[7])), (BLOCK_D, C, 4))
    return tl.reshape(tl.join(e, o), (BLOCK_D, C * 8))


@triton.jit
def _split4(b, BLOCK_D: tl.constexpr, C: tl.constexpr):
    """(BD, 4 C) -> its 4 columns (BD, C), as _split8."""
    e, o = tl.split(tl.reshape(b, (BLOCK_D, C, 2, 2)))
    c0, c2 = tl.split(e)
    c1, c3 = tl.split(o)
    return (c0, c1, c2, c3)


@triton.jit
def _join4(c, BLOCK_D: tl.constexpr, C: tl.constexpr):
    """The inverse of _split4."""
    return tl.reshape(tl.join(tl.join(c[0], c[2]), tl.join(c[1], c[3])), (BLOCK_D, C * 4))


@triton.jit
def _join(c, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, CHUNK: tl.constexpr):
    """CHUNK columns (BD, BL / CHUNK) -> the (BD, BL) tile."""
    if CHUNK == 8:
        return _join8(c, BLOCK_D, BLOCK_L // 8)
    else:
        return _join4(c, BLOCK_D, BLOCK_L // 4)


@triton.jit
def _columns(p, r, m_d, o_t, L, ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
             CHUNK: tl.constexpr):  # fmt: skip
    """p[r[:, None] + o_t[None, :]] in ACC, 0 outside steps [0, L), as CHUNK columns (BD, BL / CHUNK):
    column c holds steps CHUNK i + c. Each thread holds whole chunks, so the split only renames
    registers."""
    m = m_d[:, None] & ((o_t >= 0) & (o_t < L))[None, :]
    b = tl.load(p + r[:, None] + o_t[None, :], mask=m, other=0).to(ACC)
    if CHUNK == 8:
        return _split8(b, BLOCK_D, BLOCK_L // 8)
    else:
        return _split4(b, BLOCK_D, BLOCK_L // 4)


@triton.jit
def _params(w, bias, o_d, m_d, s_w_d, s_w_k, s_bias,
            WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):  # fmt: skip
    """The WIDTH weight columns and the bias (0 without), each (BD, 1) in ACC."""
    ws = ()
    for k in tl.static_range(WIDTH):
        ws = ws + (tl.load(w + o_d * s_w_d + k * s_w_k, mask=m_d, other=0).to(ACC)[:, None],)
    if HAS_BIAS:
        b_bias = tl.load(bias + o_d * s_bias, mask=m_d, other=0).to(ACC)[:, None]
    else:
        b_bias = tl.zeros_like(ws[0])
    return ws, b_bias


@triton.jit
def _pre(prev, cur, ws, b_bias, r: tl.constexpr, WIDTH: tl.constexpr, CHUNK: tl.constexpr):
    """Pre-activation at column r of the chunks cur: bias + sum_k w_k x[t - (W - 1) + k], the taps
    before the chunk taken from the previous chunks, prev."""
    b_y = b_bias
    for k in tl.static_range(WIDTH):
        if r >= WIDTH - 1 - k:
            b_y = b_y + ws[k] * cur[r - (WIDTH - 1 - k)]
        else:
            b_y = b_y + ws[k] * prev[CHUNK + r - (WIDTH - 1 - k)]
    return b_y


@triton.jit
def _silu_grad(b_p):
    # silu'(p) = s + p s (1 - s), s = sigmoid(p)
    b_s = tl.sigmoid(b_p)
    return b_s * (1.0 + b_p * (1.0 - b_s))


@triton.jit
def causal_conv1d_fwd_kernel(
    x, w, bias, y,
    DIM, L, s_x_b, s_x_d, s_w_d, s_w_k, s_bias,
    WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, ACC: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, CHUNK: tl.constexpr,
):  # fmt: skip
    i_l, i_d, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_t = i_l * BLOCK_L + tl.arange(0, BLOCK_L)
    m_d = o_d < DIM
    r_x = i_b.to(tl.int64) * s_x_b + o_d.to(tl.int64) * s_x_d
    # each chunk and the chunk before it: two aligned loads, the taps are registers
    x_prev = _columns(x, r_x, m_d, o_t - CHUNK, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
    x_cur = _columns(x, r_x, m_d, o_t, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
    ws, b_bias = _params(w, bias, o_d, m_d, s_w_d, s_w_k, s_bias, WIDTH, HAS_BIAS, ACC)
    ys = ()
    for r in tl.static_range(CHUNK):
        b_y = _pre(x_prev, x_cur, ws, b_bias, r, WIDTH, CHUNK)
        if SILU:
            b_y = b_y * tl.sigmoid(b_y)
        ys = ys + (b_y,)
    b_y = _join(ys, BLOCK_D, BLOCK_L, CHUNK)
    # y is a fresh contiguous (batch, dim, L)
    p_y = y + (i_b * DIM + o_d).to(tl.int64)[:, None] * L + o_t[None, :]
    tl.store(p_y, b_y.to(y.dtype.element_ty), mask=m_d[:, None] & (o_t < L)[None, :])


@triton.jit
def causal_conv1d_bwd_kernel(
    x, w, bias, dy, dx, dw_part, dbias_part,
    DIM, L, N_L, s_x_b, s_x_d, s_dy_b, s_dy_d, s_w_d, s_w_k, s_bias,
    WIDTH: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr, ACC: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, CHUNK: tl.constexpr,
):  # fmt: skip
    # g = dy * act'(pre) on each chunk, and on the first W - 1 steps of the next chunk; then
    # dx[s] = sum_j w[W - 1 - j] g[s + j] and dweight[W - 1 - j] = sum_s x[s] g[s + j]
    i_l, i_d, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_t = i_l * BLOCK_L + tl.arange(0, BLOCK_L)
    m_d = o_d < DIM
    r_x = i_b.to(tl.int64) * s_x_b + o_d.to(tl.int64) * s_x_d
    r_dy = i_b.to(tl.int64) * s_dy_b + o_d.to(tl.int64) * s_dy_d
    x_cur = _columns(x, r_x, m_d, o_t, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
    dy_cur = _columns(dy, r_dy, m_d, o_t, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
    ws, b_bias = _params(w, bias, o_d, m_d, s_w_d, s_w_k, s_bias, WIDTH, HAS_BIAS, ACC)
    if SILU:
        x_prev = _columns(x, r_x, m_d, o_t - CHUNK, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
    g_cur = ()
    for r in tl.static_range(CHUNK):
        b_g = dy_cur[r]
        if SILU:
            b_g = b_g * _silu_grad(_pre(x_prev, x_cur, ws, b_bias, r, WIDTH, CHUNK))
        g_cur = g_cur + (b_g,)
    # g at the first W - 1 steps of the next chunks (0 from step L on: dy is)
    g_next = ()
    if WIDTH > 1:
        dy_next = _columns(dy, r_dy, m_d, o_t + CHUNK, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
        if SILU:
            x_next = _columns(x, r_x, m_d, o_t + CHUNK, L, ACC, BLOCK_D, BLOCK_L, CHUNK)
        for r in tl.static_range(WIDTH - 1):
            b_g = dy_next[r]
            if SILU:
                b_g = b_g * _silu_grad(_pre(x_cur, x_next, ws, b_bias, r, WIDTH, CHUNK))
            g_next = g_next + (b_g,)
    # g[s + j] at column r is g_cur[r + j] or, past the chunk, g_next[r + j - CHUNK]
    dxs = ()
    for r in tl.static_range(CHUNK):
        b_dx = ws[WIDTH - 1] * g_cur[r]
        for j in tl.static_range(1, WIDTH):
            if r + j < CHUNK:
                b_dx += ws[WIDTH - 1 - j] * g_cur[r + j]
            else:
                b_dx += ws[WIDTH - 1 - j] * g_next[r + j - CHUNK]
        dxs = dxs + (b_dx,)
    b_dx = _join(dxs, BLOCK_D, BLOCK_L, CHUNK)
    p_dx = dx + (i_b * DIM + o_d).to(tl.int64)[:, None] * L + o_t[None, :]
    tl.store(p_dx, b_dx.to(dx.dtype.element_ty), mask=m_d[:, None] & (o_t < L)[None, :])
    # this tile's sums, into its own slot i_p (x is 0 from step L on, g too)
    i_p = (i_b * N_L + i_l).to(tl.int64)
    for j in tl.static_range(WIDTH):
        b_dw = x_cur[0] * g_cur[j]
        for r in tl.static_range(1, CHUNK):
            if r + j < CHUNK:
                b_dw += x_cur[r] * g_cur[r + j]
            else:
                b_dw += x_cur[r] * g_next[r + j - CHUNK]
        tl.store(dw_part + (i_p * WIDTH + WIDTH - 1 - j) * DIM + o_d, tl.sum(b_dw, axis=1), mask=m_d)
    if HAS_BIAS:
        b_db = g_cur[0]
        for r in tl.static_range(1, CHUNK):
            b_db += g_cur[r]
        tl.store(dbias_part + i_p * DIM + o_d, tl.sum(b_db, axis=1), mask=m_d)


@dataclass(frozen=True)
class ConvLaunch:
    """How one kernel runs: a tile of block_d channels x block_l steps per program (block_l a
    multiple of the chunks of steps each thread owns), num_warps."""

    block_d: int = 16
    block_l: int = 128
    num_warps: int = 4

    def __post_init__(self) -> None:
        if any(v < 1 or v & (v - 1) for v in (self.block_d, self.block_l, self.num_warps)):
            raise BadInput(f"conv block sizes and warps must be powers of two, got {self}")
        if self.block_l < MAX_CHUNK:
            raise BadInput(f"conv block_l must be at least {MAX_CHUNK}, got {self.block_l}")


@dataclass(frozen=True)
class ConvConfig:
    """Launch shapes of the forward and the backward kernel."""

    fwd: ConvLaunch = ConvLaunch()
    bwd: ConvLaunch = ConvLaunch()


def default_config() -> ConvConfig:
    """Tiles of 16 channels x 128 steps, 4 warps (128 threads, 16 elements each, 8 consecutive
    steps per thread so the loads and stores are 16 bytes in bf16). Compiled for sm_90 in bf16,
    width 4: forward 34 registers, backward 80, no spills, no layout conversions through shared
    memory (only the backward's dweight/dbias reductions use it). Chosen without GPU timings:
    benchmarks/gpu/conv_variants.py times the alternatives.
    Under the interpreter (which pays per program, not per element): 8 x 32 tiles, so small
    test shapes still span several tiles."""
    if triton_interpreting():
        return ConvConfig(ConvLaunch(8, 32, 1), ConvLaunch(8, 32, 1))
    return ConvConfig()


def _acc(ct: torch.dtype) -> tl.dtype:
    return tl.float64 if ct == torch.float64 else tl.float32


def _chunk(x: Tensor) -> int:
    """Steps per chunk for x's dtype: 16 bytes, at least 4."""
    return max(4, 16 // x.element_size())


def _unit_steps(t: Tensor) -> Tensor:
    """t (batch, dim, L) itself when its steps are adjacent in memory (any batch and channel
    strides), else a contiguous copy: the kernels load chunks of adjacent steps at once."""
    return t if t.stride(2) == 1 or t.shape[2] == 1 else t.contiguous()


def _fwd(
    x: Tensor, weight: Tensor, bias: Tensor | None, silu: bool, ls: ConvLaunch, ct: torch.dtype
) -> Tensor:
    """y (batch, dim, L), contiguous, in x's dtype."""
    batch, dim, L = x.shape
    y = new_output(batch, dim, L, like=x)
    bb = bias if bias is not None else weight
    grid = (triton.cdiv(L, ls.block_l), triton.cdiv(dim, ls.block_d), batch)
    causal_conv1d_fwd_kernel[grid](
        x, weight, bb, y,
        dim, L, x.stride(0), x.stride(1), *weight.stride(), bb.stride(0),
        WIDTH=weight.shape[1], HAS_BIAS=bias is not None, SILU=silu, ACC=_acc(ct),
        BLOCK_D=ls.block_d, BLOCK_L=ls.block_l, CHUNK=_chunk(x), num_warps=ls.num_warps,
    )  # fmt: skip
    return y


def _bwd(
    x: Tensor, weight: Tensor, bias: Tensor | None, dy: Tensor, silu: bool, ls: ConvLaunch, ct: torch.dtype
) -> tuple[Tensor, Tensor, Tensor | None]:
    """dx (batch, dim, L) in x's dtype; dweight (dim, width) and dbias (dim,) as ct sums."""
    batch, dim, L = x.shape
    width = weight.shape[1]
    n_l = triton.cdiv(L, ls.block_l)
    dx = new_output(batch, dim, L, like=x)
    dw_part = new_output(batch * n_l, width, dim, like=x, dtype=ct)
    dbias_part = new_output(batch * n_l, dim, like=x, dtype=ct) if bias is not None else dw_part
    bb = bias if bias is not None else weight
    grid = (n_l, triton.cdiv(dim, ls.block_d), batch)
    causal_conv1d_bwd_kernel[grid](
        x, weight, bb, dy, dx, dw_part, dbias_part,
        dim, L, n_l, x.stride(0), x.stride(1), dy.stride(0), dy.stride(1), *weight.stride(), bb.stride(0),
        WIDTH=width, HAS_BIAS=bias is not None, SILU=silu, ACC=_acc(ct),
        BLOCK_D=ls.block_d, BLOCK_L=ls.block_l, CHUNK=_chunk(x), num_warps=ls.num_warps,
    )  # fmt: skip
    dweight = dw_part.sum(0).t()  # (dim, width)
    dbias = dbias_part.sum(0) if bias is not None else None
    return dx, dweight, dbias


class CausalConv1dTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, silu, cfg):
        x = _unit_steps(x)
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
        # a channels-last dy (as autograd may sum the layer's x_proj and scan gradients) is copied
        dx, dweight, dbias = _bwd(x, weight, bias, _unit_steps(dy), silu, cfg.bwd, ct)
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

    x: (batch, dim, L), fp64/fp32/bf16/fp16, any batch and channel strides (a view such as
    xz[:, :dim] is read in place; steps not adjacent in memory are copied first); weight:
    (dim, width), width 1..4; bias: (dim,); activation: None, 'silu' or 'swish'. Sums in fp32
    (fp64 when any input is fp64). Returns y (batch, dim, L), contiguous, in x's dtype; the
    gradients of weight and bias are fp32 sums over batch and steps, cast to their dtype.
    """
    conv_shapes(x, weight, bias, activation)
    if weight.shape[1] > MAX_WIDTH:
        raise BadInput(f"the triton causal conv1d takes widths 1..{MAX_WIDTH}, got {weight.shape[1]}")
    if x.device.type != "cuda" and not triton_interpreting():
        raise BackendUnavailable("the triton causal conv1d needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    return CausalConv1dTriton.apply(x, weight, bias, activation is not None, config or default_config())
