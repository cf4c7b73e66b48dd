"""`ssmbench kernel-profile`: plan a sweep, measure it, write the results folder, gate it.

One run: environment and device ceilings (measured in the same run), every row checked
and timed, metrics.csv + samples.json + summary.json + manifest.json (summary.md and the plots
are rendered from these by the caller). With a baseline it reruns the baseline's rows,
re-measures rows that look regressed (``retries`` times: a regression must persist), and
writes gate.csv; with ``save_baseline`` it also writes a baseline file. Ctrl-C during the
sweep: every row measured so far is written, then the interrupt goes on (``SweepInterrupted``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from ssmbench.bench.ceilings import Ceilings, measure_ceilings
from ssmbench.bench.environment import collect_environment, device_kind
from ssmbench.device import cpu_threads
from ssmbench.errors import ResultsError
from ssmbench.profile.baseline import Baseline, save_baseline
from ssmbench.profile.regression import GateRow, GateRule, compare, exit_code, gate_records, normalize_scale
from ssmbench.profile.spec import ProfileConfig, RowSpec
from ssmbench.profile.summary import build_summary
from ssmbench.profile.sweep import RowResult, SweepInterrupted, metrics_row, run_sweep
from ssmbench.progress import NullProgress, Progress
from ssmbench.results import (
    GATE_CSV,
    SAMPLES_JSON,
    RunFolder,
    atomic_write_json,
    atomic_write_text,
)

KIND = "kernel-profile"


@dataclass(frozen=True)
class GateOptions:
    """Compare against ``baseline``; rows flagged REGRESSED are re-measured ``retries`` times, with
    a pause of ``retry_pause_s`` before each round, so the rounds of a re-measurement fall in
    different moments of the machine's load (a regression persists, a burst of load passes)."""

    baseline: Baseline
    rule: GateRule
    retries: int = 2
    allow_device_mismatch: bool = False
    retry_pause_s: float = 0.25
    allow_missing: bool = False


@dataclass
class KernelProfileRun:
    """What a run wrote and decided. ``exit_code`` is the gate's (0 without a gate)."""

    path: Path
    metrics: pd.DataFrame
    summary: dict[str, object]
    gate: list[GateRow] | None
    baseline_saved: Path | None
    allow_missing: bool = False

    @property
    def exit_code(self) -> int:
        return exit_code(self.gate, self.allow_missing) if self.gate is not None else 0

    def nothing_measured(self) -> str | None:
        """Why no row was timed (every row skipped, failed or out of memory), or None."""
        if "n_samples" in self.metrics and (self.metrics["n_samples"] > 0).any():
            return None
        counts = self.metrics["status"].astype(str).value_counts()
        return f"no row of {len(self.metrics)} was measured: " + "; ".join(
            f"{n} {status}" for status, n in counts.items()
        )



def _rerun_regressed(
    results: list[RowResult], config: ProfileConfig, device: torch.device, gate: GateOptions, scale: float,
    progress: Progress,
) -> list[GateRow]:
    """Compare; re-measure REGRESSED rows up to ``gate.retries`` times (all rounds, a pause before
    each), keeping the newest samples: a row stays REGRESSED only if every attempt regresses."""
    attempts = {r.spec.row_id: 1 for r in results}
    rows = compare(gate.baseline, results, gate.rule, scale, attempts)
    for attempt in range(gate.retries):
        regressed = {g.row_id for g in rows if g.verdict == "REGRESSED"}
        flagged = [r.spec for r in results if r.spec.row_id in regressed]
        if not flagged:
            break
        progress.note(f"re-measuring {len(flagged)} regressed row(s), attempt {attempt + 2}")
        fresh = {r.spec.row_id: r for r in run_sweep(flagged, device, config.timing, config.seed,
                                                     pause_s=gate.retry_pause_s)}
        results[:] = [fresh.get(r.spec.row_id, r) for r in results]
        for rid in fresh:
            attempts[rid] += 1
        rows = compare(gate.baseline, results, gate.rule, scale, attempts)
    return rows


def _gate_frame(rows: list[GateRow], specs: dict[str, RowSpec]) -> pd.DataFrame:
    df = pd.DataFrame(gate_records(rows))
    keys = pd.DataFrame([specs[r.row_id].key() if r.row_id in specs else {} for r in rows])
    return pd.concat([df[["row_id"]], keys, df.drop(columns=["row_id"])], axis=1)


def run_kernel_profile(
    config: ProfileConfig,
    out: Path | None = None,
    *,
    gate: GateOptions | None = None,
    save_baseline_to: Path | None = None,
    progress: Progress | None = None,
    command_line: list[str] | None = None,
) -> KernelProfileRun:
    """Measure ``config``'s rows and write the results folder (see the module docstring)."""
    device = torch.device(config.device)
    with cpu_threads(device, config.timing.threads), (progress or NullProgress()) as shown:
        return _run(config, device, out, gate, save_baseline_to, shown, command_line)


