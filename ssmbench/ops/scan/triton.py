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
dB and dC are sums over channels: each program adds its (BLOCK_L, N) share with atomics (into one
of several copies of the buffer when TritonScanConfig.dbc_copies asks); dA, dD and
d(delta_bias) are added over batch rows with atomics too, all into one zero-filled buffer whose
views are the gradients, left in fp32 for the autograd engine to cast.
At N >= 64 the backward splits the states over programs (LaunchShape.block_n), which add
their shares of du and ddelta with atomics. Launch shapes by N: SHAPES, default_config.
The host side is kept short (it exceeds the kernels' time at short L): what a call needs (checked
sizes, launch plans, buffer layouts) is cached under its shapes, dtypes and flags (_Call), kernels
are launched through their compiled launcher (_Launcher), the backward's gradients are views of
one zero-filled buffer (one ``as_strided`` each), and a call that needs no gradient builds no
autograd node. Design notes
and measurements: docs/design/kernels.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton import knobs
from triton.runtime import driver

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.ops.buffers import new_output, poisoning
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
    L, DIM, N, N_GROUPS, N_BLOCKS, N_STATES,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_STATES: tl.constexpr, STATE_EVERY: tl.constexpr, STORE_LAST: tl.constexpr, SAVE_Y: tl.constexpr,
    ACC: tl.constexpr, FAST_EXP: tl.constexpr, PREFETCH: tl.constexpr, STAGES: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    # tiles are (L, N, D) with D last: Triton spreads threads over the last axis first, so
    # each thread owns whole (L, N) slices of its channels: the scan along L and the sum
    # over N stay inside the thread, with no shuffles.
    i_d, i_b = tl.program_id(0), tl.program_id(1)
    i_g = (i_d * BLOCK_D) // (DIM // N_GROUPS)
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
    # (N_BLOCKS passed rather than cdiv(L, BLOCK_L) here: that costs 18 more instructions per
    # block of the loop, 2.4%, and 16 registers; benchmarks/sass_count.py)
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
    du, ddelta, dz, dA, dB, dC, dD, dbias,
    L, DIM, N, N_GROUPS, DBC_COPIES,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DLAST: tl.constexpr, DBC_STORE: tl.constexpr, SPLIT_N: tl.constexpr, ACC: tl.constexpr,
    FAST_EXP: tl.constexpr, PREFETCH: tl.constexpr, STAGES: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):
    # same (L, N, D) tiles as the forward; program (i_d, i_b, i_c) owns states
    # i_c * BLOCK_N ... + BLOCK_N. With SPLIT_N (several such chunks) du and ddelta, sums over
    # the states, are added into fp32 buffers, and the terms without a state (D, z) are chunk 0's.
    i_d, i_b, i_c = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_blocks = tl.cdiv(L, BLOCK_L)
    i_g = (i_d * BLOCK_D) // (DIM // N_GROUPS)
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    o_n = i_c * BLOCK_N + tl.arange(0, BLOCK_N)
    o_t = tl.arange(0, BLOCK_L)
    m_d = o_d < DIM
    if SPLIT_N:
        # (a tensor comparison: a scalar one does not combine with a mask in the interpreter)
        m_d0 = m_d & (o_d * 0 + i_c == 0)
    else:
        m_d0 = m_d
    m_n = o_n < N
    m_nd = m_n[:, None] & m_d[None, :]
    r_x = (i_b * DIM + o_d).to(tl.int64) * L
    r_bc = ((i_b * N_GROUPS + i_g) * N + o_n).to(tl.int64) * L
    r_s = (i_b * DIM + o_d).to(tl.int64) * n_blocks * N
    p_nd = o_d[None, :] * N + o_n[:, None]
    # dB, dC accumulate as (copies, batch, G, L, N): the lanes of one atomic instruction, which
    # run over N, then hit neighbouring addresses instead of rows L apart. Program i_d adds into
    # copy i_d % DBC_COPIES, so that only 1 / DBC_COPIES of a row's programs contend for an
    # address; with DBC_STORE every program owns its copy and stores instead.
    r_dbc = ((i_d % DBC_COPIES) * tl.num_programs(1) + i_b) * N_GROUPS + i_g
    r_dbc = r_dbc.to(tl.int64) * L * N + o_n

    b_A = tl.load(A + o_d[None, :] * N + o_n[:, None], mask=m_nd, other=0).to(ACC)  # (BN, BD)
    b_A2 = b_A * LOG2E
    if HAS_D:
        # zero past chunk 0: D's term of du enters once
        b_D = tl.load(D + o_d, mask=m_d0, other=0).to(ACC)
    if HAS_BIAS:
        b_bias = tl.load(delta_bias + o_d, mask=m_d, other=0).to(ACC)
    # q: what the block after this one sends back to h at this block's last step,
    # exp(delta_{t+1} A) g_{t+1} at its first step t + 1 (dlast, undecayed, after the end)
    if HAS_DLAST:
        b_q = tl.load(dlast + i_b * DIM * N + p_nd, mask=m_nd, other=0).to(ACC)
    else:
        b_q = tl.zeros([BLOCK_N, BLOCK_D], dtype=ACC)
    # dD, d(delta_bias) partial sums keep their block shape and are summed over L once, after
    # the loop; dA's starts as a sum over L so that it has the layout of the per-block sums
    # (a plain (BN, BD) zeros would cost a layout change in every iteration)
    b_dA_acc = tl.sum(tl.zeros([BLOCK_L, BLOCK_N, BLOCK_D], dtype=ACC), axis=0)
    b_dD_acc = tl.zeros([BLOCK_L, BLOCK_D], dtype=ACC)
    b_dbias_acc = tl.zeros([BLOCK_L, BLOCK_D], dtype=ACC)
    i_l = n_blocks - 1
    # q_: raw tiles of the block to compute next (loaded one block ahead when PREFETCH)
    q_u, q_dt, q_z, q_do, q_B, q_C, q_h0 = _load_bwd_block(
        u, delta, z, dout, B, C, states, r_x, r_bc, r_s, m_d, o_n, i_l * BLOCK_L + o_t, i_l, L, N, HAS_Z
    )
    for i_r in tl.range(0, n_blocks, num_stages=STAGES):
        i_l = n_blocks - 1 - i_r
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
        b_dC = tl.sum(b_hs * b_dy[:, None, :], axis=2)
        if DBC_STORE:
            tl.store(dC + p_dbc, b_dC, mask=m_ln)
        else:
            tl.atomic_add(dC + p_dbc, b_dC, mask=m_ln, sem="relaxed")
        if HAS_Z:
            m_ld0 = m_l[:, None] & m_d0[None, :]
            b_y = tl.load(ygate + p_x, mask=m_ld0, other=0).to(ACC)  # y before the gate, from the forward
            tl.store(dz + p_x, (b_do * b_y * b_sig * (1 + b_z * (1 - b_sig))).to(dz.dtype.element_ty),
                     mask=m_ld0)
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
        b_dB = tl.sum(b_g * b_dtu[:, None, :], axis=2)
        if DBC_STORE:
            tl.store(dB + p_dbc, b_dB, mask=m_ln)
        else:
            tl.atomic_add(dB + p_dbc, b_dB, mask=m_ln, sem="relaxed")

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
        if SPLIT_N:
            tl.atomic_add(du + p_x, b_du, mask=m_ld, sem="relaxed")
            tl.atomic_add(ddelta + p_x, b_ddt, mask=m_ld, sem="relaxed")
        else:
            tl.store(du + p_x, b_du.to(du.dtype.element_ty), mask=m_ld)
            tl.store(ddelta + p_x, b_ddt.to(ddelta.dtype.element_ty), mask=m_ld)

    # the sums over batch rows: batch-way contention only, once per program
    tl.atomic_add(dA + p_nd, b_dA_acc, mask=m_nd, sem="relaxed")
    if HAS_D:
        tl.atomic_add(dD + o_d, tl.sum(b_dD_acc, axis=0), mask=m_d0, sem="relaxed")
    if HAS_BIAS:
        tl.atomic_add(dbias + o_d, tl.sum(b_dbias_acc, axis=0), mask=m_d, sem="relaxed")


