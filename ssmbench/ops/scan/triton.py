"""Fused selective scan in Triton: forward and backward kernels, autograd, public function.

One program owns (one batch row, BLOCK_D channels) and walks L in blocks of BLOCK_L,
holding the state h (BLOCK_N, BLOCK_D) in fp32 registers. Tiles are (BLOCK_L, BLOCK_N,
BLOCK_D) with the channel axis last, so Triton spreads threads over channels and each
thread keeps whole (L, N/k) slices: inside a block the recurrence
h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t is one ``tl.associative_scan`` along L over
(decay, input) pairs, within a thread, with the carried state folded into the first input.

The (batch, dim, L, N) state never goes to memory. Under autograd the forward also writes
the state at the start of every backward block (fp32, L / bwd.block_l of them); the
backward walks its blocks in reverse, recomputes the states inside a block from the saved
one, and runs the adjoint g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1} from the block's end
(a forward scan between flips of L, over the block's own decays).
dB and dC are sums over channels: each program adds its (BLOCK_L, N) share with atomics;
dA, dD and d(delta_bias) are written per batch row and summed after. Design notes and
H100 measurements: docs/design/kernels.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.ops.checks import compute_dtype, scan_shapes

LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def _linear_combine(a1, b1, a2, b2):
    # (a1, b1) then (a2, b2): x -> a2 * (a1 * x + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _adjoint_combine(f1, q1, v1, f2, q2, v2):
    # Reverse scan of g_t = x_t + a_{t+1} g_{t+1} over elements (a_t, 1, x_t), without a
    # shifted copy of a. A segment [i..j] is (a_i, a_{i+1}...a_j, x_i + a_{i+1} x_{i+1} + ...);
    # the reverse scan passes the later segment first: ([m+1..j], [i..m]) -> [i..j]. Inside a
    # thread, q2 = 1 folds away and each step is one FMA.
    w = q2 * f1
    return f2, w * q1, v2 + w * v1


@triton.jit
def _exp2(x, FAST: tl.constexpr):
    # ex2.approx.ftz: one MUFU op; plain tl.exp2 adds denormal-range fix-ups around it
    if FAST:
        return tl.inline_asm_elementwise(
            "ex2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
    else:
        return tl.exp2(x)


@triton.jit
def _softplus(x):
    # torch's threshold: softplus(x) = x above 20
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))


@triton.jit
def _load_fwd_block(u, delta, z, B, C, r_x, r_bc, m_d, m_n, o_l, L, HAS_Z: tl.constexpr):
    """Raw tiles of one block: u, delta, z (BL, BD) and B, C (BL, BN); zeros past the end."""
    m_l = o_l < L
    m_ld = m_l[:, None] & m_d[None, :]
    m_ln = m_l[:, None] & m_n[None, :]
    p_x = o_l[:, None] + r_x[None, :]
    b_u = tl.load(u + p_x, mask=m_ld, other=0)
    b_dt = tl.load(delta + p_x, mask=m_ld, other=0)
    if HAS_Z:
        b_z = tl.load(z + p_x, mask=m_ld, other=0)
    else:
        b_z = b_u
    b_B = tl.load(B + o_l[:, None] + r_bc[None, :], mask=m_ln, other=0)
    b_C = tl.load(C + o_l[:, None] + r_bc[None, :], mask=m_ln, other=0)
    return b_u, b_dt, b_z, b_B, b_C


@triton.jit
def selective_scan_fwd_kernel(
    u, delta, A, B, C, D, z, delta_bias,
    out, last_state, states, ygate,
    L, DIM, N, DIM_PER_GROUP, N_GROUPS, N_BLOCKS, N_STATES,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_STATES: tl.constexpr, STATE_EVERY: tl.constexpr, STORE_LAST: tl.constexpr, SAVE_Y: tl.constexpr,
    ACC: tl.constexpr, FAST_EXP: tl.constexpr, PREFETCH: tl.constexpr, STAGES: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    # tiles are (L, N, D) with D last: Triton spreads threads over the last axis first, so
    # each thread owns whole (L, N) slices of its channels: the scan along L and the sum
    # over N stay inside the thread, with no shuffles.
    i_d, i_b = tl.program_id(0), tl.program_id(1)
    i_g = (i_d * BLOCK_D) // DIM_PER_GROUP
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_n = tl.arange(0, BLOCK_N)
    o_t = tl.arange(0, BLOCK_L)
    m_d = o_d < DIM
    m_n = o_n < N
    m_nd = m_n[:, None] & m_d[None, :]
    # row starts of (batch, dim, L) tensors, of (batch, G, N, L) B/C, of (batch, dim, N_STATES, N) states
    r_x = (i_b * DIM + o_d).to(tl.int64) * L
    r_bc = ((i_b * N_GROUPS + i_g) * N + o_n).to(tl.int64) * L
    r_s = (i_b * DIM + o_d).to(tl.int64) * N_STATES * N

    b_A = tl.load(A + o_d[None, :] * N + o_n[:, None], mask=m_nd, other=0).to(ACC)  # (BN, BD)
    b_A2 = b_A * LOG2E  # exp(x A) = exp2(x A log2(e))
    if HAS_D:
        b_D = tl.load(D + o_d, mask=m_d, other=0).to(ACC)
    if HAS_BIAS:
        b_bias = tl.load(delta_bias + o_d, mask=m_d, other=0).to(ACC)
    b_h = tl.zeros([BLOCK_N, BLOCK_D], dtype=ACC)
    # q_: raw tiles of the block to compute next (loaded one block ahead when PREFETCH)
    q_u, q_dt, q_z, q_B, q_C = _load_fwd_block(u, delta, z, B, C, r_x, r_bc, m_d, m_n, o_t, L, HAS_Z)
    for i_l in tl.range(0, N_BLOCKS, num_stages=STAGES):
        o_l = i_l * BLOCK_L + o_t
        m_ld = (o_l < L)[:, None] & m_d[None, :]
        p_x = o_l[:, None] + r_x[None, :]
        if not PREFETCH:
            q_u, q_dt, q_z, q_B, q_C = _load_fwd_block(u, delta, z, B, C, r_x, r_bc, m_d, m_n, o_l, L, HAS_Z)
        b_u, b_dt, b_z, b_B, b_C = q_u.to(ACC), q_dt.to(ACC), q_z.to(ACC), q_B.to(ACC), q_C.to(ACC)
        if PREFETCH:
            # issue the next block's loads now, so they are in flight while this block computes
            q_u, q_dt, q_z, q_B, q_C = _load_fwd_block(
                u, delta, z, B, C, r_x, r_bc, m_d, m_n, o_l + BLOCK_L, L, HAS_Z
            )
        if HAS_BIAS:
            b_dt += b_bias[None, :]
        if SOFTPLUS:
            b_dt = _softplus(b_dt)
        # delta = 0 past the end: decay 1 and no input, the state passes through unchanged
        b_dt = tl.where(m_ld, b_dt, 0.0)
        if SAVE_STATES:
            # the backward's blocks are STATE_EVERY of these long: keep the state at their starts
            tl.store(states + r_s[None, :] + (i_l // STATE_EVERY) * N + o_n[:, None], b_h,
                     mask=m_nd & (i_l % STATE_EVERY == 0))

        b_dA = _exp2(b_dt[:, None, :] * b_A2[None, :, :], FAST_EXP)  # (BL, BN, BD)
        b_dBu = (b_dt * b_u)[:, None, :] * b_B[:, :, None]  # (BL, BN, BD)
        # the carried state enters as part of the first step's input, so the scan's second
        # output is h_t itself and its cumulative decays are dead code (fewer live registers)
        b_dBu += tl.where((o_t == 0)[:, None, None], b_dA * b_h[None, :, :], 0.0)
        _, b_hs = tl.associative_scan((b_dA, b_dBu), axis=0, combine_fn=_linear_combine)
        b_y = tl.sum(b_hs * b_C[:, :, None], axis=1)  # (BL, BD)
        b_h = tl.sum(tl.where((o_t == BLOCK_L - 1)[:, None, None], b_hs, 0.0), axis=0)

        if HAS_D:
            b_y += b_u * b_D[None, :]
        if HAS_Z:
            if SAVE_Y:
                # the backward's dz needs y before the gate (saved like mamba_ssm's `out`)
                tl.store(ygate + p_x, b_y.to(ygate.dtype.element_ty), mask=m_ld)
            b_y *= b_z * tl.sigmoid(b_z)
        tl.store(out + p_x, b_y.to(out.dtype.element_ty), mask=m_ld)
    if STORE_LAST:
        tl.store(last_state + (i_b * DIM + o_d)[None, :] * N + o_n[:, None], b_h, mask=m_nd)


@triton.jit
def _load_bwd_block(
    u, delta, z, dout, B, C, states, r_x, r_bc, r_s, m_d, o_n, o_l, i_l, L, N, HAS_Z: tl.constexpr
):
    """Raw tiles of one block for the backward: u, delta, z, dout (BL, BD); B, C (BL, BN);
    the saved state at the block's start (BN, BD). Zeros outside [0, L)."""
    m_l = (o_l >= 0) & (o_l < L)
    m_n = o_n < N
    m_ld = m_l[:, None] & m_d[None, :]
    p_x = o_l[:, None] + r_x[None, :]
    b_u = tl.load(u + p_x, mask=m_ld, other=0)
    b_dt = tl.load(delta + p_x, mask=m_ld, other=0)
    if HAS_Z:
        b_z = tl.load(z + p_x, mask=m_ld, other=0)
    else:
        b_z = b_u
    b_do = tl.load(dout + p_x, mask=m_ld, other=0)
    m_ln = m_l[:, None] & m_n[None, :]
    b_B = tl.load(B + o_l[:, None] + r_bc[None, :], mask=m_ln, other=0)
    b_C = tl.load(C + o_l[:, None] + r_bc[None, :], mask=m_ln, other=0)
    b_h0 = tl.load(states + r_s[None, :] + i_l * N + o_n[:, None], mask=m_n[:, None] & m_d[None, :], other=0)
    return b_u, b_dt, b_z, b_do, b_B, b_C, b_h0


