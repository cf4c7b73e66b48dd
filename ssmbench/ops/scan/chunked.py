"""Chunked selective scan: parallel PyTorch with autograd, on CPU and GPU.

The sequence is cut into chunks of T steps (the tail padded with delta = 0, which leaves the
state unchanged). Inside a chunk, with Dl_t = sum_{r <= t} delta_r and any reference point R,

    h_t = exp(A (Dl_t - R)) * (exp(A R) h_0 + sum_{s <= t} exp(-A (Dl_s - R)) delta_s u_s B_s),

so one chunk is an elementwise power, a cumulative sum over the chunk and a division, with no
step loop. R is the middle of the chunk's Dl range, so both exponentials stay within
exp(+-LIMIT); the chunk size is halved until they do (one host sync per call; T = 1 is always
exact). The chunk start states h_0 come from one short loop over chunks on (batch, dim, N),
and y_t = C_t . h_t is a batched matrix-vector product. All tensors are time-major,
(batch, chunk, T, G, dim / G[, N]), so every step of the chunk is one contiguous slice.

Chunks are processed in groups of at most GROUP_ELEMENTS state elements, so memory is bounded
for any L; under autograd each group is checkpointed (backward keeps the group's start state
and recomputes the group).

Eager PyTorch writes and reads every (batch, T, dim, N) intermediate of a group in memory, about
twelve passes. On CUDA, a call that needs no gradient runs the same code (``_scan_chunks``)
through ``torch.compile``, which fuses those passes (``compile=`` or SSMBENCH_CHUNKED_COMPILE=0
turn it off; ``chunked_mode`` says which one a call takes). The first call at a new shape pays
the compilation (tens of seconds).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ssmbench.errors import BadInput
from ssmbench.ops.checks import compute_dtype, scan_shapes

MAX_CHUNK = 64
# state elements (batch * dim * chunk steps * N) one group of chunks works on at once
GROUP_ELEMENTS = 2**26
# the same under torch.compile, whose fused kernels keep fewer group-sized buffers (H100, (8, 1536,
# 2048, 16): 8.656 ms at 2^28 against 8.891 ms at 2^26; results/dev/chunked-variants-h100.json)
COMPILED_GROUP_ELEMENTS = 2**28
# largest |exponent| inside a chunk, by compute dtype: exp(40) = 2.4e17 leaves fp32 room for
# sums and gradients
EXP_LIMIT = {torch.float32: 40.0, torch.float64: 300.0}
# shapes one process may compile the chunk pipeline for (compiled mode)
RECOMPILE_LIMIT = 64


def default_chunk_size(L: int) -> int:
    """Smallest power of two >= L, capped at MAX_CHUNK (64)."""
    return min(MAX_CHUNK, 2 ** math.ceil(math.log2(max(L, 1))))


def _chunks(x: Tensor, T: int) -> Tensor:
    """(..., L) -> (..., n_chunks, T), the tail padded with zeros."""
    n_chunks = max(1, -(-x.shape[-1] // T))
    return F.pad(x, (0, n_chunks * T - x.shape[-1])).unflatten(-1, (n_chunks, T))


@torch.no_grad()
def safe_chunk_size(dt: Tensor, scale: Tensor, T: int) -> int:
    """Largest of T, T/2, ..., 1 at which no chunk's exponent exceeds EXP_LIMIT.

    dt: (batch, dim, L) step sizes; scale: (dim,) max_n |A|. Reads one number back to the host.
    Bounds half the range of Dl in a chunk by half the sum of |delta| after its first step (no
    cumsum: torch's innermost-dim scan took 9.1 ms at (8, 1536, 2048) on the H100)."""
    limit = EXP_LIMIT.get(dt.dtype, EXP_LIMIT[torch.float32])
    dt = dt.abs()
    while T > 1:
        steps = _chunks(dt, T)  # (b, dim, nc, T)
        half_range = (steps.sum(-1) - steps[..., 0]) * scale[:, None] / 2
        if half_range.max().item() <= limit:
            return T
        T //= 2
    return 1


def _time_major(x: Tensor, batch: int, groups: int, T: int) -> Tensor:
    """(batch, dim, L) -> (batch, n_chunks, T, G, dim / G), zero-padded along L."""
    x = _chunks(x.reshape(batch, groups, -1, x.shape[-1]), T)  # (b, g, e, nc, T)
    return x.permute(0, 3, 4, 1, 2).contiguous()


def chunked_mode(u: Tensor, needs_grad: bool, compile: bool | None = None) -> str:
    """'compiled' or 'eager': how ``selective_scan_chunked`` runs a call on u's device.
    compile None: compiled on CUDA when no gradient is needed, unless SSMBENCH_CHUNKED_COMPILE=0."""
    if compile is None:
        compile = u.is_cuda and not needs_grad and os.environ.get("SSMBENCH_CHUNKED_COMPILE", "1") != "0"
    if compile and needs_grad:
        raise BadInput("the compiled chunked scan runs without autograd only (compile=False under autograd)")
    return "compiled" if compile else "eager"


@functools.cache
def _compiled_scan_chunks() -> Callable[..., tuple[Tensor, Tensor]]:
    return torch.compile(_scan_chunks, dynamic=False)


def _scan_chunks_compiled(*args: object) -> tuple[Tensor, Tensor]:
    """``_scan_chunks`` through torch.compile, one graph per shape: past dynamo's recompile limit
    (8 by default) a function silently falls back to eager, so a sweep raises the limit."""
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    with cfg.patch({name: max(getattr(cfg, name), RECOMPILE_LIMIT)}):
        return _compiled_scan_chunks()(*args, fused=True)


def _maybe_checkpoint(fn: Callable[..., tuple[Tensor, Tensor]], *args: object) -> tuple[Tensor, Tensor]:
    if torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _chunk_starts(h: Tensor, decay: Tensor, local_end: Tensor) -> tuple[Tensor, Tensor]:
    """Start state of every chunk of a group, and the group's end state.

    h: (b, g, e, N) state before the group; decay, local_end: (b, nc, g, e, N), each chunk's
    decay exp(A Dl_T) and end state from zero. A Hillis-Steele scan over chunks: log2(nc)
    steps of whole-tensor ops, no nc-deep chain of dependent updates. Returns (b, nc, g, e, N),
    (b, g, e, N).
    """
    a, x = decay, local_end
    k = 1
    while k < a.shape[1]:
        # chunk c takes in chunk c - k's running (decay, state); the first k chunks are done
        x = torch.cat([x[:, :k], torch.addcmul(x[:, k:], a[:, k:], x[:, :-k])], 1)
        a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], 1)
        k *= 2
    ends = torch.addcmul(x, a, h[:, None])  # (b, nc, g, e, N): each chunk's end state
    return torch.cat([h[:, None], ends[:, :-1]], 1), ends[:, -1]