@dataclass(frozen=True)
class LaunchShape:
    """How one kernel runs: block sizes, warps, and how loads overlap compute.

    Threads go over D first, then N, then L; warps likewise. With block_d = 8 and one warp, a
    program is 8 channels x 4 groups of N/4 states, each thread walking block_l steps of its
    (N/4, 1) slice. Registers grow with the elements per thread of one (block_l, N, block_d)
    tile, block_l * N * block_d / (32 * num_warps).
    prefetch: load block i + 1 while block i computes (registers); stages > 1: let Triton
    pipeline the loads through shared memory instead. maxnreg caps registers per thread
    (more warps resident, possibly spills). block_n (backward only): states per program, the
    others in more programs (grid axis 2), whose du and ddelta go through fp32 atomics;
    None: all of N in one program.
    """

    block_d: int = 8
    block_l: int = 8
    num_warps: int = 1
    prefetch: bool = True
    stages: int = 1
    maxnreg: int | None = None
    block_n: int | None = None

    def __post_init__(self) -> None:
        sizes = (self.block_d, self.block_l, self.num_warps, self.block_n or 1)
        if any(v < 1 or v & (v - 1) for v in sizes):
            raise BadInput(f"triton block sizes and warps must be powers of two, got {self}")

    def launch_options(self) -> tuple[tuple[str, int], ...]:
        opts = (("num_warps", self.num_warps),)
        if self.maxnreg is not None:
            opts += (("maxnreg", self.maxnreg),)
        return opts


