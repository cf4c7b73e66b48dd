"""Analytic FLOPs and minimum bytes of one selective-scan call.

FLOP convention (mamba_ssm's flop counter for the core): 9 FLOPs per (batch, dim, L, N)
element for the recurrence -- exp(delta*A) (2), delta*B*u (2), h = dA*h + dBu (2),
y += C*h (2), plus 1 for the softplus/bias on delta amortised over N -- and per
(batch, dim, L) element 2 for the D skip and 5 for the z gate (sigmoid counted as 3).
Backward is counted as 2x forward (so forward+backward = 3x forward); the recomputation
a kernel does inside its backward is not counted as useful work.

Minimum bytes: every input read once and every output written once, at the dtypes
given; forward+backward adds reading dout and the saved inputs again and writing every
input gradient. A decode step reads and writes the fp32 state once.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("fwd", "fwd_bwd", "step")


@dataclass(frozen=True)
class ScanShape:
    """One scan problem. groups: 1 for B/C of shape (batch, N, L), G for (batch, G, N, L)."""

    batch: int
    dim: int
    seqlen: int
    dstate: int
    groups: int = 1
    has_z: bool = True
    has_D: bool = True
    elem_bytes: int = 2
    state_bytes: int = 4

    def __post_init__(self) -> None:
        for name in ("batch", "dim", "seqlen", "dstate", "groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def scan_flops(s: ScanShape, mode: str = "fwd") -> int:
    """FLOPs of one call in ``mode`` ('fwd', 'fwd_bwd' or 'step' = one token, seqlen ignored)."""
    L = 1 if mode == "step" else s.seqlen
    core = 9 * s.batch * s.dim * L * s.dstate
    elementwise = s.batch * s.dim * L * ((2 if s.has_D else 0) + (5 if s.has_z else 0))
    fwd = core + elementwise
    if mode == "fwd_bwd":
        return 3 * fwd
    if mode in ("fwd", "step"):
        return fwd
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def scan_bytes(s: ScanShape, mode: str = "fwd", return_last_state: bool = False) -> int:
    """Minimum bytes moved through device memory by one call in ``mode``."""
    e = s.elem_bytes
    L = 1 if mode == "step" else s.seqlen
    act = s.batch * s.dim * L * e  # one (batch, dim, L) tensor
    bc = s.batch * s.groups * s.dstate * L * e  # one of B or C
    params = s.dim * s.dstate * 4 + 2 * s.dim * 4  # A, D, delta_bias in fp32
    n_act_in = 2 + (1 if s.has_z else 0)  # u, delta, z
    if mode == "step":
        state = s.batch * s.dim * s.dstate * s.state_bytes
        return n_act_in * act + 2 * bc + params + act + 2 * state
    fwd = n_act_in * act + 2 * bc + params + act
    if return_last_state:
        fwd += s.batch * s.dim * s.dstate * s.state_bytes
    if mode == "fwd":
        return fwd
    if mode == "fwd_bwd":
        # backward: read dout + the inputs again, write du, ddelta, dz, dB, dC, dA, dD, dbias
        bwd = act + (n_act_in * act + 2 * bc + params) + (n_act_in * act + 2 * bc + params)
        return fwd + bwd
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
