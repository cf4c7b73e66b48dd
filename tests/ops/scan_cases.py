"""One comparison for every scan backend: outputs, final state and the gradient of every input
against autograd through the sequential reference in float64. The cases and their inputs come
from benchmarks/scan_problems.py, which the GPU scripts share."""

from __future__ import annotations

import torch

from benchmarks.scan_problems import NAMES, Case, make_inputs
from ssmbench.ops.scan.ref import selective_scan_ref
from tests.helpers import assert_close

__all__ = ["NAMES", "Case", "check_against_ref", "make_inputs"]


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
