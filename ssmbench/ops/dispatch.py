"""Backend dispatch of the ops: which backends can run where, which one ``auto`` means, the
function of each concrete backend, and the public wrappers that resolve then call.

The table IMPLS names each backend's function; the op tuples are its keys.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable, BadInput

# (module, function) of each concrete backend of each op, in the order status lists them
IMPLS: dict[str, dict[str, tuple[str, str]]] = {
    "scan": {
        "ref": ("ssmbench.ops.scan.ref", "selective_scan_ref"),
        "chunked": ("ssmbench.ops.scan.chunked", "selective_scan_chunked"),
        "triton": ("ssmbench.ops.scan.triton", "selective_scan_triton"),
        "mamba_ssm": ("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn"),
    },
    "step": {
        "ref": ("ssmbench.ops.state_update.ref", "selective_state_update_ref"),
        "triton": ("ssmbench.ops.state_update.triton", "selective_state_update_triton"),
        "mamba_ssm": ("mamba_ssm.ops.triton.selective_state_update", "selective_state_update"),
    },
    "conv": {
        "ref": ("ssmbench.ops.conv.ref", "causal_conv1d_ref"),
        "triton": ("ssmbench.ops.conv.triton", "causal_conv1d_triton"),
        "causal_conv1d": ("causal_conv1d", "causal_conv1d_fn"),
    },
    "conv_step": {
        "ref": ("ssmbench.ops.conv.ref", "causal_conv1d_update_ref"),
        "triton": ("ssmbench.ops.conv.triton_update", "causal_conv1d_update_triton"),
    },
}
# the official packages each backend needs (optional, CUDA only)
OFFICIAL = {"mamba_ssm": "mamba_ssm", "causal_conv1d": "causal_conv1d"}
OP_BACKENDS = {op: tuple(impls) for op, impls in IMPLS.items()}
SCAN_BACKENDS = OP_BACKENDS["scan"]
STEP_BACKENDS = OP_BACKENDS["step"]
CONV_BACKENDS = OP_BACKENDS["conv"]
CONV_STEP_BACKENDS = OP_BACKENDS["conv_step"]


@functools.cache
def _module_available(name: str) -> bool:
    """Whether ``name`` can be imported; cached: find_spec costs ~0.2 ms, and layers ask per call."""
    return importlib.util.find_spec(name) is not None


def _triton_reason(device: torch.device) -> str | None:
    if not _module_available("triton"):
        return "triton is not installed"
    if device.type == "cuda":
        return None
    if triton_interpreting():
        return None
    return "triton kernels need CUDA (on CPU only under TRITON_INTERPRET=1, for testing)"


def _official_reason(package: str, device: torch.device) -> str | None:
    if not _module_available(package):
        return f"{package} is not installed (optional: pip install 'ssmbench[mamba]')"
    if device.type != "cuda":
        return f"{package} kernels need CUDA"
    return None


def _backend_names(op: str) -> tuple[str, ...]:
    """The backends of ``op``; an unknown op is a programming error, not a silent default."""
    if op not in OP_BACKENDS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OP_BACKENDS)}")
    return OP_BACKENDS[op]


def backend_status(device: torch.device | str, op: str = "scan") -> dict[str, str | None]:
    """For each backend of ``op`` ('scan', 'step', 'conv' or 'conv_step'): None when usable, else
    why not."""
    device = torch.device(device)
    names = _backend_names(op)
    status: dict[str, str | None] = {}
    for name in names:
        if name in ("ref", "chunked"):
            status[name] = None
        elif name == "triton":
            status[name] = _triton_reason(device)
        else:
            status[name] = _official_reason(OFFICIAL[name], device)
    return status


def available_backends(device: torch.device | str, op: str = "scan") -> list[str]:
    """Backends of ``op`` usable on ``device``, in SCAN_BACKENDS/STEP_BACKENDS order."""
    return [k for k, why in backend_status(device, op).items() if why is None]


def resolve_backend(backend: str, device: torch.device | str, op: str = "scan") -> str:
    """The concrete backend that ``backend`` means on ``device``; raise when it cannot run.

    auto: triton on CUDA (then the official kernel, then chunked); chunked on CPU for the scan,
    ref on CPU for the others (the interpreter is for correctness, not speed).
    """
    device = torch.device(device)
    names = _backend_names(op)
    status = backend_status(device, op)
    if backend == "auto":
        if device.type == "cuda":
            order = ("triton", "mamba_ssm", "causal_conv1d", "chunked", "ref")
        else:
            order = ("chunked", "ref")
        return next(b for b in order if b in status and status[b] is None)
    if backend not in names:
        raise BadInput(f"unknown {op} backend {backend!r}; choose from auto, {', '.join(names)}")
    if status[backend] is not None:
        raise BackendUnavailable(f"{op} backend {backend!r} is not usable here: {status[backend]}")
    return backend


def backend_impl(op: str, name: str) -> Callable[..., object]:
    """The function of concrete backend ``name`` of ``op``, imported on first use (triton and
    mamba_ssm are optional)."""
    if name not in _backend_names(op):
        raise ValueError(f"unknown {op} backend {name!r}; expected one of {', '.join(IMPLS[op])}")
    module, function = IMPLS[op][name]
    return getattr(importlib.import_module(module), function)


def scan_impl(name: str) -> Callable[..., object]:
    """The function of concrete scan backend ``name`` (from ``resolve_backend``), for callers that
    resolve once and call many times (timing loops), with selective_scan's positional arguments."""
    return backend_impl("scan", name)


def step_impl(name: str) -> Callable[..., object]:
    """The function of concrete decode-step backend ``name`` (from ``resolve_backend``)."""
    return backend_impl("step", name)


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
    name = resolve_backend(backend, x.device, "conv_step")
    fn = backend_impl("conv_step", name)
    return fn(x, conv_state, weight, bias, activation)


def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    activation: str | None = None,
    *,
    backend: str = "auto",
) -> Tensor:
    """Causal depthwise conv1d over a sequence (causal-conv1d ``causal_conv1d_fn`` contract for x,
    weight, bias, activation), differentiable.

    x: (batch, dim, L), any batch/channel strides; weight: (dim, width); bias: (dim,); activation:
    None, 'silu' or 'swish'. y[b, d, t] = act(bias[d] + sum_k weight[d, k] x[b, d, t - width + 1 + k])
    with x = 0 before t = 0. Returns y (batch, dim, L) in x's dtype.
    """
    name = resolve_backend(backend, x.device, "conv")
    fn = backend_impl("conv", name)
    return fn(x, weight, bias, activation=activation)