@dataclass(frozen=True)
class TritonScanConfig:
    """Launch shapes of the forward and the backward kernel, and how the backward sums dB, dC
    over channels. Under autograd the forward saves the state every bwd.block_l steps, so
    fwd.block_l must divide bwd.block_l. When B/C are grouped, block_d is cut to divide
    dim / groups.

    dbc_copies: the backward's programs add their dB/dC shares into this many copies of the
    (batch, G, L, N) fp32 buffer (program i into copy i % copies, summed after the kernel), so
    fewer programs contend for one address, at copies x the buffer's memory; capped at the
    programs per group. 0: one copy per program, written with plain stores (no atomics and no
    zero fill; memory batch * G * L * N * 8 bytes per program of a group).
    """

    fwd: LaunchShape = LaunchShape()
    bwd: LaunchShape = LaunchShape()
    dbc_copies: int = 1

    def __post_init__(self) -> None:
        if self.bwd.block_l % self.fwd.block_l:
            raise BadInput(f"fwd block_l {self.fwd.block_l} must divide bwd block_l {self.bwd.block_l}")
        if self.dbc_copies < 0:
            raise BadInput(f"dbc_copies must be >= 0, got {self.dbc_copies}")
        if self.fwd.block_n is not None:
            raise BadInput("block_n splits the states of the backward only; the forward holds all of N")


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# Launch shapes by N rounded up to a power of two: (forward, backward). N = 16 was swept on an
# H100 (docs/design/kernels.md). Registers grow with the elements per thread of a (block_l, N, block_d)
# tile, block_l * N * block_d / (32 * num_warps), and with block_l (the (block_l, block_d) tiles
# are held whole by every thread of a channel). Under ptxas for sm_90 (benchmarks/sass_count.py
# --resources, triton 3.9) the forward fits 64 elements per thread and the backward 32 at N <= 32
# without spills; at N = 64 and 128 every backward shape of 32 elements per thread spills
# (96 to 320 bytes), and the N = 16 shapes at N = 64 spill 3.3 KB. So the backward splits the
# states over programs there (block_n): chunks of 16 states run N = 16's backward (249 registers,
# no spill), and save the state every 16 steps (half the memory of chunks of 32 at block_l 8).
SHAPES: dict[int, tuple[LaunchShape, LaunchShape]] = {
    16: (LaunchShape(16, 8), LaunchShape(4, 16)),
    32: (LaunchShape(8, 8), LaunchShape(4, 8)),
    64: (LaunchShape(4, 8), LaunchShape(4, 16, block_n=16)),
    128: (LaunchShape(4, 8, num_warps=2), LaunchShape(4, 16, block_n=16)),
}
# dB/dC copies in the backward by default: one at every L. At short L every program of a batch row
# starts at the same block and adds into the same block_l x N addresses, which copies spread; on
# an H200 at (8, 2048, 256, 16) 32 copies saved 4 us of GPU time (0.260 vs 0.264 ms forward +
# backward as a graph replay) and 18 us at L = 512, but their sum is one more op and kernel per
# call, and there the eager call is timed at the host's pace (docs/results.md, selective-scan
# kernels). TritonScanConfig.dbc_copies still selects copies.
DBC_COPIES = 1


