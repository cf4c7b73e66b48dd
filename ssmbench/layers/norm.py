"""Normalisation layers for pre-norm residual stacks, and the residual add fused with the norm.

``add_norm(y, residual, norm)`` is one step of the stack: s = residual + y (the residual stream,
in its own dtype: fp32 in the LM) and h = norm(s), the next sub-layer's input. With the "triton"
backend (CUDA; the default there for an affine LayerNorm) both come from one fused kernel
(``ssmbench.ops.norm``) that writes h straight in the autocast dtype (bf16), as mamba_ssm's fused
add + norm does; "ref" is the plain add then the module (under autocast a LayerNorm runs in fp32
and the next GEMM casts its output, a pass each way).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NORM_KINDS = ("layernorm", "rmsnorm")
NORM_BACKENDS = ("auto", "ref", "triton")


def build_norm(d_model: int, eps: float = 1e-5, kind: str = "layernorm") -> nn.Module:
    """A norm over the last dimension (width ``d_model``): LayerNorm (the zoo's default) or RMSNorm."""
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps)
    if kind == "rmsnorm":
        return nn.RMSNorm(d_model, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORM_KINDS}")


def norm_backend(backend: str, norm: nn.Module, device: torch.device) -> str:
    """The backend ``add_norm`` runs for ``backend`` ('auto', 'ref' or 'triton'): triton fuses an
    affine LayerNorm only (other norms run ref); auto is triton on CUDA, ref elsewhere."""
    if backend not in NORM_BACKENDS:
        raise ValueError(f"unknown norm backend {backend!r}; expected one of {NORM_BACKENDS}")
    fusable = isinstance(norm, nn.LayerNorm) and norm.weight is not None
    if not fusable or backend == "ref" or (backend == "auto" and device.type != "cuda"):
        return "ref"
    return "triton"


def add_norm(
    y: Tensor | None, residual: Tensor, norm: nn.Module, backend: str = "ref"
) -> tuple[Tensor, Tensor]:
    """(h, s): s = residual + y (residual itself when y is None), h = norm(s); ``backend`` a
    concrete one from ``norm_backend``. On triton h is in the autocast dtype when autocast is on."""
    if backend == "triton":
        from ssmbench.ops.norm.triton import add_layer_norm_triton

        device = residual.device.type
        out_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else residual.dtype
        return add_layer_norm_triton(y, residual, norm.weight, norm.bias, norm.eps, out_dtype)
    s = residual if y is None else residual + y
    return norm(s), s
