"""Selective-scan operators with explicit backends.

``selective_scan`` has the signature and semantics of mamba_ssm's ``selective_scan_fn``;
``selective_state_update`` those of its decode-step ``selective_state_update``;
``causal_conv1d_update`` those of causal-conv1d's conv decode step (ops "conv": ref, triton).
Backends: ``ref`` (sequential oracle), ``chunked`` (parallel PyTorch), ``triton`` (fused
kernel), ``mamba_ssm`` (only when that package is importable). ``auto`` picks the fastest
usable one; call ``resolve_backend`` to learn which one that is, and record it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable

import torch
from torch import Tensor

from ssmbench.errors import BackendUnavailable, BadInput

SCAN_BACKENDS = ("ref", "chunked", "triton", "mamba_ssm")
STEP_BACKENDS = ("ref", "triton", "mamba_ssm")
CONV_BACKENDS = ("ref", "triton")
OP_BACKENDS = {"scan": SCAN_BACKENDS, "step": STEP_BACKENDS, "conv": CONV_BACKENDS}


@functools.cache
def _module_available(name: str) -> bool:
    """Whether ``name`` can be imported; cached: find_spec costs ~0.2 ms, and layers ask per call."""
    return importlib.util.find_spec(name) is not None


def _triton_reason(device: torch.device) -> str | None:
    if not _module_available("triton"):
        return "triton is not installed"
    if device.type == "cuda":
        return None
    if os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return "triton kernels need CUDA (on CPU only under TRITON_INTERPRET=1, for testing)"


def _mamba_ssm_reason(device: torch.device) -> str | None:
    if not _module_available("mamba_ssm"):
        return "mamba_ssm is not installed (optional: pip install 'ssmbench[mamba]')"
    if device.type != "cuda":
        return "mamba_ssm kernels need CUDA"
    return None


def _backend_names(op: str) -> tuple[str, ...]:
    """The backends of ``op``; an unknown op is a programming error, not a silent default."""
    if op not in OP_BACKENDS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OP_BACKENDS)}")
    return OP_BACKENDS[op]


def backend_status(device: torch.device | str, op: str = "scan") -> dict[str, str | None]:
    """For each backend of ``op`` ('scan', 'step' or 'conv'): None when usable, else why not."""
    device = torch.device(device)
    names = _backend_names(op)
    status: dict[str, str | None] = {}
    for name in names:
        if name in ("ref", "chunked"):
            status[name] = None
        elif name == "triton":
            status[name] = _triton_reason(device)
        else:
            status[name] = _mamba_ssm_reason(device)
    return status


def available_backends(device: torch.device | str, op: str = "scan") -> list[str]:
    """Backends of ``op`` usable on ``device``, in SCAN_BACKENDS/STEP_BACKENDS order."""
    return [k for k, why in backend_status(device, op).items() if why is None]


def resolve_backend(backend: str, device: torch.device | str, op: str = "scan") -> str:
    """The concrete backend that ``backend`` means on ``device``; raise when it cannot run.

    auto: triton on CUDA (then mamba_ssm, then chunked); chunked on CPU for the scan,
    ref on CPU for the step and the conv step (the interpreter is for correctness, not speed).
    """
    device = torch.device(device)
    names = _backend_names(op)
    status = backend_status(device, op)
    if backend == "auto":
        if device.type == "cuda":
            order = ("triton", "mamba_ssm", "chunked", "ref")
        else:
            order = ("chunked", "ref")
        return next(b for b in order if b in status and status[b] is None)
    if backend not in names:
        raise BadInput(f"unknown {op} backend {backend!r}; choose from auto, {', '.join(names)}")
    if status[backend] is not None:
        raise BackendUnavailable(f"{op} backend {backend!r} is not usable here: {status[backend]}")
    return backend


def scan_impl(name: str) -> Callable[..., object]:
    """The function of concrete scan backend ``name`` (from ``resolve_backend``), for callers that
    resolve once and call many times (timing loops), with selective_scan's positional arguments."""
    if name == "ref":
        from ssmbench.ops.scan.ref import selective_scan_ref

        return selective_scan_ref
    if name == "chunked":
        from ssmbench.ops.scan.chunked import selective_scan_chunked

        return selective_scan_chunked
    if name == "triton":
        from ssmbench.ops.scan.triton_scan import selective_scan_triton

        return selective_scan_triton
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn


def step_impl(name: str) -> Callable[..., object]:
    """The function of concrete decode-step backend ``name`` (from ``resolve_backend``)."""
    if name == "ref":
        from ssmbench.ops.scan.step import selective_state_update_ref

        return selective_state_update_ref
    if name == "triton":
        from ssmbench.ops.scan.step import selective_state_update_triton

        return selective_state_update_triton
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update

    return selective_state_update


def _conv_impl(name: str) -> Callable[..., object]:
    if name == "ref":
        from ssmbench.ops.conv_step import causal_conv1d_update_ref

        return causal_conv1d_update_ref
    from ssmbench.ops.conv_step import causal_conv1d_update_triton

    return causal_conv1d_update_triton


def selective_scan(
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
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan (mamba_ssm ``selective_scan_fn`` contract).

    u, delta, z: (batch, dim, L); A: (dim, N) real; B, C: (batch, N, L) or grouped
    (batch, G, N, L); D, delta_bias: (dim,). delta <- softplus(delta + delta_bias) when
    asked; h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t; y_t = C_t . h_t + D u_t;
    out = y * silu(z). Returns out (batch, dim, L), or (out, last_state (batch, dim, N)).
    """
    name = resolve_backend(backend, u.device, "scan")
    fn = scan_impl(name)
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def selective_state_update(
    state: Tensor,
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
    *,
    backend: str = "auto",
) -> Tensor:
    """One decode step (mamba_ssm ``selective_state_update`` contract); state updated in place.

    state: (batch, dim, N); x, dt, z: (batch, dim); A: (dim, N); B, C: (batch, N) or
    (batch, G, N); D, dt_bias: (dim,). Returns out (batch, dim).
    """
    name = resolve_backend(backend, x.device, "step")
    fn = step_impl(name)
    return fn(state, x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus)


def causal_conv1d_update(
    x: Tensor,
    conv_state: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
    *,
    backend: str = "auto",
) -> Tensor:
    """One causal depthwise conv1d decode step (causal-conv1d ``causal_conv1d_update`` contract).

    x: (batch, dim) new column; conv_state: (batch, dim, state_len >= width - 1), the last inputs
    oldest first, rolled in place to end with x; weight: (dim, width); bias: (dim,); activation:
    None, 'silu' or 'swish'. Returns act(window . weight + bias), (batch, dim) in x's dtype.
    """
    name = resolve_backend(backend, x.device, "conv")
    fn = _conv_impl(name)
    return fn(x, conv_state, weight, bias, activation)


__all__ = [
    "scan_impl",
    "step_impl",
    "CONV_BACKENDS",
    "OP_BACKENDS",
    "SCAN_BACKENDS",
    "STEP_BACKENDS",
    "available_backends",
    "backend_status",
    "causal_conv1d_update",
    "resolve_backend",
    "selective_scan",
    "selective_state_update",
]
