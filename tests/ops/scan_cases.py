"""Shared inputs and one comparison for every scan backend: outputs, final state and the
gradient of every input against autograd through the sequential reference in float64."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssmbench.ops.scan.ref import selective_scan_ref
from tests.helpers import assert_close

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@dataclass(frozen=True)
class Case:
    """One scan problem. groups 0: B/C of shape (batch, N, L); G > 0: (batch, G, N, L)."""

    batch: int
    dim: int
    L: int
    N: int
    groups: int = 0
    z: bool = True
    D: bool = True
    bias: bool = True
    softplus: bool = True
    dtype: torch.dtype = torch.float64


def make_inputs(case: Case, seed: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor | None]:
    """Fresh random inputs: activations and B/C in case.dtype, A/D/delta_bias in fp32 (fp64
    when case.dtype is fp64), as Mamba layers pass them. A < 0; delta centred for softplus."""
    g = torch.Generator().manual_seed(seed)
    act, par = case.dtype, torch.float64 if case.dtype == torch.float64 else torch.float32
    b, d, L, n = case.batch, case.dim, case.L, case.N

    def rnd(*shape, dtype, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype).to(device)

    bc = (b, n, L) if case.groups == 0 else (b, case.groups, n, L)
    delta = rnd(b, d, L, dtype=act, scale=0.5, shift=-1.0) if case.softplus else (
        torch.rand(b, d, L, generator=g, dtype=torch.float64) * 0.5).to(act).to(device)
    return {
        "u": rnd(b, d, L, dtype=act),
        "delta": delta,
        "A": (-torch.rand(d, n, generator=g, dtype=torch.float64) * 4 - 0.1).to(par).to(device),
        "B": rnd(*bc, dtype=act),
        "C": rnd(*bc, dtype=act),
        "D": rnd(d, dtype=par) if case.D else None,
        "z": rnd(b, d, L, dtype=act) if case.z else None,
        "delta_bias": rnd(d, dtype=par, scale=0.3) if case.bias else None,
    }


def check_against_ref(fn, case: Case, seed: int, tol: float, *, use_last: bool = True, device="cpu", **kw):
    """Run ``fn`` (a scan backend) and the fp64 reference on the same inputs; compare out,
    the final state and the gradient of every input, all by relative error <= tol."""
    x = make_inputs(case, seed, device)
    xs = {k: (v.clone().requires_grad_() if v is not None else None) for k, v in x.items()}
    x64 = {k: (v.detach().double().requires_grad_() if v is not None else None) for k, v in x.items()}
    args = [xs[k] for k in NAMES]
    out, last = fn(*args, case.softplus, True, **kw)
    ref_out, ref_last = selective_scan_ref(*[x64[k] for k in NAMES], case.softplus, True)
    assert out.dtype == case.dtype
    assert_close(out, ref_out, tol, f"{case} out")
    assert_close(last, ref_last, tol, f"{case} last state")

    g = torch.Generator().manual_seed(seed + 1)
    # the upstream gradient, rounded to the output's dtype so both sides see the same one
    dout = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype).to(device)
    dlast = torch.randn(last.shape, generator=g, dtype=torch.float64).to(device)
    loss = (out.double() * dout.double()).sum() + ((last.double() * dlast).sum() if use_last else 0)
    ref_loss = (ref_out * dout.double()).sum() + ((ref_last * dlast).sum() if use_last else 0)
    present = [k for k in NAMES if x[k] is not None]
    grads = torch.autograd.grad(loss, [xs[k] for k in present])
    ref_grads = torch.autograd.grad(ref_loss, [x64[k] for k in present])
    for k, gr, rg in zip(present, grads, ref_grads, strict=True):
        assert gr.dtype == x[k].dtype, f"d{k} dtype {gr.dtype} != {x[k].dtype}"
        assert_close(gr, rg, tol, f"{case} d{k}")