def _chunk_group(
    h: Tensor,
    expo: Tensor,
    x: Tensor,
    B: Tensor,
    C: Tensor,
    decay: Tensor,
    end_scale: Tensor,
    start_scale: Tensor,
    base: Tensor,
    fused: bool = False,
) -> tuple[Tensor, Tensor]:
    """Scan a group of chunks from state h (b, g, e, N); returns y (b, nc, T, g, e) and the end state.

    expo, x: (b, nc, T, g, e), the exponent (Dl - R) * max_n|A| and delta * u; B, C: (b, nc, T, g, N);
    decay, end_scale, start_scale: (b, nc, g, e, N), exp(A Dl_T), exp(A (Dl_T - R)), exp(A R);
    base: (g, e, N), exp(A / max_n|A|), so that base ** expo = exp(A (Dl - R)).
    fused (under torch.compile): chunk starts by ``_chunk_starts`` (inductor would inline a
    chain of nc dependent updates), and the contraction with C as a product and a sum, which
    fuses into the cumsum's kernel; eager, a batched matrix-vector product is one pass, not two.
    """
    inv = torch.pow(base, -expo[..., None])  # (b, nc, T, g, e, N): exp(-A (Dl - R))
    terms = inv * B[:, :, :, :, None] * x[..., None]  # (b, nc, T, g, e, N)
    local_end = terms.sum(2) * end_scale  # (b, nc, g, e, N): each chunk's end state from zero
    if fused:
        starts, h = _chunk_starts(h, decay, local_end)
    else:  # eager: one small addcmul per chunk beats log2(nc) steps of whole-group copies
        chunk_starts = []
        for c in range(expo.shape[1]):
            chunk_starts.append(h)
            h = torch.addcmul(local_end[:, c], decay[:, c], h)
        starts = torch.stack(chunk_starts, 1)
    terms[:, :, 0] += starts * start_scale
    states = terms.cumsum(2) / inv  # (b, nc, T, g, e, N)
    if fused:
        y = (states * C[:, :, :, :, None]).sum(-1)
    else:
        y = torch.matmul(states, C[..., None]).squeeze(-1)  # (b, nc, T, g, e)
    return y, h


