"""Measure rows: check each implementation against the float64 oracle, then time it.

A row that cannot run (backend missing here, too slow for its size rule, out of memory, an
exception) is recorded with its status and the sweep goes on; rows are never dropped.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ssmbench.bench.ceilings import Ceilings
from ssmbench.bench.timing import Timing, benchmark
from ssmbench.device import device_memory_bytes, is_oom
from ssmbench.ops import backend_status
from ssmbench.ops.scan.cost import scan_bytes, scan_flops
from ssmbench.profile.attention import attention_bytes, attention_flops, attention_problem, attention_rel_err
from ssmbench.profile.attention import unsupported_reason as attention_unsupported
from ssmbench.profile.presets import MODE_IMPLS, SIZE_LIMITS, TOLERANCES
from ssmbench.profile.scan import check_spec as scan_check_spec
from ssmbench.profile.scan import count_shape, scan_problem, scan_rel_err
from ssmbench.profile.spec import RowSpec, TimingConfig, resident_bytes


@dataclass
class RowResult:
    """One measured (or skipped) row. ``samples_ms`` is empty unless the row was timed."""

    spec: RowSpec
    status: str
    backend: str = ""
    samples_ms: tuple[float, ...] = ()
    round_sizes: tuple[int, ...] = ()
    rel_err: float = math.nan
    rel_err_on: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep. ``results`` holds every row measured so far (in a later round,
    every row, with the samples of the rounds finished)."""

    def __init__(self, results: list[RowResult], where: str) -> None:
        super().__init__(f"interrupted {where}: {len(results)} row(s) measured")
        self.results = results


def row_seed(spec: RowSpec, seed: int) -> int:
    """A per-row seed, stable across runs and processes (a baseline rerun gets the same inputs)."""
    return (zlib.crc32(spec.row_id.encode()) + 7919 * seed) % (1 << 31)


def skip_reason(spec: RowSpec, device: torch.device) -> str | None:
    """Why ``spec`` is not timed here, or None."""
    if spec.impl not in MODE_IMPLS[spec.mode]:
        return f"skipped: {spec.impl} has no {spec.mode} kernel"
    need, total = resident_bytes(spec), device_memory_bytes(device)
    if need > total:
        return f"skipped: needs at least {need / 1e9:.1f} GB, {device} has {total / 1e9:.1f} GB"
    if spec.is_attention:
        why = attention_unsupported(spec)
        return f"skipped: {why}" if why else None
    op = "step" if spec.mode == "step" else "scan"
    why = backend_status(device, op).get(spec.impl)
    if why is not None:
        return f"skipped: unavailable ({why})"
    limit = SIZE_LIMITS.get((spec.impl, device.type))
    if spec.mode != "step" and limit is not None and not limit.allows(spec.shape):
        return f"skipped: too slow ({spec.impl} on {device.type} is timed only where {limit.describe()})"
    return None


def _shape_text(spec: RowSpec) -> str:
    return f"{spec.batch}x{spec.dim}x{spec.seqlen}x{spec.dstate}"


def check_row(spec: RowSpec, device: torch.device, seed: int, backend: str) -> tuple[float, str]:
    """(rel_err, what it was measured on): 'same shape', a smaller shape, or not checked. Every
    impl, ref included (in the row's dtype), is checked against the float64 oracle."""
    if spec.is_attention:
        err, cspec = attention_rel_err(spec, device, seed, backend)
        return err, "same shape" if cspec == spec else _shape_text(cspec)
    cspec = scan_check_spec(spec, device)
    if cspec is None:
        return math.nan, "not checked: too large for ref"
    err = scan_rel_err(cspec, device, seed, backend)
    return err, "same shape" if cspec == spec else _shape_text(cspec)


def _error_status(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:200]
    return f"error: {type(e).__name__}: {first}" if first else f"error: {type(e).__name__}"


