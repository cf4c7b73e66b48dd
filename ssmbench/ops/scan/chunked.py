"""Chunked selective scan: parallel PyTorch with autograd, on CPU and GPU.

The sequence is cut into ``n_chunks`` chunks of T steps (the tail padded with delta = 0,
which leaves the state unchanged). Three short loops, each over tensors of shape
(batch, G, n_chunks, dim / G, N), replace the L-step loop of the reference:

1. all chunks at once, T steps from a zero state: each chunk's local end state;
2. chunk by chunk (n_chunks steps): the true start state of every chunk,
   h_in[c + 1] = exp(A * sum_{t in c} delta_t) * h_in[c] + local_end[c];
3. all chunks at once, T steps from their true start states, reading out y_t = C_t . h_t.

Sequential depth is 2T + L/T instead of L, and no step holds more than
(batch, dim, n_chunks, N) at once: the (batch, dim, L, N) state is never materialised.
Inputs are laid out time-major first (a (batch, dim, L)-sized copy), so that every step
reads contiguous slices; the read-out over N is a batched matrix-vector product.
Under autograd, loops 1 and 3 run in checkpointed segments, so backward keeps the
segment-start states and recomputes the steps inside a segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ssmbench.errors import BadInput
from ssmbench.ops.scan.ref import compute_dtype

MAX_CHUNK = 128
SEGMENT = 8


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
    """Power of two near sqrt(L / 2), which minimises the 2T + L/T sequential steps."""
    if L <= 2:
        return 1
    return max(1, min(MAX_CHUNK, 2 ** round(math.log2(math.sqrt(L / 2)))))


def _maybe_checkpoint(fn: Callable[..., tuple[Tensor, ...]], *args: Tensor) -> tuple[Tensor, ...]:
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _time_major(x: Tensor, batch: int, groups: int, n_chunks: int, T: int, pad: int) -> Tensor:
    """(batch, dim, L) -> (T, batch, G, n_chunks, dim / G), zero-padded: step t of every chunk
    is one contiguous slice."""
    x = F.pad(x, (0, pad)).view(batch, groups, -1, n_chunks, T)  # (b, g, e, nc, T)
    return x.permute(4, 0, 1, 3, 2).contiguous()


def _time_major_bc(M: Tensor, batch: int, groups: int, n_chunks: int, T: int, pad: int) -> Tensor:
    """B or C (batch, [G,] N, L) -> (T, batch, G, n_chunks, 1, N), zero-padded along L."""
    M = F.pad(M.reshape(batch, groups, M.shape[-2], M.shape[-1]), (0, pad))
    M = M.unflatten(-1, (n_chunks, T))  # (b, g, N, nc, T)
    return M.permute(4, 0, 1, 3, 2).unsqueeze(4).contiguous()


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
    (batch, dim, N) in the compute dtype. ``chunk_size``: T, default ``default_chunk_size(L)``.
    """
    batch, dim, L, N, groups = scan_shapes(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size is not None and chunk_size < 1:
        raise BadInput(f"chunk_size must be positive, got {chunk_size}")
    ct = compute_dtype(u, delta, A, B, C)
    T = chunk_size or default_chunk_size(L)
    n_chunks = max(1, -(-L // T))
    pad = n_chunks * T - L
    e = dim // groups

    dt = delta.to(ct)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    # padded steps have delta = 0: decay 1 and no input, so the state passes through unchanged
    dt_t = _time_major(dt, batch, groups, n_chunks, T, pad).unsqueeze(-1)  # (T, b, g, nc, e, 1)
    dtu_t = dt_t * _time_major(u.to(ct), batch, groups, n_chunks, T, pad).unsqueeze(-1)
    A5 = A.to(ct).view(1, groups, 1, e, N)
    B_t = _time_major_bc(B.to(ct), batch, groups, n_chunks, T, pad)  # (T, b, g, nc, 1, N)
    C_t = _time_major_bc(C.to(ct), batch, groups, n_chunks, T, pad)

    def steps(h: Tensor, t0: int, t1: int, read_out: bool) -> tuple[Tensor, ...]:
        ys = []
        for t in range(t0, t1):
            dA = torch.exp(dt_t[t] * A5)  # (b, g, nc, e, N)
            h = torch.addcmul(dtu_t[t] * B_t[t], dA, h)
            if read_out:
                ys.append(torch.matmul(h, C_t[t].transpose(-1, -2)))  # (b, g, nc, e, 1)
        return (h, torch.cat(ys, -1)) if read_out else (h,)

    # 1. local end state of every chunk, from a zero state
    h_local = u.new_zeros(batch, groups, n_chunks, e, N, dtype=ct)
    for t0 in range(0, T if n_chunks > 1 else 0, SEGMENT):
        t1 = min(T, t0 + SEGMENT)
        (h_local,) = _maybe_checkpoint(lambda h, t0=t0, t1=t1: steps(h, t0, t1, False), h_local)

    # 2. carry the state across chunks
    decay = torch.exp(dt_t[:, :, :, :-1].sum(0) * A5)  # (b, g, nc - 1, e, N)
    h = u.new_zeros(batch, groups, e, N, dtype=ct)
    starts = [h]
    for c in range(n_chunks - 1):
        h = decay[:, :, c] * h + h_local[:, :, c]
        starts.append(h)

    # 3. every chunk again from its true start state, reading out y
    h = torch.stack(starts, dim=2)  # (b, g, nc, e, N)
    ys = []
    for t0 in range(0, T, SEGMENT):
        t1 = min(T, t0 + SEGMENT)
        h, y_seg = _maybe_checkpoint(lambda h, t0=t0, t1=t1: steps(h, t0, t1, True), h)
        ys.append(y_seg)
    y = torch.cat(ys, -1)  # (b, g, nc, e, T)
    y = y.permute(0, 1, 3, 2, 4).reshape(batch, dim, n_chunks * T)[..., :L]  # (b, dim, L)
    last_state = h[:, :, -1].reshape(batch, dim, N)  # the last chunk's end state

    if D is not None:
        y = y + u.to(ct) * D.to(ct)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    out = y.to(u.dtype)
    return (out, last_state) if return_last_state else out