def _scan_chunks(
    dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, scale: Tensor, T: int, groups: int,
    fused: bool = False,
) -> tuple[Tensor, Tensor]:
    """The scan once the chunk size T is fixed, all in the compute dtype.

    dt, u: (batch, dim, L) step sizes (bias and softplus applied) and inputs; A: (dim, N);
    B, C: (batch, G, N, L) or (batch, N, L); scale: (dim,) max_n |A|. Returns y = C . h
    (batch, dim, L), before D and z, and the last state (batch, dim, N). fused: as
    ``_chunk_group``'s (under torch.compile).
    """
    batch, dim, L = u.shape
    N = A.shape[1]
    e = dim // groups
    base = torch.exp(A / scale[:, None]).view(groups, e, N)
    A_g = A.view(groups, e, N)

    dt_t = _time_major(dt, batch, groups, T)  # (b, nc, T, g, e)
    x_t = dt_t * _time_major(u, batch, groups, T)
    B_t = _time_major(B.reshape(batch, groups * N, L), batch, groups, T)  # (b, nc, T, g, N)
    C_t = _time_major(C.reshape(batch, groups * N, L), batch, groups, T)
    cum = dt_t.cumsum(2)  # (b, nc, T, g, e)
    # the reference point cancels exactly, so it carries no gradient
    ref = ((cum.amax(2, keepdim=True) + cum.amin(2, keepdim=True)) / 2).detach()  # (b, nc, 1, g, e)
    expo = (cum - ref) * scale.view(groups, e)
    decay = torch.exp(cum[:, :, -1, :, :, None] * A_g)  # (b, nc, g, e, N)
    end_scale = torch.exp((cum[:, :, -1] - ref[:, :, 0])[..., None] * A_g)
    start_scale = torch.exp(ref[:, :, 0, :, :, None] * A_g)

    n_chunks = dt_t.shape[1]
    per_group = max(1, (COMPILED_GROUP_ELEMENTS if fused else GROUP_ELEMENTS) // (batch * dim * N * T))
    h = u.new_zeros(batch, groups, e, N)
    ys = []
    for c0 in range(0, n_chunks, per_group):
        sl = slice(c0, c0 + per_group)
        y_g, h = _maybe_checkpoint(
            _chunk_group, h, expo[:, sl], x_t[:, sl], B_t[:, sl], C_t[:, sl],
            decay[:, sl], end_scale[:, sl], start_scale[:, sl], base, fused,
        )
        ys.append(y_g)
    y = torch.cat(ys, 1).reshape(batch, n_chunks * T, dim).transpose(1, 2)[..., :L]  # (b, dim, L)
    last_state = h.reshape(batch, dim, N)

    return y, last_state


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
    compile: bool | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan in chunks (mamba_ssm ``selective_scan_fn`` contract).

    u, delta, z: (batch, dim, L); A: (dim, N); B, C: (batch, N, L) or (batch, G, N, L);
    D, delta_bias: (dim,). Computes in float32 (float64 when given float64). Returns out
    (batch, dim, L) in u's dtype, and with ``return_last_state`` the final state
    (batch, dim, N) in the compute dtype. ``chunk_size``: the largest T to use, default
    ``default_chunk_size(L)``; it is halved where a chunk's decay would leave EXP_LIMIT.
    ``compile``: run the chunks through torch.compile (no autograd); default ``chunked_mode``'s.
    """
    batch, dim, L, N, groups = scan_shapes(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size is not None and chunk_size < 1:
        raise BadInput(f"chunk_size must be positive, got {chunk_size}")
    ct = compute_dtype(u, delta, A, B, C)

    dt = delta.to(ct)
    if delta_bias is not None:
        dt = dt + delta_bias.to(ct)[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    A_c = A.to(ct)
    # exp(A a) = base ** (a * scale) for any scale; scale = max_n |A| keeps base in [1/e, 1]
    scale = A_c.detach().abs().amax(-1).clamp_min(torch.finfo(ct).tiny)  # (dim,)
    T = safe_chunk_size(dt.detach(), scale, chunk_size or default_chunk_size(L))

    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, delta_bias)
    )
    scan = _scan_chunks_compiled if chunked_mode(u, needs_grad, compile) == "compiled" else _scan_chunks
    u_c = u.to(ct)  # one copy for the scan and the D skip
    y, last_state = scan(dt, u_c, A_c, B.to(ct), C.to(ct), scale, T, groups)

    if D is not None:
        y = y + u_c * D.to(ct)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(ct))
    out = y.to(u.dtype)
    return (out, last_state) if return_last_state else out