def default_config(
    batch: int = 8, dim: int = 1536, L: int = 2048, N: int = 16, groups: int = 1
) -> TritonScanConfig:
    """Launch shapes for one problem size: SHAPES by N (N above 128 as 128), DBC_COPIES dB/dC
    copies. Under the interpreter: small blocks, and a backward block of two forward blocks, so
    tests cover saving every other state."""
    return _default_config(batch, dim, L, N, groups, triton_interpreting())


@functools.lru_cache(maxsize=256)
def _default_config(batch: int, dim: int, L: int, N: int, groups: int, interp: bool) -> TritonScanConfig:
    if interp:
        return TritonScanConfig(LaunchShape(block_d=4, block_l=8), LaunchShape(block_d=4, block_l=16))
    fwd, bwd = SHAPES[min(max(_next_pow2(N), 16), 128)]
    return TritonScanConfig(fwd, bwd, dbc_copies=DBC_COPIES)


def _fit_block_d(block_d: int, dim: int, groups: int) -> int:
    """Largest power of two <= block_d that divides dim / groups (any when ungrouped)."""
    if groups == 1:
        return min(block_d, _next_pow2(dim))
    per_group = dim // groups
    b = 1
    while b * 2 <= block_d and per_group % (b * 2) == 0:
        b *= 2
    return b


class _Launcher:
    """One kernel, launched as ``kernel[grid](*args, **constexprs)`` the first time for each
    specialisation, then straight through the compiled kernel's launcher.

    Triton's launch path binds and specialises all of the kernel's parameters (about 40 here)
    and builds a cache-key string on every call, and its launcher asks each tensor for its
    pointer and the driver whether the pointer is a device one: tens of microseconds of host time,
    more than the kernel itself at short L. Here the compiled kernel is cached under what Triton
    specialises on (_launch_key: the current device, each pointer's dtype and 16-byte alignment,
    each integer's == 1, % 16 == 0 and 32-bit range, the constexprs and the options) and launched
    with the pointers as integers (the callers check that the tensors are on the GPU). Triton
    3.6 and 3.9 launch a compiled kernel the same way (``kernel.run(grid, stream, function,
    packed_metadata, launch_metadata, hooks, *all parameters)``). Plain ``kernel[grid]`` is used
    under the interpreter, while a launch hook is registered (profilers), and for good once the
    compiled kernel does not look as expected (another Triton version).
    """

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.cache: dict[tuple, tuple] = {}
        params = getattr(kernel, "params", None)
        self.fast = isinstance(kernel, triton.runtime.jit.JITFunction) and params is not None
        if self.fast:
            n_runtime = sum(not p.is_constexpr for p in params)
            # the launcher takes the parameters in order: here all runtime ones come first
            self.fast = all(p.is_constexpr for p in params[n_runtime:])
            self.const_names = tuple(p.name for p in params[n_runtime:])

    def order(self, consts: dict[str, object]) -> tuple | None:
        """The constexpr values in the kernel's parameter order (None when not launching fast)."""
        return tuple(consts[k] for k in self.const_names) if self.fast else None

    def __call__(self, plan: _Plan, tensors: tuple[Tensor, ...]) -> None:
        """Launch with ``tensors`` as the pointer parameters, then ``plan.ints``."""
        key = None
        if self.fast and _idle(knobs.runtime.launch_enter_hook) and _idle(knobs.runtime.launch_exit_hook):
            ptrs = [t.data_ptr() for t in tensors]
            device = driver.active.get_current_device()
            key = (device, plan.key, _launch_key(tensors, ptrs))
            hit = self.cache.get(key)
            if hit is not None:
                run, function, metadata = hit
                g = plan.grid
                try:
                    run(g[0], g[1], g[2], driver.active.get_current_stream(device), function, metadata,
                        None, None, None, *ptrs, *plan.ints, *plan.const_values)
                    return
                except (TypeError, ValueError):
                    # the launcher did not take the call (nothing ran): use Triton's own path
                    self.fast = False
        compiled = self.kernel[plan.grid](*tensors, *plan.ints, **plan.consts, **dict(plan.options))
        if key is not None:
            try:
                self.cache[key] = (compiled.run, compiled.function, compiled.packed_metadata)
            except AttributeError:
                self.fast = False