def measure_row(
    spec: RowSpec, device: torch.device, timing: TimingConfig, seed: int = 0, check: bool = True
) -> RowResult:
    """Check ``spec``'s implementation against the oracle (unless ``check`` is False), then time
    it once (one round; the status says how it went)."""
    why = skip_reason(spec, device)
    if why is not None:
        return RowResult(spec, status=why)
    rseed = row_seed(spec, seed)
    result = RowResult(spec, status="ok")
    try:
        problem = (attention_problem if spec.is_attention else scan_problem)(spec, device, rseed)
        result.backend = problem.label or problem.backend
        with problem.context():
            if check:
                result.rel_err, result.rel_err_on = check_row(spec, device, rseed + 2, problem.backend)
            t = benchmark(
                problem.run, device=device, warmup_ms=timing.warmup_ms, rep_ms=timing.rep_ms,
                min_reps=timing.min_reps, max_reps=timing.max_reps,
                cpu_clock=time.thread_time if timing.cpu_clock == "thread" else time.perf_counter,
            )
        result.samples_ms, result.round_sizes = t.samples_ms, (t.n,)
    except Exception as e:  # a failing impl is a row, not the end of the sweep
        result.status = "oom" if is_oom(e) else _error_status(e)
        result.samples_ms, result.round_sizes = (), ()
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    checked = check and not result.rel_err_on.startswith("not checked")
    if result.ok and checked and not result.rel_err <= TOLERANCES[spec.dtype]:
        result.status = "incorrect"
    return result


def add_round(result: RowResult, device: torch.device, timing: TimingConfig, seed: int = 0) -> None:
    """Time a timed row once more (same inputs, no check) and append the samples; a failure
    in this round replaces the row's status and drops its samples."""
    if not result.samples_ms:
        return
    more = measure_row(result.spec, device, timing, seed, check=False)
    if more.samples_ms:
        result.samples_ms = result.samples_ms + more.samples_ms
        result.round_sizes = result.round_sizes + more.round_sizes
    else:
        result.status, result.samples_ms, result.round_sizes = more.status, (), ()


def row_counts(spec: RowSpec) -> tuple[int, int]:
    """(FLOPs, minimum bytes) of one call of ``spec``."""
    if spec.is_attention:
        return attention_flops(spec), attention_bytes(spec)
    shape = count_shape(spec)
    return scan_flops(shape, spec.mode), scan_bytes(shape, spec.mode)


def metrics_row(r: RowResult, ceilings: Ceilings) -> dict[str, object]:
    """The metrics.csv row of one result (long format, one row per measurement)."""
    spec = r.spec
    flops, nbytes = row_counts(spec)
    row: dict[str, object] = {"row_id": spec.row_id, **spec.key()}
    row["n_heads"] = spec.dim // spec.head_dim if spec.is_attention else math.nan
    row["backend"] = r.backend
    timed = len(r.samples_ms) > 0
    t = Timing(r.samples_ms) if timed else None
    med = t.median if t else math.nan
    row.update(
        ms_median=med,
        ms_p20=t.p20 if t else math.nan,
        ms_p80=t.p80 if t else math.nan,
        n_samples=t.n if t else 0,
        flops=flops,
        bytes=nbytes,
        intensity=flops / nbytes,
    )
    tflops = flops / (med * 1e-3) / 1e12 if timed else math.nan
    gbps = nbytes / (med * 1e-3) / 1e9 if timed else math.nan
    row.update(
        tflops=tflops,
        gbps=gbps,
        frac_copy_bw=gbps / ceilings.copy_gbps,
        frac_matmul=tflops / ceilings.matmul_tflops,
        rel_err=r.rel_err,
        rel_err_on=r.rel_err_on,
        tolerance=TOLERANCES[spec.dtype],
        status=r.status,
    )
    return row


def run_sweep(
    rows: Sequence[RowSpec],
    device: torch.device,
    timing: TimingConfig,
    seed: int = 0,
    on_row: Callable[[RowResult, int], None] | None = None,
    pause_s: float = 0.0,
) -> list[RowResult]:
    """Measure every row, in ``timing.rounds`` passes over the whole sweep, so that each row's
    samples span the run and not one moment of a machine's load; ``pause_s`` seconds of sleep
    before each pass. ``on_row(result, round)`` is called after each row of each pass."""
    results: list[RowResult] = []
    rnd = 0
    try:
        for rnd in range(timing.rounds):
            if pause_s > 0:
                time.sleep(pause_s)
            for i, spec in enumerate(rows):
                if rnd == 0:
                    results.append(measure_row(spec, device, timing, seed))
                else:
                    add_round(results[i], device, timing, seed)
                if on_row is not None:
                    on_row(results[i], rnd)
    except KeyboardInterrupt:
        raise SweepInterrupted(results, f"in round {rnd + 1} of {timing.rounds}") from None
    return results
