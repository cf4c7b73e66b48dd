"""Selective-scan problems for kernel-profile: random inputs, the timed call, the check against ref.

Inputs follow mamba_ssm's tests: u, delta, z, B, C in the row's dtype;
A, D, delta_bias in float32; z gating and delta_softplus on. The decode step works on a
float32 state (batch, dim, N).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# The public ops dispatch (resolve_backend) inspects the installed packages on every call,
# which would be timed with the kernel: resolve once, then call the backend directly.
from ssmbench.device import dtype_bytes, parse_dtype
from ssmbench.ops import resolve_backend, scan_impl, step_impl
from ssmbench.ops.scan.chunked import chunked_mode
from ssmbench.ops.scan.cost import ScanShape
from ssmbench.ops.scan.ref import selective_scan_ref
from ssmbench.ops.state_update.ref import selective_state_update_ref
from ssmbench.profile.presets import CHECK_SEQLEN, SIZE_LIMITS
from ssmbench.profile.problem import Problem, generator, max_rel_err, rand, randn
from ssmbench.profile.spec import RowSpec

SCAN_ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
STEP_ARGS = ("x", "dt", "A", "B", "C", "D", "z", "dt_bias")


def count_shape(spec: RowSpec) -> ScanShape:
    return ScanShape(spec.batch, spec.dim, spec.seqlen, spec.dstate, elem_bytes=dtype_bytes(spec.dtype))


def scan_inputs(spec: RowSpec, device: torch.device, seed: int, grad: bool = False) -> dict[str, Tensor]:
    """Random scan inputs for ``spec`` (never zeros); leaves require grad when ``grad``."""
    b, d, L, n = spec.shape
    dt = parse_dtype(spec.dtype)
    f32 = torch.float32
    g = generator(device, seed)
    x = {
        "u": randn((b, d, L), g, device, dt),  # (B, D, L)
        "delta": (0.5 * rand((b, d, L), g, device, f32)).to(dt),  # (B, D, L)
        "A": -0.5 * rand((d, n), g, device, f32),  # (D, N)
        "B": randn((b, n, L), g, device, dt),  # (B, N, L)
        "C": randn((b, n, L), g, device, dt),  # (B, N, L)
        "D": randn((d,), g, device, f32),
        "z": randn((b, d, L), g, device, dt),  # (B, D, L)
        "delta_bias": 0.5 * rand((d,), g, device, f32),
    }
    return {k: v.requires_grad_(grad) for k, v in x.items()}


def step_inputs(spec: RowSpec, device: torch.device, seed: int) -> dict[str, Tensor]:
    """Random decode-step inputs: state (B, D, N) fp32; x, dt, z (B, D); B, C (B, N)."""
    b, d, _, n = spec.shape
    dt = parse_dtype(spec.dtype)
    f32 = torch.float32
    g = generator(device, seed)
    return {
        "state": randn((b, d, n), g, device, f32),
        "x": randn((b, d), g, device, dt),
        "dt": (0.5 * rand((b, d), g, device, f32)).to(dt),
        "A": -0.5 * rand((d, n), g, device, f32),
        "B": randn((b, n), g, device, dt),
        "C": randn((b, n), g, device, dt),
        "D": randn((d,), g, device, f32),
        "z": randn((b, d), g, device, dt),
        "dt_bias": 0.5 * rand((d,), g, device, f32),
    }


def _scan_call(fn: Callable[..., object], x: dict[str, Tensor]) -> Tensor:
    return fn(*(x[k] for k in SCAN_ARGS), True, False)  # delta_softplus, no last state


def _step_call(fn: Callable[..., object], state: Tensor, x: dict[str, Tensor]) -> Tensor:
    args = {k: x[k] for k in STEP_ARGS}
    return fn(state, args.pop("x"), args.pop("dt"), args.pop("A"), args.pop("B"), args.pop("C"),
              **args, dt_softplus=True)


def _label(backend: str, u: Tensor, needs_grad: bool) -> str:
    """The chunked backend runs eager or through torch.compile; its rows say which."""
    return f"chunked ({chunked_mode(u, needs_grad)})" if backend == "chunked" else backend


def scan_problem(spec: RowSpec, device: torch.device, seed: int) -> Problem:
    """The timed call of backend ``spec.impl`` in ``spec.mode`` (inputs built here)."""
    op = "step" if spec.mode == "step" else "scan"
    backend = resolve_backend(spec.impl, device, op)
    if spec.mode == "step":
        x = step_inputs(spec, device, seed)
        fn = step_impl(backend)
        state = x["state"]
        return Problem(run=lambda: _step_call(fn, state, x), backend=backend)
    fn = scan_impl(backend)
    grad = spec.mode == "fwd_bwd"
    x = scan_inputs(spec, device, seed, grad)
    if not grad:
        return Problem(run=lambda: _scan_call(fn, x), backend=backend, label=_label(backend, x["u"], False))
    leaves = tuple(x[k] for k in SCAN_ARGS)
    dout = randn((spec.batch, spec.dim, spec.seqlen), generator(device, seed + 1), device, x["u"].dtype)

    def fwd_bwd() -> object:
        return torch.autograd.grad(_scan_call(fn, x), leaves, dout)

    return Problem(run=fwd_bwd, backend=backend, label=_label(backend, x["u"], True))


def check_spec(spec: RowSpec, device: torch.device) -> RowSpec | None:
    """The shape ref checks ``spec`` on: its own when ref may run it, else batch 1 and a shorter
    L (same dim and dstate); None when even that is beyond ref's limit."""
    limit = SIZE_LIMITS.get(("ref", device.type))
    if spec.mode == "step" or limit is None or limit.allows(spec.shape):
        return spec
    seqlen = min(spec.seqlen, CHECK_SEQLEN)
    while seqlen >= 1:
        small = RowSpec(spec.impl, spec.mode, 1, spec.dim, seqlen, spec.dstate, spec.dtype, spec.head_dim)
        if limit.allows(small.shape):
            return small
        seqlen //= 2
    return None


def scan_rel_err(spec: RowSpec, device: torch.device, seed: int, backend: str) -> float:
    """Relative error of ``backend`` against ref on fresh inputs of shape ``spec``.

    fwd: the output; fwd_bwd: the worst of the output and all eight gradients; step: the
    output and the updated state. ref computes in float64 on float64 copies of the same inputs.
    """
    if spec.mode == "step":
        x = step_inputs(spec, device, seed)
        state, ref_state = x["state"].clone(), x["state"].double()
        out = _step_call(step_impl(backend), state, x)
        ref = _step_call(selective_state_update_ref, ref_state, {k: v.double() for k, v in x.items()})
        return max_rel_err([(out, ref), (state, ref_state)])
    grad = spec.mode == "fwd_bwd"
    x = scan_inputs(spec, device, seed, grad)
    x_ref = {k: v.detach().double().requires_grad_(grad) for k, v in x.items()}
    out = _scan_call(scan_impl(backend), x)
    ref = _scan_call(selective_scan_ref, x_ref)
    if not grad:
        return max_rel_err([(out, ref)])
    dout = randn(tuple(out.shape), generator(device, seed + 1), device, out.dtype)
    grads = torch.autograd.grad(out, [x[k] for k in SCAN_ARGS], dout, allow_unused=True)
    ref_grads = torch.autograd.grad(ref, [x_ref[k] for k in SCAN_ARGS], dout.double(), allow_unused=True)
    return max_rel_err([(out, ref), *zip(grads, ref_grads, strict=True)])
