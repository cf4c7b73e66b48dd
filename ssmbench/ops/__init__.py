"""Selective-scan operators with explicit backends.

``selective_scan`` has the signature and semantics of mamba_ssm's ``selective_scan_fn``;
``selective_state_update`` those of its decode-step ``selective_state_update``;
``causal_conv1d`` and ``causal_conv1d_update`` those of causal-conv1d's ``causal_conv1d_fn`` (op "conv") and
its decode step (op "conv_step").
Backends: ``ref`` (sequential oracle), ``chunked`` (parallel PyTorch), ``triton`` (fused
kernel), ``mamba_ssm`` / ``causal_conv1d`` (only when those packages are importable). ``auto``
picks the fastest usable one; call ``resolve_backend`` to learn which one that is, and record it.

Layout: one package per op (``scan``, ``state_update``, ``conv``) with ``ref.py`` beside its fast
backends, ``decode`` for the fused decode kernels, ``checks`` for the input checks the backends
share, ``dispatch`` for backend choice and the wrappers re-exported here.
"""

from ssmbench.ops.dispatch import (
    CONV_BACKENDS,
    CONV_STEP_BACKENDS,
    OP_BACKENDS,
    SCAN_BACKENDS,
    STEP_BACKENDS,
    available_backends,
    backend_status,
    causal_conv1d,
    causal_conv1d_update,
    resolve_backend,
    scan_impl,
    selective_scan,
    selective_state_update,
    step_impl,
)

__all__ = [
    "CONV_BACKENDS",
    "CONV_STEP_BACKENDS",
    "OP_BACKENDS",
    "SCAN_BACKENDS",
    "STEP_BACKENDS",
    "available_backends",
    "backend_status",
    "causal_conv1d",
    "causal_conv1d_update",
    "resolve_backend",
    "scan_impl",
    "selective_scan",
    "selective_state_update",
    "step_impl",
]
