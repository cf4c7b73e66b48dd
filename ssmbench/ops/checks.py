"""Input checks and the compute-dtype rule shared by the ops' backends.

Each ``*_shapes`` function raises BadInput when the shapes of one call disagree and returns the
sizes the backends launch with; every backend of an op calls the same one, so bad input is the
same BadInput on any machine, before any backend-specific check.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssmbench.errors import BadInput

# activations of the conv step (causal-conv1d's names; 'swish' is 'silu')
CONV_ACTIVATIONS = (None, "silu", "swish")


def compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    """float64 when any input is float64, else float32."""
    return (
        torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32
    )


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


def state_update_shapes(
    state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor
) -> tuple[int, int, int, int]:
    """(batch, dim, N, groups) of one decode step; BadInput when the shapes disagree.

    state: (batch, dim, N); x, dt: (batch, dim); A: (dim, N); B, C: (batch, N) or (batch, G, N)."""
    batch, dim, N = state.shape
    if tuple(x.shape) != (batch, dim) or tuple(dt.shape) != (batch, dim) or tuple(A.shape) != (dim, N):
        raise BadInput(
            f"step shapes disagree: state {tuple(state.shape)}, x {tuple(x.shape)}, "
            f"dt {tuple(dt.shape)}, A {tuple(A.shape)}"
        )
    B3 = B.unsqueeze(1) if B.dim() == 2 else B  # (batch, G, N)
    C3 = C.unsqueeze(1) if C.dim() == 2 else C
    groups = B3.shape[1]
    if B3.shape != (batch, groups, N) or C3.shape != B3.shape or dim % groups != 0:
        raise BadInput(f"B and C must be ({batch}, {N}) or ({batch}, G, {N}) with G dividing {dim}")
    return batch, dim, N, groups


def conv_update_shapes(
    x: Tensor, conv_state: Tensor, weight: Tensor, bias: Tensor | None, activation: str | None
) -> tuple[int, int, int, int]:
    """(batch, dim, state_len, width) of one conv step; BadInput when the shapes disagree
    (x (batch, dim), conv_state (batch, dim, state_len >= width - 1), weight (dim, width),
    bias (dim,)) or the activation is unknown."""
    if activation not in CONV_ACTIVATIONS:
        raise BadInput(f"unknown activation {activation!r}; choose from None, 'silu', 'swish'")
    if x.dim() != 2 or conv_state.dim() != 3 or weight.dim() != 2:
        raise BadInput(
            f"conv step wants x (batch, dim), conv_state (batch, dim, state_len), weight (dim, width); "
            f"got {tuple(x.shape)}, {tuple(conv_state.shape)}, {tuple(weight.shape)}"
        )
    batch, dim, state_len = conv_state.shape
    width = weight.shape[1]
    if tuple(x.shape) != (batch, dim) or weight.shape[0] != dim or width < 1 or state_len < width - 1:
        raise BadInput(
            f"conv step shapes disagree: x {tuple(x.shape)}, conv_state {tuple(conv_state.shape)}, "
            f"weight {tuple(weight.shape)} (state_len must be >= width - 1)"
        )
    if bias is not None and tuple(bias.shape) != (dim,):
        raise BadInput(f"conv step bias must be ({dim},), got {tuple(bias.shape)}")
    return batch, dim, state_len, width


def conv_shapes(x: Tensor, weight: Tensor, bias: Tensor | None, activation: str | None) -> None:
    """BadInput unless x (batch, dim, L >= 1), weight (dim, width >= 1), bias (dim,) agree, sit on
    one device, and the activation is known."""
    if activation not in CONV_ACTIVATIONS:
        raise BadInput(f"unknown activation {activation!r}; choose from None, 'silu', 'swish'")
    if x.dim() != 3 or weight.dim() != 2:
        raise BadInput(
            f"causal conv1d wants x (batch, dim, L) and weight (dim, width); "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    dim, width = weight.shape
    if x.shape[1] != dim or width < 1 or x.shape[2] < 1:
        raise BadInput(
            f"causal conv1d shapes disagree: x {tuple(x.shape)}, weight {tuple(weight.shape)} "
            "(x's dim must be weight's, width and L at least 1)"
        )
    if bias is not None and tuple(bias.shape) != (dim,):
        raise BadInput(f"causal conv1d bias must be ({dim},), got {tuple(bias.shape)}")
    if any(t is not None and t.device != x.device for t in (weight, bias)):
        raise BadInput("causal conv1d: x, weight and bias must be on one device")
