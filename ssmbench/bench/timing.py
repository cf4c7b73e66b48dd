"""Timing: CUDA events on GPU, ``perf_counter`` on CPU.

``benchmark`` times a callable repeatedly after warm-up and keeps every sample (the regression
gate tests on samples, not only medians); ``Timeline`` times regions of one run (a decode loop)
between marks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Timing:
    """Samples of one timed callable, in milliseconds."""

    samples_ms: tuple[float, ...]

    def quantile(self, q: float) -> float:
        xs = sorted(self.samples_ms)
        if len(xs) == 1:
            return xs[0]
        pos = q * (len(xs) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p20(self) -> float:
        return self.quantile(0.2)

    @property
    def p80(self) -> float:
        return self.quantile(0.8)

    @property
    def n(self) -> int:
        return len(self.samples_ms)


_L2_FLUSH: dict[torch.device, torch.Tensor] = {}


def _flush_l2(device: torch.device) -> None:
    # 256 MB is larger than any current GPU's L2 (H100: 50 MB, H200: 60 MB).
    buf = _L2_FLUSH.get(device)
    if buf is None:
        buf = torch.empty(64 * 1024 * 1024, dtype=torch.int32, device=device)
        _L2_FLUSH[device] = buf
    buf.zero_()


def benchmark(
    fn: Callable[[], object],
    *,
    device: torch.device | str,
    warmup_ms: float = 25.0,
    rep_ms: float = 100.0,
    min_reps: int = 5,
    max_reps: int = 1000,
    flush_l2: bool = True,
    cpu_clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time ``fn()`` after warm-up.

    CUDA: one event pair per call, L2 flushed before each call (as
    ``triton.testing.do_bench`` does), so inputs that fit in L2 are not timed from
    cache. CPU: ``cpu_clock`` (seconds; default ``time.perf_counter``) around each call;
    ``time.thread_time`` counts only the calling thread's CPU time, which other processes
    on the machine cannot inflate, and is right only when all the work runs on that thread.
    The number of repetitions is chosen from an estimate so the timed region lasts about
    ``rep_ms``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _benchmark_cuda(fn, device, warmup_ms, rep_ms, min_reps, max_reps, flush_l2)
    return _benchmark_cpu(fn, warmup_ms, rep_ms, min_reps, max_reps, cpu_clock)


def _benchmark_cpu(
    fn: Callable[[], object],
    warmup_ms: float,
    rep_ms: float,
    min_reps: int,
    max_reps: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    t0 = time.perf_counter()
    fn()
    first_ms = (time.perf_counter() - t0) * 1e3
    n_warm = max(1, min(100, int(warmup_ms / max(first_ms, 1e-3))))
    for _ in range(n_warm - 1):
        fn()
    est = first_ms
    n = max(min_reps, min(max_reps, int(rep_ms / max(est, 1e-3))))
    samples = []
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append((clock() - t0) * 1e3)
    return Timing(tuple(samples))


def _benchmark_cuda(
    fn: Callable[[], object],
    device: torch.device,
    warmup_ms: float,
    rep_ms: float,
    min_reps: int,
    max_reps: int,
    flush_l2: bool,
) -> Timing:
    with torch.cuda.device(device):
        fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(5):
            if flush_l2:
                _flush_l2(device)
            fn()
        end.record()
        torch.cuda.synchronize()
        est = max(start.elapsed_time(end) / 5, 1e-3)
        for _ in range(max(1, int(warmup_ms / est))):
            fn()
        n = max(min_reps, min(max_reps, int(rep_ms / est)))
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for i in range(n):
            if flush_l2:
                _flush_l2(device)
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
        return Timing(tuple(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)))


class Timeline:
    """Marks on the device timeline: a CUDA event each on GPU, ``perf_counter`` on CPU (where
    work is synchronous). Read ``ms(a, b)`` after ``finish()``."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._marks: list[Any] = []

    def mark(self) -> int:
        """Record a mark now; returns its index."""
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)
        else:
            self._marks.append(time.perf_counter())
        return len(self._marks) - 1

    def finish(self) -> None:
        """Wait for the device, so that every mark has been reached."""
        synchronize(self.device)

    def ms(self, a: int, b: int) -> float:
        """Milliseconds from mark ``a`` to mark ``b``."""
        if self.device.type == "cuda":
            return float(self._marks[a].elapsed_time(self._marks[b]))
        return (self._marks[b] - self._marks[a]) * 1e3


def synchronize(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