def _show_rows(progress: Progress, n_rows: int, rounds: int) -> Callable[[RowResult, int], None]:
    """The sweep's per-row callback: one bar over rows x rounds; a line for each row that is not ok."""
    progress.start(KIND, n_rows * rounds)
    done, noted = [0], set()

    def on_row(r: RowResult, rnd: int) -> None:
        done[0] += 1
        info: dict[str, float | str] = {"round": f"{rnd + 1}/{rounds}", "row": r.spec.row_id}
        if r.samples_ms:
            info["ms"] = sorted(r.samples_ms)[len(r.samples_ms) // 2]
        progress.update(KIND, done[0], info)
        if not r.ok and r.spec.row_id not in noted:
            noted.add(r.spec.row_id)
            progress.note(f"{r.spec.row_id}: {r.status}")

    return on_row


def _run(
    config: ProfileConfig,
    device: torch.device,
    out: Path | None,
    gate: GateOptions | None,
    save_baseline_to: Path | None,
    progress: Progress,
    command_line: list[str] | None,
) -> KernelProfileRun:
    env = collect_environment(device)
    kind = device_kind(env)
    if gate is not None and gate.baseline.device_kind != kind and not gate.allow_device_mismatch:
        raise ResultsError(
            f"baseline {gate.baseline.path} was measured on {gate.baseline.device_kind!r}, this device "
            f"is {kind!r}; timings only compare on the same kind (--allow-device-mismatch to compare anyway)"
        )
    ceilings: Ceilings = measure_ceilings(device, quick=config.quick_ceilings)
    folder = RunFolder.create(KIND, out)
    gate_cfg = None
    if gate is not None:
        gate_cfg = {
            "baseline": str(gate.baseline.path),
            "baseline_device_kind": gate.baseline.device_kind,
            "rule": asdict(gate.rule) | {"test": "Mann-Whitney U, one-sided"},
            "retries": gate.retries,
            "retry_pause_s": gate.retry_pause_s,
            "allow_missing": gate.allow_missing,
        }
    folder.write_manifest(
        config=config.to_dict(), seed=config.seed, environment=env, ceilings=ceilings.to_dict(),
        command_line=command_line, extra={"device_kind": kind, "gate": gate_cfg},
    )
    interrupted: SweepInterrupted | None = None
    try:
        on_row = _show_rows(progress, len(config.rows), config.timing.rounds)
        results = run_sweep(config.rows, device, config.timing, config.seed, on_row)
    except SweepInterrupted as e:
        # Ctrl-C: write every row measured so far (no gate on a partial sweep), then stop.
        interrupted, results, gate = e, e.results, None
        folder.update_manifest(interrupted=str(e))
    gate_rows = None
    if gate is not None:
        scale = normalize_scale(gate.rule, gate.baseline.ceilings, ceilings.to_dict())
        gate_rows = _rerun_regressed(results, config, device, gate, scale, progress)
        specs = {r.spec.row_id: r.spec for r in results}
        atomic_write_text(folder.path / GATE_CSV, _gate_frame(gate_rows, specs).to_csv(index=False))
    metrics = pd.DataFrame([metrics_row(r, ceilings) for r in results])
    folder.write_metrics(metrics)
    atomic_write_json(folder.path / SAMPLES_JSON, {
        r.spec.row_id: {"samples_ms": list(r.samples_ms), "round_sizes": list(r.round_sizes)} for r in results
    })
    summary = build_summary(metrics, {
        "preset": config.preset, "device": env.get("device_name"), "device_kind": kind,
        "ceilings": {"copy_gbps": ceilings.copy_gbps, "matmul_tflops": ceilings.matmul_tflops},
    })
    if gate_rows is not None and gate is not None:
        summary["gate"] = _gate_summary(gate_rows, gate)
    folder.write_summary(summary)
    saved = None
    if save_baseline_to is not None:
        # A sweep cut short still gives a baseline: of the rows it measured, and it says so.
        saved = save_baseline(
            save_baseline_to, results, environment=env, device_kind=kind, ceilings=ceilings.to_dict(),
            timing=config.timing, seed=config.seed, preset=config.preset,
            interrupted=str(interrupted) if interrupted is not None else None,
        )
    if interrupted is not None:
        raise interrupted
    return KernelProfileRun(folder.path, metrics, summary, gate_rows, saved,
                            gate.allow_missing if gate is not None else False)


def _gate_summary(rows: list[GateRow], gate: GateOptions) -> dict[str, object]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return {
        "baseline": str(gate.baseline.path),
        "max_regression": gate.rule.max_regression,
        "p_threshold": gate.rule.p_threshold,
        "normalize": gate.rule.normalize,
        "verdicts": counts,
        "allow_missing": gate.allow_missing,
        "exit_code": exit_code(rows, gate.allow_missing),
        "failing": [r.row_id for r in rows if r.fails(gate.allow_missing)],
        "could_not_compare": [{"row_id": r.row_id, "reason": r.note} for r in rows if r.verdict == "missing"],
        "worst_ratio": max((r.ratio for r in rows if not math.isnan(r.ratio)), default=None),
    }