def _idle(hook: object) -> bool:
    """Whether a Triton launch hook does nothing (None, or a HookChain with no calls): then the
    launcher may be given None for it and for the launch metadata only hooks read."""
    return hook is None or getattr(hook, "calls", None) == []


def _int_key(ints: tuple[int, ...]) -> tuple:
    """What Triton specialises a kernel on, per integer argument."""
    return tuple((a == 1, a % 16 == 0, a < 2**31) for a in ints)


def _launch_key(tensors: tuple[Tensor, ...], ptrs: list[int]) -> tuple:
    """What Triton specialises a kernel on, per pointer argument (see _Launcher): the dtypes, and
    True when every pointer is 16-byte aligned (the usual case, one check), else the alignment of
    each."""
    low = 0
    for p in ptrs:
        low |= p
    aligned = True if low % 16 == 0 else tuple([p % 16 == 0 for p in ptrs])
    return tuple([t.dtype for t in tensors]), aligned


class _Plan(NamedTuple):
    """Everything about one launch that depends only on sizes and flags (built once per _Call)."""

    grid: tuple[int, int, int]
    consts: dict[str, object]
    const_values: tuple | None
    options: tuple[tuple[str, int], ...]
    ints: tuple[int, ...]  # the kernel's integer parameters, after its pointers
    n_states: int  # forward: states saved per channel; backward: dB/dC copies
    dbc_store: bool = False
    key: tuple = ()  # the launch's specialisation apart from its pointers (_plan fills it)

    @property
    def split_n(self) -> bool:
        return self.grid[2] > 1


def _plan(grid: tuple[int, int, int], consts: dict[str, object], launcher: _Launcher,
          options: tuple[tuple[str, int], ...], ints: tuple[int, ...], n_states: int, dbc_store: bool = False
          ) -> _Plan:
    const_values = launcher.order(consts)
    return _Plan(grid, consts, const_values, options, ints, n_states, dbc_store,
                 (const_values, options, _int_key(ints)))


FWD = _Launcher(selective_scan_fwd_kernel)
BWD = _Launcher(selective_scan_bwd_kernel)


def _flags(fp64: bool, interp: bool) -> dict[str, object]:
    return {"ACC": tl.float64 if fp64 else tl.float32, "FAST_EXP": not fp64 and not interp}


def _fwd_plan(cfg: TritonScanConfig, batch: int, dim: int, L: int, N: int, groups: int, fp64: bool,
              interp: bool, flags: tuple[bool, ...], save: bool, store_last: bool) -> _Plan:
    has_d, has_z, has_bias, softplus = flags
    ls = cfg.fwd
    block_d = _fit_block_d(ls.block_d, dim, groups)
    consts = dict(
        HAS_D=has_d, HAS_Z=has_z, HAS_BIAS=has_bias, SOFTPLUS=softplus, SAVE_STATES=save,
        STATE_EVERY=cfg.bwd.block_l // ls.block_l, STORE_LAST=store_last, SAVE_Y=save and has_z,
        **_flags(fp64, interp), PREFETCH=ls.prefetch, STAGES=ls.stages,
        BLOCK_D=block_d, BLOCK_N=_next_pow2(N), BLOCK_L=ls.block_l,
    )
    grid = (_cdiv(dim, block_d), batch, 1)
    n_states = _cdiv(L, cfg.bwd.block_l)
    ints = (L, dim, N, groups, _cdiv(L, ls.block_l), n_states)
    return _plan(grid, consts, FWD, ls.launch_options(), ints, n_states)


