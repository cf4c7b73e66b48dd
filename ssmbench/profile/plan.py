"""Resolve what a kernel-profile run measures: a preset plus overrides, or a baseline's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from ssmbench.errors import BadInput
from ssmbench.ops import available_backends
from ssmbench.profile.baseline import Baseline
from ssmbench.profile.presets import ATTENTION, CPU_CLOCKS, PRESETS, Shape
from ssmbench.profile.spec import (
    ProfileConfig,
    TimingConfig,
    check_fits,
    default_preset_name,
    expand_rows,
    get_preset,
)


def default_impls(device: torch.device) -> list[str]:
    """Every scan/step backend usable on ``device``, then attention."""
    usable = dict.fromkeys(available_backends(device, "scan") + available_backends(device, "step"))
    return [*usable, ATTENTION]


def plan(
    device: torch.device,
    *,
    preset: str | None = None,
    shapes: Sequence[Shape] = (),
    impls: Sequence[str] = (),
    modes: Sequence[str] = (),
    dtypes: Sequence[str] = (),
    head_dim: int | None = None,
    warmup_ms: float | None = None,
    rep_ms: float | None = None,
    min_reps: int | None = None,
    threads: int | None = None,
    rounds: int | None = None,
    cpu_clock: str | None = None,
    seed: int = 0,
) -> ProfileConfig:
    """Resolve a preset plus command-line overrides into the rows to measure.

    Without a preset: 'smoke' on CPU, 'standard' on CUDA. Explicit ``shapes``, ``impls``,
    ``modes``, ``dtypes`` replace the preset's. Named impls are all kept (one that cannot run
    here gets a 'skipped: ...' row); the default is every impl usable on the device.
    """
    p = get_preset(preset or default_preset_name(device))
    usable = default_impls(device)
    chosen = list(impls) or [i for i in (p.impls or usable) if i in usable]
    rows = expand_rows(
        chosen, list(modes) or p.modes, list(shapes) or p.shapes, list(dtypes) or p.dtypes,
        head_dim if head_dim is not None else p.head_dim, explicit_impls=bool(impls),
    )
    check_fits(rows, device)
    timing = TimingConfig(
        warmup_ms=p.warmup_ms if warmup_ms is None else warmup_ms,
        rep_ms=p.rep_ms if rep_ms is None else rep_ms,
        min_reps=p.min_reps if min_reps is None else min_reps,
        max_reps=p.max_reps,
        threads=p.cpu_threads if threads is None else threads,
        rounds=p.rounds if rounds is None else rounds,
        cpu_clock=p.cpu_clock if cpu_clock is None else cpu_clock,
    )
    check_timing(timing)
    return ProfileConfig(preset=p.name, device=str(device), rows=rows, timing=timing, seed=seed,
                         quick_ceilings=p.quick_ceilings)


def plan_from_baseline(
    baseline: Baseline,
    device: torch.device,
    *,
    warmup_ms: float | None = None,
    rep_ms: float | None = None,
    min_reps: int | None = None,
) -> ProfileConfig:
    """The same rows, timing settings and seed as ``baseline`` (timing may be overridden)."""
    t = baseline.timing
    timing = replace(
        t,
        warmup_ms=t.warmup_ms if warmup_ms is None else warmup_ms,
        rep_ms=t.rep_ms if rep_ms is None else rep_ms,
        min_reps=t.min_reps if min_reps is None else min_reps,
    )
    check_timing(timing)
    quick = baseline.preset in PRESETS and PRESETS[baseline.preset].quick_ceilings
    rows = tuple(r.spec for r in baseline.rows)
    return ProfileConfig(preset=baseline.preset, device=str(device), rows=rows, timing=timing,
                         seed=baseline.seed, quick_ceilings=quick)


def check_timing(t: TimingConfig) -> None:
    if not (t.warmup_ms >= 0 and t.rep_ms > 0 and t.min_reps >= 1):
        raise BadInput("--warmup-ms must be >= 0, --rep-ms > 0 and --min-reps >= 1")
    if t.threads is not None and t.threads < 1:
        raise BadInput(f"--threads must be >= 1, got {t.threads}")
    if t.rounds < 1:
        raise BadInput(f"--rounds must be >= 1, got {t.rounds}")
    if t.cpu_clock not in CPU_CLOCKS:
        raise BadInput(f"--cpu-clock {t.cpu_clock!r}: choose from {', '.join(CPU_CLOCKS)}")
    if t.cpu_clock == "thread" and t.threads != 1:
        raise BadInput("--cpu-clock thread needs --threads 1 (work on other threads would not be counted)")
