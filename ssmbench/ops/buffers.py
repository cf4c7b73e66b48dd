"""Output buffers of the fast kernels."""

from __future__ import annotations

import os

import torch
from torch import Tensor


def new_output(*shape: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A fresh buffer of ``shape`` (default: like's) on like's device; NaN-filled when
    SSMBENCH_POISON_OUTPUTS=1 (tests), so an element a kernel forgets to write cannot pass a
    comparison."""
    shape = shape or tuple(like.shape)
    dtype = dtype or like.dtype
    if os.environ.get("SSMBENCH_POISON_OUTPUTS") == "1":
        return torch.full(shape, float("nan"), device=like.device, dtype=dtype)
    return torch.empty(shape, device=like.device, dtype=dtype)
