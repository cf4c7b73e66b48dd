"""A timed problem: the callable to time, the backend that runs it, and the context to run it in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Problem:
    """``run()`` is the timed call (inputs already built). Enter ``context()`` around it.
    ``label``: what the row's backend column shows, when more than the backend's name."""

    run: Callable[[], object]
    backend: str
    context: Callable[[], contextlib.AbstractContextManager[Any]] = field(default=contextlib.nullcontext)
    label: str = ""


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def randn(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)


def rand(shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.rand(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)


def rel_err(out: Tensor, ref: Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; inf when ``out`` holds a NaN or inf."""
    out64, ref64 = out.detach().double(), ref.detach().double()
    if out64.shape != ref64.shape or not torch.isfinite(out64).all():
        return float("inf")
    denom = ref64.norm().item()
    return (out64 - ref64).norm().item() / (denom if denom > 0 else 1.0)


def max_rel_err(pairs: list[tuple[Tensor | None, Tensor | None]]) -> float:
    """Largest rel_err over (out, ref) pairs; a missing output where ref has one is inf."""
    worst = 0.0
    for out, ref in pairs:
        if ref is None:
            continue
        worst = max(worst, float("inf") if out is None else rel_err(out, ref))
    return worst
