"""Training metrics: smoothed loss, bits per byte, steps-to-target (the papers' headline), memory."""

from __future__ import annotations

import math
import re
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

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


SMOOTH_POINTS = 5
SMOOTHING = (f"centred moving average over {SMOOTH_POINTS} evaluations ({SMOOTH_POINTS // 2} either side), "
             "the window narrowing symmetrically near the ends of the curve, so the first and last "
             "evaluations are kept as measured (an end is neither lagged nor extrapolated)")
STEPS_RULE = ("the first step after which the smoothed curve stays at or below the target, interpolated "
              "linearly at its last crossing; a curve that ends above it (or not finite) never reached it")


def smoothed(values: Sequence[float], points: int = SMOOTH_POINTS) -> list[float]:
    """Centred moving average over ``points`` (odd) consecutive values; near the ends the window
    narrows symmetrically (value i averages i - r..i + r, r = min(points // 2, i, n - 1 - i)), so
    the first and last values are kept. A window holding a non-finite value gives NaN, so a
    diverged stretch never looks smooth."""
    if points < 1 or points % 2 == 0:
        raise ValueError(f"smoothing window must be odd and positive, got {points}")
    n, k = len(values), points // 2
    out = []
    for i in range(n):
        r = min(k, i, n - 1 - i)
        window = [float(v) for v in values[i - r : i + r + 1]]
        out.append(math.fsum(window) / len(window) if all(math.isfinite(v) for v in window) else math.nan)
    return out


def steps_to_target(steps: Sequence[float], values: Sequence[float], target: float) -> float | None:
    """The first step after which the curve stays at or below ``target``; None when it ends above
    it (or not finite). Between the last evaluation above the target and the next one, the
    crossing is interpolated linearly (the next step when the one above is not finite). A curve
    that is at or below the target from its first value reaches it at its first step."""
    if len(steps) != len(values):
        raise ValueError("steps and values differ in length")
    above = [i for i, v in enumerate(values) if not (math.isfinite(v) and v <= target)]
    if not values or (above and above[-1] == len(values) - 1):
        return None
    if not above:
        return float(steps[0])
    i = above[-1]
    (s0, v0), (s1, v1) = (steps[i], values[i]), (steps[i + 1], values[i + 1])
    if not math.isfinite(v0):
        return float(s1)
    return float(s0) + (v0 - target) / (v0 - v1) * (float(s1) - float(s0))


def mean_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[list[float], list[float]]:
    """(steps, values): the mean of several (steps, values) curves at the steps all of them have."""
    if not curves:
        return [], []
    common = set(curves[0][0]).intersection(*(set(s) for s, _ in curves[1:]))
    steps = sorted(common)
    by_step = [dict(zip(s, v, strict=True)) for s, v in curves]
    return steps, [math.fsum(c[s] for c in by_step) / len(by_step) for s in steps]


PEAK_MEM_KINDS = {
    "cuda_max_allocated": "the most GPU memory held by tensors during the run "
                          "(torch.cuda.max_memory_allocated, reset when the run starts)",
    "cpu_run_peak_rss": "the process's peak resident memory during the run less its resident memory just "
                        "before the model was built (the high-water mark is reset when the run starts; "
                        "with --devices every CPU run has a process of its own, else memory the allocator "
                        "kept from an earlier run can hide part of a later run's)",
    "cpu_process_peak_rss": "the process's peak resident memory since it started (this system cannot reset "
                            "it per run, so a run after the first shows the largest so far)",
}


def _status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status ("VmRSS", "VmHWM") in bytes; None off Linux."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def reset_peak_memory(device: torch.device) -> int | None:
    """Start measuring one run's peak memory; returns the baseline ``peak_memory`` subtracts:
    0 on CUDA (its counter is reset), the resident bytes now on a CPU whose high-water mark could
    be reset (Linux), None where it cannot."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return 0
    try:
        # "5": reset the peak resident set size to the current one (proc(5), Linux 4.0+)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def peak_memory(device: torch.device, baseline: int | None = None) -> tuple[int | None, str]:
    """(bytes, kind): the run's peak since ``reset_peak_memory`` returned ``baseline``; the kinds
    are defined in ``PEAK_MEM_KINDS``."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    hwm = _status_bytes("VmHWM")
    if baseline is not None and hwm is not None:
        return max(0, hwm - baseline), "cpu_run_peak_rss"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_process_peak_rss"
