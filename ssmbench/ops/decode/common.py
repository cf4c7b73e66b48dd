"""What the fused decode kernels share: whether they can run, the batch and dtype limits, and
the tensor-core dot they accumulate in fp32 with its precision mode."""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

from ssmbench.device import triton_interpreting
from ssmbench.errors import BackendUnavailable

HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    import triton
    import triton.language as tl

# the GEMVs pad the batch to one 16-row tl.dot tile
MAX_BATCH = 16
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fused_decode_reason(x: Tensor) -> str | None:
    """Why the fused decode kernels cannot run on ``x`` (batch, d_model), or None when they can."""
    if not HAS_TRITON:
        return "triton is not installed"
    if x.device.type != "cuda" and not triton_interpreting():
        return "needs CUDA (or TRITON_INTERPRET=1)"
    if x.dim() != 2 or not 1 <= x.shape[0] <= MAX_BATCH:
        return f"batch must be 1..{MAX_BATCH}"
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype} not supported"
    return None


def require_fused(x: Tensor) -> None:
    """BackendUnavailable unless the fused decode kernels can run on ``x`` (batch, d_model)."""
    why = fused_decode_reason(x)
    if why is not None:
        raise BackendUnavailable(f"fused decode kernels: {why}")


def dot_precision(dtype: torch.dtype) -> str:
    """'ieee' for fp32 (no TF32); 'f32' (operands cast to fp32, ieee) under the interpreter, whose
    dot mishandles bf16; else 'tf32' (ignored for fp16/bf16 operands)."""
    if triton_interpreting():
        return "f32"
    return "ieee" if dtype == torch.float32 else "tf32"


if HAS_TRITON:

    @triton.jit
    def dot(a, b, PREC: tl.constexpr):
        """a (M, K) @ b (K, N) accumulated in fp32."""
        if PREC == "f32":
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        return tl.dot(a, b, input_precision=PREC)
