"""Training metrics: smoothed loss, bits per byte, steps-to-target (the papers' headline), memory."""

from __future__ import annotations

import math
import resource
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

LN2 = math.log(2.0)


class EMA:
    """Bias-corrected exponential moving average: m = (1 - a) m + a x, reported m / (1 - (1 - a)^n),
    so early values are not dragged towards zero (with a = 0.001 the first ~1000 steps are
    close to their running mean)."""

    def __init__(self, alpha: float, m: float = 0.0, n: int = 0) -> None:
        self.alpha, self.m, self.n = alpha, m, n

    def update(self, x: float) -> float:
        self.m = (1.0 - self.alpha) * self.m + self.alpha * x
        self.n += 1
        return self.value

    @property
    def value(self) -> float:
        return self.m / (1.0 - (1.0 - self.alpha) ** self.n) if self.n else float("nan")

    def state(self) -> dict[str, float]:
        return {"alpha": self.alpha, "m": self.m, "n": self.n}


def bits_per_byte(nll_nats_sum: float, n_bytes: int) -> float:
    """Total negative log-likelihood (nats) of some tokens over the raw bytes they cover, in bits."""
    return nll_nats_sum / LN2 / n_bytes


def steps_to_target(steps: Sequence[float], values: Sequence[float], target: float) -> float | None:
    """First step at which the curve reaches ``target`` (value <= target), linearly interpolated
    between the two evaluations around the crossing; None when it never does. Non-finite values
    (a diverged run) never count as reaching it."""
    prev: tuple[float, float] | None = None
    for s, v in zip(steps, values, strict=True):
        if math.isfinite(v) and v <= target:
            if prev is None or prev[1] == v:
                return float(s)
            s0, v0 = prev
            return s0 + (v0 - target) / (v0 - v) * (s - s0)
        prev = (float(s), float(v)) if math.isfinite(v) else None
    return None


@dataclass(frozen=True)
class StepsToTarget:
    """steps: when the model reached the target (None: never). pct: steps / reference steps * 100
    (None: never reached, shown as ">100%"). speedup: reference steps / steps."""

    steps: float | None
    pct: float | None
    speedup: float | None

    @property
    def pct_text(self) -> str:
        return ">100%" if self.pct is None else f"{self.pct:.0f}%"


def steps_to_target_table(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], reference: str,
                          target: float) -> dict[str, StepsToTarget]:
    """For each model's (steps, values) curve: steps to ``target``, share of the reference's
    steps and speedup, as the MoE-Mamba tables report them."""
    ref_steps = steps_to_target(*curves[reference], target) if reference in curves else None
    out = {}
    for name, (steps, values) in curves.items():
        s = steps_to_target(steps, values, target)
        if s is None or ref_steps is None:
            out[name] = StepsToTarget(s, None, None)
        else:
            out[name] = StepsToTarget(s, 100.0 * s / ref_steps if ref_steps > 0 else None,
                                      ref_steps / s if s > 0 else None)
    return out


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int | None, str]:
    """(bytes, what it measures): CUDA max_memory_allocated since the last reset, or on CPU the
    process's peak resident set size (for the whole process, so it never goes down)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_peak_rss"