def _bwd_plan(cfg: TritonScanConfig, batch: int, dim: int, L: int, N: int, groups: int, fp64: bool,
              interp: bool, flags: tuple[bool, ...], has_dlast: bool) -> _Plan:
    has_d, has_z, has_bias, softplus = flags
    ls = cfg.bwd
    block_d = _fit_block_d(ls.block_d, dim, groups)
    per_group = _cdiv(dim // groups, block_d)
    store = cfg.dbc_copies == 0
    copies = per_group if store else min(cfg.dbc_copies, per_group)
    block_n = min(_next_pow2(N), ls.block_n or _next_pow2(N))
    chunks = _cdiv(N, block_n)
    consts = dict(
        HAS_D=has_d, HAS_Z=has_z, HAS_BIAS=has_bias, SOFTPLUS=softplus, HAS_DLAST=has_dlast, DBC_STORE=store,
        SPLIT_N=chunks > 1, **_flags(fp64, interp), PREFETCH=ls.prefetch, STAGES=ls.stages,
        BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=ls.block_l,
    )
    grid = (_cdiv(dim, block_d), batch, chunks)
    return _plan(grid, consts, BWD, ls.launch_options(), (L, dim, N, groups, copies), copies, store)


def _or(t: Tensor | None, dummy: Tensor) -> Tensor:
    # an absent optional tensor is passed as any pointer: its constexpr flag is off, it is never read
    return dummy if t is None else t


class View(NamedTuple):
    """One ``as_strided`` view of a buffer."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int


def _contiguous_view(shape: tuple[int, ...], offset: int) -> View:
    stride, n = [], 1
    for d in reversed(shape):
        stride.append(n)
        n *= d
    return View(tuple(shape), tuple(reversed(stride)), offset)


def _bc_view(shape: tuple[int, ...], groups: int, L: int, N: int, offset: int) -> View:
    """B's or C's shape, (batch, N, L) or (batch, G, N, L), over a (batch, G, L, N) buffer."""
    if len(shape) == 3:
        return View(tuple(shape), (groups * L * N, 1, N), offset)
    return View(tuple(shape), (groups * L * N, L * N, 1, N), offset)


class _Call(NamedTuple):
    """What one call needs that depends only on its inputs' shapes and dtypes, the flags, the
    config and poisoning: built once per such key (_new_call), so that a repeated call does one
    dict lookup instead of the shape checks, the config and two plan lookups.

    The backward's buffers: one zero-filled ct buffer (acc_numel elements) for every sum the
    kernel accumulates, in this order: du and ddelta (2 * batch * dim * L when the states are
    split over programs, else nothing), dB and dC (nothing when stored: then a buffer of their
    own), dA, dD, d(delta_bias). The gradients are views of it made by one ``as_strided`` each
    (View: shape, strides, offset), in ct: the autograd engine casts a gradient to its input's
    dtype itself, in C++, cheaper than a cast from Python. dB and dC accumulate as
    (batch, G, L, N) (the kernel's atomics then hit neighbouring addresses): their views have
    B's and C's shapes with transposing strides. With several dB/dC copies, or stored ones, they
    are summed after the kernel instead (bc_sum; bc: (2, copies, batch, G, L, N) in acc). du,
    ddelta (and dz) in one buffer of dx_shape, (2 or 3, batch, dim, L), when they are not summed
    in ct and their dtypes agree; else None."""

    batch: int
    dim: int
    L: int
    N: int
    groups: int
    ct: torch.dtype
    poison: bool
    store_last: bool
    fwd: _Plan  # no gradient: nothing saved
    fwd_save: _Plan  # under autograd: saves what the backward needs
    bwd: tuple[_Plan, _Plan]  # without, with a gradient of the final state
    acc_numel: int
    dx_acc: tuple[View, View] | None  # du, ddelta in acc (states split over programs)
    dB: View  # (copies of) dB/dC at their place in acc (bc_sum: the start of each region)
    dC: View
    dA: View
    dD: View
    dbias: View
    bc_sum: bool
    bc: View  # (2, copies, batch, G, L, N) from dB's offset (a stored one: a buffer of this shape)
    dx_shape: tuple[int, ...] | None


_CALLS: dict[tuple, _Call] = {}
MAX_CALLS = 512  # then the cache starts over


def _no_cuda() -> None:
    raise BackendUnavailable("the triton scan needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")


def _new_call(key: tuple, u, delta, A, B, C, D, z, delta_bias, softplus: bool, store_last: bool, interp: bool,
              poison: bool, config: TritonScanConfig | None) -> _Call:
    """Check one call's inputs (the shapes as every backend does, then CUDA and L) and cache its
    _Call under ``key``."""
    batch, dim, L, N, groups = scan_shapes(u, delta, A, B, C, D, z, delta_bias)
    if L == 0:
        raise BadInput("the triton scan needs L >= 1")
    cfg = config or _default_config(batch, dim, L, N, groups, interp)
    ct = compute_dtype(u, delta, A, B, C)
    sizes = (cfg, batch, dim, L, N, groups, ct == torch.float64, interp,
             (D is not None, z is not None, delta_bias is not None, softplus))
    bwd = (_bwd_plan(*sizes, False), _bwd_plan(*sizes, True))
    copies, store, split_n = bwd[0].n_states, bwd[0].dbc_store, bwd[0].split_n
    n_x = u.numel() if split_n else 0
    n_bc = copies * batch * groups * L * N
    o_bc = 2 * n_x  # offsets into acc
    o_dA = o_bc + (0 if store else 2 * n_bc)
    o_dD = o_dA + dim * N
    dx_acc = (_contiguous_view(u.shape, 0), _contiguous_view(u.shape, n_x)) if split_n else None
    bc_sum = copies > 1 or store
    if bc_sum:  # the kernel gets the start of each region; the sum over copies makes the gradients
        dB, dC = View((n_bc,), (1,), o_bc), View((n_bc,), (1,), o_bc + n_bc)
    else:
        dB, dC = _bc_view(B.shape, groups, L, N, o_bc), _bc_view(C.shape, groups, L, N, o_bc + n_bc)
    same = u.dtype == delta.dtype and (z is None or z.dtype == u.dtype)
    dx_shape = (2 + (z is not None), batch, dim, L) if same and not split_n else None
    fwd = (_fwd_plan(*sizes, False, store_last), _fwd_plan(*sizes, True, store_last))
    c = _Call(batch, dim, L, N, groups, ct, poison, store_last, *fwd, bwd, o_dD + 2 * dim, dx_acc, dB, dC,
              View((dim, N), (N, 1), o_dA), View((dim,), (1,), o_dD), View((dim,), (1,), o_dD + dim),
              bc_sum, _contiguous_view((2, copies, batch, groups, L, N), o_bc), dx_shape)
    if len(_CALLS) >= MAX_CALLS:
        _CALLS.clear()
    _CALLS[key] = c
    return c


def _fwd(c: _Call, save: bool, u, delta, A, B, C, D, z, delta_bias):
    """Launch the forward on contiguous inputs (B, C: (batch, N, L) or (batch, G, N, L)).
    Returns out, last_state (batch, dim, N) or None without ``c.store_last``, and when ``save``
    what the backward needs: states, the state every bwd.block_l steps
    (batch, dim, cdiv(L, bwd.block_l), N), and ygate, y before the z gate (batch, dim, L) in
    u's dtype (None without z); else (None, None)."""
    plan = c.fwd_save if save else c.fwd
    poison, batch, dim, N = c.poison, c.batch, c.dim, c.N
    out = new_output(*u.shape, like=u, dtype=u.dtype, poison=poison)
    last = new_output(batch, dim, N, like=u, dtype=c.ct, poison=poison) if c.store_last else None
    states = new_output(batch, dim, plan.n_states, N, like=u, dtype=c.ct, poison=poison) if save else None
    ygate = new_output(*u.shape, like=u, dtype=u.dtype, poison=poison) if save and z is not None else None
    FWD(plan, (
        u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u),
        out, _or(last, out), _or(states, out), _or(ygate, out),
    ))
    return out, last, states, ygate


def _bwd(c: _Call, u, delta, A, B, C, D, z, delta_bias, states, ygate, dout, dlast) -> tuple:
    """Launch the backward. Returns the gradients of u, delta, A, B, C, D, z, delta_bias (None for
    an absent D, z, delta_bias), sums in ct (the autograd engine casts them): du, ddelta, dz may
    be views of one buffer, dA (dim, N), dD, dbias (dim,), dB and dC views of the sum buffer."""
    plan = c.bwd[dlast is not None]
    poison = c.poison
    acc = torch.zeros(c.acc_numel, device=u.device, dtype=c.ct)
    if plan.dbc_store:
        bc = new_output(*c.bc.shape, like=u, dtype=c.ct, poison=poison)
        dB, dC = bc.unbind(0)
    else:
        dB, dC = acc.as_strided(*c.dB), acc.as_strided(*c.dC)
    if plan.split_n:
        # du, ddelta summed over state chunks in ct
        du, ddelta = acc.as_strided(*c.dx_acc[0]), acc.as_strided(*c.dx_acc[1])
        dz = new_output(*z.shape, like=u, dtype=z.dtype, poison=poison) if z is not None else None
    elif c.dx_shape is not None:
        grads = new_output(*c.dx_shape, like=u, dtype=u.dtype, poison=poison).unbind(0)
        du, ddelta, dz = grads if z is not None else (*grads, None)
    else:
        du = new_output(*u.shape, like=u, dtype=u.dtype, poison=poison)
        ddelta = new_output(*delta.shape, like=u, dtype=delta.dtype, poison=poison)
        dz = new_output(*z.shape, like=u, dtype=z.dtype, poison=poison) if z is not None else None
    dA, dD, dbias = acc.as_strided(*c.dA), acc.as_strided(*c.dD), acc.as_strided(*c.dbias)
    BWD(plan, (
        u, delta, A, B, C, _or(D, u), _or(z, u), _or(delta_bias, u),
        states, _or(ygate, u), dout, _or(dlast, u),
        du, ddelta, _or(dz, du), dA, dB, dC, dD, dbias,
    ))
    if c.bc_sum:
        # (2, copies, batch, G, L, N) summed over the copies, as B's and C's shapes
        bc = bc if plan.dbc_store else acc.as_strided(*c.bc)
        dB, dC = bc.sum(1).transpose(-1, -2).unbind(0)
        dB, dC = dB.reshape(B.shape), dC.reshape(C.shape)
    return (du, ddelta, dA, dB, dC, None if D is None else dD, dz, None if delta_bias is None else dbias)


def _contiguous(t: Tensor | None) -> Tensor | None:
    return t if t is None or t.is_contiguous() else t.contiguous()


class SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, c):
        out, last, states, ygate = _fwd(c, True, u, delta, A, B, C, D, z, delta_bias)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states, ygate)
        ctx.call = c
        return (out, last) if c.store_last else out

    @staticmethod
    def backward(ctx, dout, dlast=None):
        u, delta, A, B, C, D, z, delta_bias, states, ygate = ctx.saved_tensors
        dout = torch.zeros_like(u) if dout is None else _contiguous(dout)
        grads = _bwd(ctx.call, u, delta, A, B, C, D, z, delta_bias, states, ygate, dout, _contiguous(dlast))
        return (*grads, None)


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
    ``config``: launch shapes; default ``default_config`` for these sizes. No host syncs and
    no decisions on tensor values: capturable in a CUDA graph (after a first, compiling call).
    """
    interp = triton_interpreting()
    poison = poisoning()
    softplus, want_last = bool(delta_softplus), bool(return_last_state)
    # everything the cached _Call depends on (the environment read once per call)
    key = (
        u.shape, delta.shape, A.shape, B.shape, C.shape, None if D is None else D.shape,
        None if z is None else z.shape, None if delta_bias is None else delta_bias.shape,
        u.dtype, delta.dtype, A.dtype, B.dtype, C.dtype, None if z is None else z.dtype,
        softplus, want_last, interp, poison, config,
    )
    if not (interp or (u.is_cuda and delta.is_cuda and A.is_cuda and B.is_cuda and C.is_cuda
                       and (D is None or D.is_cuda) and (z is None or z.is_cuda)
                       and (delta_bias is None or delta_bias.is_cuda))):
        _no_cuda()  # the kernels get raw pointers: a host tensor must never reach them
    c = _CALLS.get(key)
    if c is None:
        c = _new_call(key, u, delta, A, B, C, D, z, delta_bias, softplus, want_last, interp, poison, config)
    # one layout: contiguous, B/C (batch, N, L) or (batch, G, N, L) along L
    if not (u.is_contiguous() and delta.is_contiguous() and A.is_contiguous() and B.is_contiguous()
            and C.is_contiguous() and (D is None or D.is_contiguous()) and (z is None or z.is_contiguous())
            and (delta_bias is None or delta_bias.is_contiguous())):
        u, delta, A, B, C = _contiguous(u), _contiguous(delta), _contiguous(A), _contiguous(B), _contiguous(C)
        D, z, delta_bias = _contiguous(D), _contiguous(z), _contiguous(delta_bias)
    if torch.is_grad_enabled() and (
        u.requires_grad or delta.requires_grad or A.requires_grad or B.requires_grad or C.requires_grad
        or (D is not None and D.requires_grad) or (z is not None and z.requires_grad)
        or (delta_bias is not None and delta_bias.requires_grad)
    ):
        return SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, c)
    # nothing to differentiate: no autograd node, nothing saved
    out, last, _, _ = _fwd(c, False, u, delta, A, B, C, D, z, delta_bias)
    return (out, last) if want_last else out
