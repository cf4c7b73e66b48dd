"""Chunked selective scan: parallel PyTorch with autograd, on CPU and GPU.

The sequence is cut into chunks of T steps (the tail padded with delta = 0, which leaves the
state unchanged). Inside a chunk, with Dl_t = sum_{r <= t} delta_r and any reference point R,

    h_t = exp(A (Dl_t - R)) * (exp(A R) h_0 + sum_{s <= t} exp(-A (Dl_s - R)) delta_s u_s B_s).

With the growth g_t = exp(-A (Dl_t - R)) (one elementwise power) and q_s = g_s delta_s u_s, the
output is

    y_t = sum_n (C_t exp(A R) h_0 + sum_{s <= t} C_t B_s q_s) / g_t,

so for each state index n the cumulative sum, B and C are one batched matmul over the chunk,
[q; exp(A R) h_0] times M with M[t] = C_t [B_s (s <= t), 1], followed by a division by g and a
sum over n; there is no step loop. R is the middle of the chunk's Dl range, so both
exponentials stay within exp(+-EXP_LIMIT); the chunk size is halved until they do (one host
sync per size tried; T = 1 is always exact). The chunk start states h_0 come from one short loop
over chunks on (N, batch, dim), fed by each chunk's end state from zero, B . q over the chunk.
Tensors are chunk-first and channels-last: (n_chunks, batch, G, T, dim / G), state-sized ones
with N in front, so each (n, chunk) is one contiguous matrix. The matmuls need float32 matmul
precision 'highest' (torch's default): TF32 would cost about 1e-3 relative error.

Chunks are processed in groups of at most GROUP_ELEMENTS state elements, so memory is bounded
for any L. Under autograd each group is checkpointed (backward keeps the group's start state
and recomputes the group). Without autograd a group works on preallocated buffers, N_BLOCK
state indices n at a time, so the ops on one slice follow each other while it is still in
cache.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ssmbench.errors import BadInput
from ssmbench.ops.scan.ref import compute_dtype

MAX_CHUNK = 64
# state elements (batch * dim * chunk steps * N) one group of chunks works on at once
GROUP_ELEMENTS = 2**26
# state indices n that one op of the no-grad path works on: smaller slices stay in cache
# between ops, larger ones take fewer kernel launches
N_BLOCK = 1
# device types on which the no-grad path computes the growth twice instead of keeping it (a
# pass of writes and one of reads traded for a second power; on the CPU the power costs more)
RECOMPUTE_GROWTH: tuple[str, ...] = ()
# largest |exponent| inside a chunk, by compute dtype: exp(40) = 2.4e17 leaves fp32 room for
# sums and gradients
EXP_LIMIT = {torch.float32: 40.0, torch.float64: 300.0}


def scan_shapes(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
) -> tuple[int, int, int, int, int]:
    """(batch, dim, L, N, groups) of one scan call; BadInput when the shapes disagree."""
    if u.dim() != 3:
        raise BadInput(f"u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, L = u.shape
    if delta.shape != u.shape or (z is not None and z.shape != u.shape):
        raise BadInput(f"delta and z must have u's shape {tuple(u.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise BadInput(f"A must be (dim={dim}, N), got shape {tuple(A.shape)}")
    N = A.shape[1]
    for name, M in (("B", B), ("C", C)):
        ok3 = M.dim() == 3 and tuple(M.shape) == (batch, N, L)
        ok4 = M.dim() == 4 and M.shape[0] == batch and tuple(M.shape[2:]) == (N, L)
        if not (ok3 or ok4):
            want = f"({batch}, {N}, {L}) or ({batch}, G, {N}, {L})"
            raise BadInput(f"{name} must be {want}, got {tuple(M.shape)}")
    groups = B.shape[1] if B.dim() == 4 else 1
    if (C.shape[1] if C.dim() == 4 else 1) != groups:
        raise BadInput("B and C must have the same number of groups")
    if dim % groups != 0:
        raise BadInput(f"dim {dim} is not divisible by the number of B/C groups {groups}")
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and tuple(v.shape) != (dim,):
            raise BadInput(f"{name} must be (dim={dim},), got {tuple(v.shape)}")
    return batch, dim, L, N, groups


def default_chunk_size(L: int) -> int:
    """Smallest power of two >= L, capped at MAX_CHUNK (64)."""
    return min(MAX_CHUNK, 2 ** math.ceil(math.log2(max(L, 1))))


def _chunks(x: Tensor, T: int) -> Tensor:
    """(..., L) -> (..., n_chunks, T), the tail padded with zeros."""
    n_chunks = max(1, -(-x.shape[-1] // T))
    if n_chunks * T != x.shape[-1]:
        x = F.pad(x, (0, n_chunks * T - x.shape[-1]))
    return x.unflatten(-1, (n_chunks, T))


@torch.no_grad()
def safe_chunk_size(dt: Tensor, scale: Tensor, T: int, nonnegative: bool = False) -> int:
    """Largest of T, T/2, ..., 1 at which no chunk's exponent exceeds EXP_LIMIT.

    dt: (batch, dim, L) step sizes (``nonnegative``: all >= 0, as after softplus, which saves
    a pass); scale: (dim,) max_n |A|. Reads one number back to the host per T tried.
    Bounds half the range of Dl in a chunk by half the sum of |delta| after its first step (no
    cumsum: torch's innermost-dim scan took 9.1 ms at (8, 1536, 2048) on the H100)."""
    limit = EXP_LIMIT.get(dt.dtype, EXP_LIMIT[torch.float32])
    if not nonnegative:
        dt = dt.abs()
    while T > 1:
        after_first = _chunks(dt, T)[..., 1:].sum(-1)  # (b, dim, nc)
        if (after_first.amax((0, 2)) * scale).amax().item() / 2 <= limit:
            return T
        T //= 2
    return 1


def _chunk_major(x: Tensor, groups: int, T: int) -> Tensor:
    """(batch, G * k, L) -> view (n_chunks, batch, G, k, T), zero-padded along L."""
    return _chunks(x.reshape(x.shape[0], groups, -1, x.shape[-1]), T).permute(3, 0, 1, 2, 4)


def _empty(like: Tensor, *shape: int) -> Tensor:
    """Fresh buffer of like's dtype and device; NaN-filled when SSMBENCH_POISON_OUTPUTS=1 (tests),
    so an element the no-grad path forgets to write cannot pass a comparison."""
    if os.environ.get("SSMBENCH_POISON_OUTPUTS") == "1":
        return like.new_full(shape, float("nan"))
    return like.new_empty(shape)


def _maybe_checkpoint(fn: Callable[..., tuple[Tensor, Tensor]], *args: Tensor) -> tuple[Tensor, Tensor]:
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _growth(rate: Tensor, base: Tensor, expo: Tensor, out: Tensor | None = None) -> Tensor:
    """exp(rate * expo) = base ** expo, broadcast; rate, base: (..., g, 1, e), expo: (nc, b, g, T, e)."""
    if expo.device.type == "cpu":
        # the CPU's pow is about four times slower than its exp; on the GPU pow is one pass
        return torch.mul(rate, expo, out=out).exp_()
    return torch.pow(base, expo, out=out)


def _chunk_group(
    h: Tensor,
    expo: Tensor,
    x: Tensor,
    B: Tensor,
    M: Tensor,
    decay: Tensor,
    end_scale: Tensor,
    start_scale: Tensor,
    rate: Tensor,
    base: Tensor,
) -> tuple[Tensor, Tensor]:
    """Scan a group of chunks from state h (N, b, g, e); returns y (nc, b, g, T, e) and the end state.

    expo, x: (nc, b, g, T, e), the exponent (R - Dl) * max_n|A| and delta * u; B: (N, nc, b, g, T);
    M: (N, nc, b, g, T, T + 1), C_t [B_s (s <= t), 1]; decay, end_scale, start_scale:
    (N, nc, b, g, e), exp(A Dl_T), exp(A (Dl_T - R)), exp(A R); rate, base: (N, 1, 1, g, 1, e),
    A / max_n|A| and its exp.
    """
    grow = _growth(rate, base, expo)  # (N, nc, b, g, T, e): exp(-A (Dl - R))
    terms = grow * x
    # each chunk's end state from zero
    local_end = torch.matmul(B[..., None, :], terms).squeeze(-2) * end_scale  # (N, nc, b, g, e)
    starts = []
    for le_c, decay_c in zip(local_end.unbind(1), decay.unbind(1), strict=True):
        starts.append(h)
        h = torch.addcmul(le_c, decay_c, h)
    q = torch.cat([terms, (torch.stack(starts, 1) * start_scale)[..., None, :]], -2)
    return (torch.matmul(M, q) / grow).sum(0), h


def _chunk_group_inplace(
    h: Tensor,
    expo: Tensor,
    x: Tensor,
    B: Tensor,
    M: Tensor,
    decay: Tensor,
    end_scale: Tensor,
    start_scale: Tensor,
    rate: Tensor,
    base: Tensor,
    y: Tensor,
) -> Tensor:
    """_chunk_group without autograd, N_BLOCK state indices at a time on preallocated buffers.

    Writes y (nc, b, g, T, e) and returns the end state; the other arguments are _chunk_group's.
    """
    N, nc, b, g, T = B.shape
    k, e, nb = nc * b * g, x.shape[-1], min(N_BLOCK, N)
    keep = x.device.type not in RECOMPUTE_GROWTH
    grow = _empty(x, N if keep else nb, k, T, e)
    # per n and chunk: the terms q_s as rows 0..T-1, then the start state as row T
    q = _empty(x, N, k, T + 1, e)
    local_end = _empty(x, N, k, 1, e)
    # views of each block of nb state indices, made once (slicing per launch costs host time)
    ns = [(n0, min(n0 + nb, N)) for n0 in range(0, N, nb)]
    rates, bases, qs = rate.split(nb), base.split(nb), [q[n0:n1].flatten(0, 1) for n0, n1 in ns]
    terms = [q[n0:n1, :, :T].flatten(0, 1) for n0, n1 in ns]  # (nb * k, T, e)
    grows = [grow[n0:n1] if keep else grow[: n1 - n0] for n0, n1 in ns]  # (nb, k, T, e)
    Bs, Ms = B.reshape(N * k, 1, T).split(nb * k), M.reshape(N * k, T, T + 1).split(nb * k)
    x3 = x.view(k, T, e)
    for i, (n0, n1) in enumerate(ns):
        _growth(rates[i], bases[i], expo, out=grows[i].view(n1 - n0, nc, b, g, T, e))
        torch.mul(grows[i], x3, out=q[n0:n1, :, :T])
        torch.bmm(Bs[i], terms[i], out=local_end[n0:n1].flatten(0, 1))
    local_end = local_end.view(N, nc, b, g, e).mul_(end_scale)
    starts = []
    for le_c, decay_c in zip(local_end.unbind(1), decay.unbind(1), strict=True):
        starts.append(h)
        h = torch.addcmul(le_c, decay_c, h)
    torch.mul(torch.stack(starts, 1), start_scale, out=q[:, :, T].view(N, nc, b, g, e))
    out, y3 = _empty(x, nb * k, T, e), y.view(k, T, e)
    for i, (n0, n1) in enumerate(ns):
        torch.bmm(Ms[i], qs[i], out=out[: (n1 - n0) * k])
        if not keep:
            _growth(rates[i], bases[i], expo, out=grows[i].view(n1 - n0, nc, b, g, T, e))
        # y += out / grow, one n at a time: y stays in cache while the slices stream past
        outs = out[: (n1 - n0) * k].view(n1 - n0, k, T, e).unbind(0)
        for n, o, gr in zip(range(n0, n1), outs, grows[i].unbind(0), strict=True):
            if n == 0:
                torch.div(o, gr, out=y3)
            else:
                y3.addcdiv_(o, gr)
    return h


def selective_scan_chunked(
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
    chunk_size: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan in chunks (mamba_ssm ``selective_scan_fn`` contract).

    u, delta, z: (batch, dim, L); A: (dim, N); B, C: (batch, N, L) or (batch, G, N, L);
    D, delta_bias: (dim,). Computes in float32 (float64 when given float64). Returns out
    (batch, dim, L) in u's dtype, and with ``return_last_state`` the final state
    (batch, dim, N) in the compute dtype. ``chunk_size``: the largest T to use, default
    ``default_chunk_size(L)``; it is halved where a chunk's decay would leave EXP_LIMIT.
    """
    batch, dim, L, N, groups = scan_shapes(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size is not None and chunk_size < 1:
        raise BadInput(f"chunk_size must be positive, got {chunk_size}")
    ct = compute_dtype(u, delta, A, B, C)
    e = dim // groups

    # ct is the wider dtype, so the sum is computed in it
    dt = delta + delta_bias.to(ct)[None, :, None] if delta_bias is not None else delta.to(ct)
    if delta_softplus:
        dt = F.softplus(dt)
    A_c = A.to(ct)
    # exp(A a) = base ** (a * scale) for any scale; scale = max_n |A| keeps base in [1/e, 1]
    scale = A_c.detach().abs().amax(-1).clamp_min(torch.finfo(ct).tiny)  # (dim,)
    T = safe_chunk_size(dt.detach(), scale, chunk_size or default_chunk_size(L), nonnegative=delta_softplus)
    A_n = A_c.view(groups, e, N).permute(2, 0, 1).contiguous()[:, None, None]  # (N, 1, 1, g, e)
    rate = (A_n / scale.view(groups, e))[..., None, :]  # (N, 1, 1, g, 1, e)
    base = rate.exp()

    dt_c = _chunk_major(dt, groups, T).transpose(3, 4).contiguous()  # (nc, b, g, T, e)
    x_c = dt_c * _chunk_major(u, groups, T).transpose(3, 4)
    B_c, C_c = (
        _chunks(X.reshape(batch, groups, N, L), T).permute(2, 3, 0, 1, 4).contiguous().to(ct) for X in (B, C)
    )  # (N, nc, b, g, T)
    # (T, T + 1): s <= t, and the start state's column
    mask = F.pad(torch.ones(T, T, dtype=ct, device=dt.device).tril(), (0, 1), value=1.0)
    M = C_c[..., None] * F.pad(B_c, (0, 1), value=1.0)[..., None, :] * mask  # (N, nc, b, g, T, T + 1)
    cum = dt_c.cumsum(3)  # (nc, b, g, T, e)
    # the reference point cancels exactly, so it carries no gradient
    ref = ((cum.amax(3, keepdim=True) + cum.amin(3, keepdim=True)) / 2).detach()  # (nc, b, g, 1, e)
    expo = (ref - cum) * scale.view(groups, 1, e)
    end, mid = cum[:, :, :, -1], ref[:, :, :, 0]  # (nc, b, g, e)
    end_scale = torch.exp((end - mid) * A_n)  # (N, nc, b, g, e)
    start_scale = torch.exp(mid * A_n)
    decay = end_scale * start_scale  # exp(A Dl_T)

    n_chunks = dt_c.shape[0]
    per_group = max(1, GROUP_ELEMENTS // (batch * dim * N * T))
    h = dt.new_zeros(N, batch, groups, e)
    inplace = not (torch.is_grad_enabled() and any(t.requires_grad for t in (x_c, expo, M, rate)))
    ys = _empty(dt, n_chunks, batch, groups, T, e) if inplace else []
    for c0 in range(0, n_chunks, per_group):
        sl = slice(c0, c0 + per_group)
        per_chunk = [t[:, sl] for t in (B_c, M, decay, end_scale, start_scale)]
        args = (h, expo[sl], x_c[sl], *per_chunk, rate, base)
        if inplace:
            h = _chunk_group_inplace(*args, ys[sl])
        else:
            y_g, h = _maybe_checkpoint(_chunk_group, *args)
            ys.append(y_g)
    y = ys if inplace else torch.cat(ys)
    y = y.permute(1, 2, 4, 0, 3).reshape(batch, dim, n_chunks * T)[..., :L]  # (b, dim, L)
    last_state = h.permute(1, 2, 3, 0).reshape(batch, dim, N)

    if D is not None:
        y = torch.addcmul(y, u, D.to(ct)[:, None])
    if z is not None:
        y = y * F.silu(z.to(ct))
    out = y.to(u.dtype)
    return (out, last_state) if return_last_state else out