@triton.jit
def selective_scan_bwd_kernel(
    u, delta, A, B, C, D, z, delta_bias, states, ygate, dout, dlast,
    du, ddelta, dz, dA_part, dB, dC, dD_part, dbias_part,
    L, DIM, N, DIM_PER_GROUP, N_GROUPS, N_BLOCKS,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DLAST: tl.constexpr, ACC: tl.constexpr, FAST_EXP: tl.constexpr,
    PREFETCH: tl.constexpr, STAGES: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    # same (L, N, D) tiles as the forward
    i_d, i_b = tl.program_id(0), tl.program_id(1)
    i_g = (i_d * BLOCK_D) // DIM_PER_GROUP
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_n = tl.arange(0, BLOCK_N)
    o_t = tl.arange(0, BLOCK_L)
    m_d = o_d < DIM
    m_n = o_n < N
    m_nd = m_n[:, None] & m_d[None, :]
    r_x = (i_b * DIM + o_d).to(tl.int64) * L
    r_bc = ((i_b * N_GROUPS + i_g) * N + o_n).to(tl.int64) * L
    r_s = (i_b * DIM + o_d).to(tl.int64) * N_BLOCKS * N
    p_nd = (i_b * DIM + o_d)[None, :] * N + o_n[:, None]
    # dB, dC accumulate as (batch, G, L, N): the lanes of one atomic instruction, which run
    # over N, then hit neighbouring addresses instead of rows L apart
    r_dbc = (i_b * N_GROUPS + i_g).to(tl.int64) * L * N + o_n

    b_A = tl.load(A + o_d[None, :] * N + o_n[:, None], mask=m_nd, other=0).to(ACC)  # (BN, BD)
    b_A2 = b_A * LOG2E
    if HAS_D:
        b_D = tl.load(D + o_d, mask=m_d, other=0).to(ACC)
    if HAS_BIAS:
        b_bias = tl.load(delta_bias + o_d, mask=m_d, other=0).to(ACC)
    # q: what the block after this one sends back to h at this block's last step,
    # exp(delta_{t+1} A) g_{t+1} at its first step t + 1 (dlast, undecayed, after the end)
    if HAS_DLAST:
        b_q = tl.load(dlast + p_nd, mask=m_nd, other=0).to(ACC)
    else:
        b_q = tl.zeros([BLOCK_N, BLOCK_D], dtype=ACC)
    # dD, d(delta_bias) partial sums keep their block shape and are summed over L once, after
    # the loop; dA's starts as a sum over L so that it has the layout of the per-block sums
    # (a plain (BN, BD) zeros would cost a layout change in every iteration)
    b_dA_acc = tl.sum(tl.zeros([BLOCK_L, BLOCK_N, BLOCK_D], dtype=ACC), axis=0)
    b_dD_acc = tl.zeros([BLOCK_L, BLOCK_D], dtype=ACC)
    b_dbias_acc = tl.zeros([BLOCK_L, BLOCK_D], dtype=ACC)
    i_l = N_BLOCKS - 1
    # q_: raw tiles of the block to compute next (loaded one block ahead when PREFETCH)
    q_u, q_dt, q_z, q_do, q_B, q_C, q_h0 = _load_bwd_block(
        u, delta, z, dout, B, C, states, r_x, r_bc, r_s, m_d, o_n, i_l * BLOCK_L + o_t, i_l, L, N, HAS_Z
    )
    for i_r in tl.range(0, N_BLOCKS, num_stages=STAGES):
        i_l = N_BLOCKS - 1 - i_r
        o_l = i_l * BLOCK_L + o_t
        m_l = o_l < L
        m_ld = m_l[:, None] & m_d[None, :]
        p_x = o_l[:, None] + r_x[None, :]
        if not PREFETCH:
            q_u, q_dt, q_z, q_do, q_B, q_C, q_h0 = _load_bwd_block(
                u, delta, z, dout, B, C, states, r_x, r_bc, r_s, m_d, o_n, o_l, i_l, L, N, HAS_Z
            )
        b_u, b_dt_raw, b_z = q_u.to(ACC), q_dt.to(ACC), q_z.to(ACC)
        b_do, b_B, b_C, b_h0 = q_do.to(ACC), q_B.to(ACC), q_C.to(ACC), q_h0.to(ACC)
        if PREFETCH:
            # issue the previous block's loads now (past the start: nothing but a redundant state load)
            q_u, q_dt, q_z, q_do, q_B, q_C, q_h0 = _load_bwd_block(
                u, delta, z, dout, B, C, states, r_x, r_bc, r_s, m_d, o_n, o_l - BLOCK_L,
                tl.where(i_l > 0, i_l - 1, 0), L, N, HAS_Z,
            )
        if HAS_BIAS:
            b_dt_raw += b_bias[None, :]
        b_dt = b_dt_raw
        if SOFTPLUS:
            b_dt = _softplus(b_dt_raw)
        b_dt = tl.where(m_ld, b_dt, 0.0)

        # recompute h_t inside the block from the saved state at its start
        b_dtu = b_dt * b_u
        b_dBu = b_dtu[:, None, :] * b_B[:, :, None]  # (BL, BN, BD)
        b_dA = _exp2(b_dt[:, None, :] * b_A2[None, :, :], FAST_EXP)
        # the saved state folded into the first step's input, as in the forward
        b_x = b_dBu + tl.where((o_t == 0)[:, None, None], b_dA * b_h0[None, :, :], 0.0)
        _, b_hs = tl.associative_scan((b_dA, b_x), axis=0, combine_fn=_linear_combine)  # (BL, BN, BD)
        if HAS_Z:
            b_sig = tl.sigmoid(b_z)
            b_dy = b_do * b_z * b_sig
        else:
            b_dy = b_do
        # every use of h_t now, so that only exp(delta_t A) h_{t-1} = h_t - delta_t B_t u_t stays live
        p_dbc = o_l[:, None] * N + r_dbc[None, :]
        m_ln = m_l[:, None] & m_n[None, :]
        tl.atomic_add(dC + p_dbc, tl.sum(b_hs * b_dy[:, None, :], axis=2), mask=m_ln, sem="relaxed")
        if HAS_Z:
            b_y = tl.load(ygate + p_x, mask=m_ld, other=0).to(ACC)  # y before the gate, from the forward
            tl.store(dz + p_x, (b_do * b_y * b_sig * (1 + b_z * (1 - b_sig))).to(dz.dtype.element_ty),
                     mask=m_ld)
        b_hp = b_hs - b_dBu

        # adjoint: g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}, a scan from the end over this
        # block's own decays (q, from the block after, folded into the last step's input)
        b_gx = b_C[:, :, None] * b_dy[:, None, :]
        b_gx += tl.where((o_t == BLOCK_L - 1)[:, None, None], b_q[None, :, :], 0.0)
        # (a forward scan between flips: Triton's reverse=True also reverses the lanes of the
        # warp, 16 shuffles per operand, while a flip along the in-thread L axis is free)
        _, _, b_g = tl.associative_scan((tl.flip(b_dA, 0), tl.full(b_dA.shape, 1.0, ACC), tl.flip(b_gx, 0)),
                                        axis=0, combine_fn=_adjoint_combine)
        b_g = tl.flip(b_g, 0)
        b_q = tl.sum(tl.where((o_t == 0)[:, None, None], b_dA * b_g, 0.0), axis=0)
        tl.atomic_add(dB + p_dbc, tl.sum(b_g * b_dtu[:, None, :], axis=2), mask=m_ln, sem="relaxed")

        b_gh = b_g * b_hp
        b_gB = tl.sum(b_g * b_B[:, :, None], axis=1)  # (BL, BD)
        b_ddt = tl.sum(b_gh * b_A[None, :, :], axis=1) + b_gB * b_u
        b_du = b_gB * b_dt
        b_dA_acc += tl.sum(b_gh * b_dt[:, None, :], axis=0)
        if HAS_D:
            b_du += b_dy * b_D[None, :]
            b_dD_acc += b_dy * b_u
        if SOFTPLUS:
            b_ddt *= tl.sigmoid(b_dt_raw)
        b_ddt = tl.where(m_ld, b_ddt, 0.0)
        b_dbias_acc += b_ddt
        tl.store(du + p_x, b_du.to(du.dtype.element_ty), mask=m_ld)
        tl.store(ddelta + p_x, b_ddt.to(ddelta.dtype.element_ty), mask=m_ld)

    tl.store(dA_part + p_nd, b_dA_acc, mask=m_nd)
    if HAS_D:
        tl.store(dD_part + i_b * DIM + o_d, tl.sum(b_dD_acc, axis=0), mask=m_d)
    if HAS_BIAS:
        tl.store(dbias_part + i_b * DIM + o_d, tl.sum(b_dbias_acc, axis=0), mask=m_d)


@dataclass(frozen=True)
class LaunchShape:
    """How one kernel runs: block sizes, warps, and how loads overlap compute.

    Threads go over D first, then N: with block_d = 8 and one warp, a program is 8 channels
    x 4 groups of N/4 states, each thread walking block_l steps of its (N/4, 1) slice.
    prefetch: load block i + 1 while block i computes (registers); stages > 1: let Triton
    pipeline the loads through shared memory instead. maxnreg caps registers per thread
    (more warps resident, possibly spills).
    """

    block_d: int = 8
    block_l: int = 8
    num_warps: int = 1
    prefetch: bool = True
    stages: int = 1
    maxnreg: int | None = None

    def __post_init__(self) -> None:
        if any(v < 1 or v & (v - 1) for v in (self.block_d, self.block_l, self.num_warps)):
            raise BadInput(f"triton block sizes and warps must be powers of two, got {self}")

    def launch_options(self) -> dict[str, int]:
        opts = {"num_warps": self.num_warps}
        if self.maxnreg is not None:
            opts["maxnreg"] = self.maxnreg
        return opts


@dataclass(frozen=True)
class TritonScanConfig:
    """Launch shapes of the forward and the backward kernel. Under autograd the forward
    saves the state every bwd.block_l steps, so fwd.block_l must divide bwd.block_l.
    When B/C are grouped, block_d is cut to divide dim / groups."""

    fwd: LaunchShape = LaunchShape()
    bwd: LaunchShape = LaunchShape()

    def __post_init__(self) -> None:
        if self.bwd.block_l % self.fwd.block_l:
            raise BadInput(f"fwd block_l {self.fwd.block_l} must divide bwd block_l {self.bwd.block_l}")


def default_config() -> TritonScanConfig:
    """Launch shapes chosen on an H100 (sweeps in docs/design/kernels.md): forward 16 channels x 8
    steps, backward 4 channels x 16 steps, one warp each. Under the interpreter: small blocks,
    and a backward block of two forward blocks, so tests cover saving every other state."""
    if triton_interpreting():
        return TritonScanConfig(LaunchShape(block_d=4, block_l=8), LaunchShape(block_d=4, block_l=16))
    return TritonScanConfig(LaunchShape(block_d=16, block_l=8), LaunchShape(block_d=4, block_l=16))


def _fit_block_d(block_d: int, dim: int, groups: int) -> int:
    """Largest power of two <= block_d that divides dim / groups (any when ungrouped)."""
    if groups == 1:
        return min(block_d, triton.next_power_of_2(dim))
    per_group = dim // groups
    b = 1
    while b * 2 <= block_d and per_group % (b * 2) == 0:
        b *= 2
    return b


def _flags(ct: torch.dtype) -> dict[str, object]:
    fp64 = ct == torch.float64
    return {"ACC": tl.float64 if fp64 else tl.float32, "FAST_EXP": not fp64 and not triton_interpreting()}


def _empty(*shape: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Fresh output buffer; NaN-filled when SSMBENCH_POISON_OUTPUTS=1 (tests), so an element
    a kernel forgets to write cannot pass a comparison."""
    shape = shape or tuple(like.shape)
    dtype = dtype or like.dtype
    if os.environ.get("SSMBENCH_POISON_OUTPUTS") == "1":
        return torch.full(shape, float("nan"), device=like.device, dtype=dtype)
    return torch.empty(shape, device=like.device, dtype=dtype)


def _contig(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, cfg, save_states, ct):
    """Launch the forward. Returns out, last_state (batch, dim, N), and when ``save_states``
    what the backward needs: states, the state every bwd.block_l steps
    (batch, dim, cdiv(L, bwd.block_l), N), and ygate, y before the z gate (batch, dim, L) in
    u's dtype (None without z); else (None, None)."""
    batch, dim, L = u.shape
    N = A.shape[1]
    groups = B.shape[1]
    ls = cfg.fwd
    block_d = _fit_block_d(ls.block_d, dim, groups)
    n_blocks = triton.cdiv(L, ls.block_l)
    out = _empty(like=u)
    last = _empty(batch, dim, N, like=u, dtype=ct)
    n_states = triton.cdiv(L, cfg.bwd.block_l)
    states = _empty(batch, dim, n_states, N, like=u, dtype=ct) if save_states else last
    save_y = save_states and z is not None
    ygate = _empty(like=u) if save_y else out
    grid = (triton.cdiv(dim, block_d), batch)
    selective_scan_fwd_kernel[grid](
        u, delta, A, B, C, D if D is not None else u, z if z is not None else u,
        delta_bias if delta_bias is not None else u, out, last, states, ygate,
        L, dim, N, dim // groups, groups, n_blocks, n_states,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=delta_softplus, SAVE_STATES=save_states, STATE_EVERY=cfg.bwd.block_l // ls.block_l,
        STORE_LAST=True, SAVE_Y=save_y, **_flags(ct), PREFETCH=ls.prefetch, STAGES=ls.stages,
        BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(N), BLOCK_L=ls.block_l, **ls.launch_options(),
    )
    return out, last, (states if save_states else None), (ygate if save_y else None)


def _bwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, states, ygate, dout, dlast, cfg, ct):
    """Launch the backward. Returns du, ddelta, dz (input dtypes), dA, dB, dC, dD, dbias
    (fp32/fp64 sums); dB and dC as (batch, G, N, L) views of (batch, G, L, N) buffers."""
    batch, dim, L = u.shape
    N = A.shape[1]
    groups = B.shape[1]
    ls = cfg.bwd
    block_d = _fit_block_d(ls.block_d, dim, groups)
    n_blocks = states.shape[2]
    du, ddelta = _empty(like=u), _empty(like=delta)
    dz = _empty(like=z) if z is not None else None
    dB = torch.zeros(batch, groups, L, N, device=u.device, dtype=ct)
    dC = torch.zeros(batch, groups, L, N, device=u.device, dtype=ct)
    dA_part = _empty(batch, dim, N, like=u, dtype=ct)
    dD_part = _empty(batch, dim, like=u, dtype=ct) if D is not None else None
    dbias_part = _empty(batch, dim, like=u, dtype=ct) if delta_bias is not None else None
    grid = (triton.cdiv(dim, block_d), batch)
    selective_scan_bwd_kernel[grid](
        u, delta, A, B, C, D if D is not None else u, z if z is not None else u,
        delta_bias if delta_bias is not None else u, states, ygate if ygate is not None else u,
        dout, dlast if dlast is not None else u,
        du, ddelta, dz if dz is not None else du, dA_part, dB, dC,
        dD_part if dD_part is not None else dA_part, dbias_part if dbias_part is not None else dA_part,
        L, dim, N, dim // groups, groups, n_blocks,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=delta_softplus, HAS_DLAST=dlast is not None, **_flags(ct),
        PREFETCH=ls.prefetch, STAGES=ls.stages,
        BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(N), BLOCK_L=ls.block_l, **ls.launch_options(),
    )
    dD = dD_part.sum(0) if dD_part is not None else None
    dbias = dbias_part.sum(0) if dbias_part is not None else None
    return du, ddelta, dA_part.sum(0), dB.transpose(2, 3), dC.transpose(2, 3), dD, dz, dbias


class SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, cfg):
        b_shape, c_shape = B.shape, C.shape
        # one layout: (batch, G, N, L), contiguous along L
        B4 = B.unsqueeze(1) if B.dim() == 3 else B
        C4 = C.unsqueeze(1) if C.dim() == 3 else C
        u, delta, B4, C4, z = (_contig(t) for t in (u, delta, B4, C4, z))
        A, D, delta_bias = (_contig(t) for t in (A, D, delta_bias))
        ct = compute_dtype(u, delta, A, B, C)
        save = any(ctx.needs_input_grad)
        out, last, states, ygate = _fwd(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, cfg, save, ct)
        if save:
            ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, states, ygate)
            ctx.args = (delta_softplus, cfg, ct, b_shape, c_shape, B.dtype, C.dtype)
        if return_last_state:
            return out, last
        return out

    @staticmethod
    def backward(ctx, dout, dlast=None):
        u, delta, A, B4, C4, D, z, delta_bias, states, ygate = ctx.saved_tensors
        delta_softplus, cfg, ct, b_shape, c_shape, b_dtype, c_dtype = ctx.args
        dout = torch.zeros_like(u) if dout is None else dout.contiguous()
        dlast = None if dlast is None else dlast.contiguous()
        du, ddelta, dA, dB, dC, dD, dz, dbias = _bwd(
            u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, states, ygate, dout, dlast, cfg, ct
        )
        return (
            du, ddelta, dA.to(A.dtype), dB.reshape(b_shape).to(b_dtype), dC.reshape(c_shape).to(c_dtype),
            None if dD is None else dD.to(D.dtype), dz,
            None if dbias is None else dbias.to(delta_bias.dtype), None, None, None,
        )


def selective_scan_triton(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    config: TritonScanConfig | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fused selective scan (mamba_ssm ``selective_scan_fn`` contract), differentiable.

    u, delta, z: (batch, dim, L) in fp32/bf16/fp16 (fp64 computes in fp64);
    A: (dim, N); B, C: (batch, N, L) or grouped (batch, G, N, L); D, delta_bias: (dim,).
    State and sums in fp32. Returns out (batch, dim, L) in u's dtype, and with
    ``return_last_state`` the final state (batch, dim, N) in fp32 (fp64 for fp64 inputs).
    """
    batch, dim, L, N, groups = scan_shapes(u, delta, A, B, C, D, z, delta_bias)
    if u.device.type != "cuda" and not triton_interpreting():
        raise BackendUnavailable("the triton scan needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    if L == 0:
        raise BadInput("the triton scan needs L >= 1")
    cfg = config or default_config()
    return SelectiveScanTriton.apply(
        u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), bool(return_last_state), cfg
    )
