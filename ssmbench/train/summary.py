"""summary.json of a comparison: per model, its runs (one per seed), their statistics over seeds,
and steps-to-target against the reference.

Targets. Two figures are reported for every model: ``eval`` (the evaluation curve, eval_loss,
or eval_bpb for the byte suite) and ``ema`` (the bias-corrected EMA of the training loss, as
MoE-Mamba v2 reports). The target of each is the final value of the reference's curve averaged
over its finished seeds (the evaluation curve smoothed first: ``metrics.SMOOTHING``; the EMA
is its own smoothing), unless ``--target-loss`` sets the headline one. A run reaches it by
``metrics.STEPS_RULE``. Means and 95% intervals are over the seeds that finished (for steps,
that reached the target); the percentage is of the reference's steps on its seed-mean curve.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ssmbench.data import data_passes
from ssmbench.train.loop import FINISHED, ModelRun
from ssmbench.train.metrics import (
    PEAK_MEM_KINDS,
    SMOOTHING,
    STEPS_RULE,
    mean_curve,
    smoothed,
    steps_to_target,
)
from ssmbench.train.presets import PaperFigures
from ssmbench.train.stats import mean_ci95

KINDS = ("eval", "ema")
FINAL_METRICS = ("eval_loss", "eval_bpb", "train_loss_ema")
Curve = tuple[list[float], list[float]]


@dataclass(frozen=True)
class SummarySetup:
    """What the summary needs besides the runs. described: model -> parameter counts and FLOPs
    per token; tokens_per_byte: of the evaluation set; tokens_per_pass: training tokens one pass
    over the data holds (None: unbounded); paper: the paper's figures when the run's setup
    matches the paper's, else None."""

    names: tuple[str, ...]
    seeds: tuple[int, ...]
    reference: str
    steps_planned: int
    steps_metric: str
    ema_alpha: float
    target_loss: float | None
    described: Mapping[str, Mapping[str, Any]]
    tokens_per_byte: float
    tokens_per_pass: int | None
    paper: PaperFigures | None

    @property
    def headline(self) -> str:
        return "ema" if self.steps_metric == "train_loss_ema" else "eval"

    def metric(self, kind: str) -> str:
        if kind == "ema":
            return "train_loss_ema"
        return "eval_bpb" if self.steps_metric == "eval_bpb" else "eval_loss"


def curve(run: ModelRun, metric: str, smooth: bool = False) -> Curve:
    """(steps, values) of ``metric`` in the run's rows, smoothed (``metrics.smoothed``) when asked."""
    picked = [r for r in run.rows if r["metric"] == metric]
    steps, values = [float(r["step"]) for r in picked], [float(r["value"]) for r in picked]
    return steps, smoothed(values) if smooth else values


def _target(kind: str, runs: Mapping[tuple[str, int], ModelRun], setup: SummarySetup) -> dict[str, Any]:
    metric, smooth = setup.metric(kind), kind == "eval"
    ref = [runs[(setup.reference, s)] for s in setup.seeds
           if (setup.reference, s) in runs and runs[(setup.reference, s)].status == "done"]
    steps, values = mean_curve([curve(r, metric) for r in ref])
    values = smoothed(values) if smooth else values
    explicit = setup.target_loss if kind == setup.headline else None
    if explicit is not None:
        value, source = explicit, f"--target-loss on {metric}"
    elif values:
        value = values[-1]
        source = (f"final {metric} of {setup.reference}, mean of its {len(ref)} finished seed(s)"
                  + (", smoothed" if smooth else ""))
    else:
        value, source = None, f"reference {setup.reference!r} has no finished seed yet"
    smoothing = SMOOTHING if smooth else (f"none beyond the EMA itself (alpha {setup.ema_alpha}, "
                                          "bias-corrected)")
    ref_steps = steps_to_target(steps, values, value) if values and value is not None else None
    return {"kind": kind, "metric": metric, "value": value, "source": source, "smoothing": smoothing,
            "rule": STEPS_RULE, "reference": setup.reference, "reference_seeds": len(ref),
            "reference_steps": ref_steps}


def _last(run: ModelRun) -> dict[str, float]:
    last: dict[str, float] = {}
    for r in run.rows:
        last[r["metric"]] = r["value"]
    return last


def _steady(run: ModelRun, metric: str) -> float | None:
    """Median over logged intervals, leaving out the first (warm-up) when there are others."""
    vals = [r["value"] for r in run.rows if r["metric"] == metric and math.isfinite(r["value"])]
    if len(vals) > 1:
        vals = vals[1:]
    return statistics.median(vals) if vals else None


def run_entry(run: ModelRun, seed: int, targets: Mapping[str, dict[str, Any]],
              setup: SummarySetup) -> dict[str, Any]:
    """One seed's run: progress, final values, steps to each target, data passes, speed, memory."""
    last = _last(run)
    entry: dict[str, Any] = {
        "seed": seed, "status": run.status, "error": run.error, "steps_done": run.step,
        "tokens": run.tokens, "train_time_s": run.train_time_s,
        "data_passes": data_passes(run.tokens, setup.tokens_per_pass),
        "tokens_per_s": _steady(run, "tokens_per_s"),
        "tokens_per_s_per_device": _steady(run, "tokens_per_s_per_device"),
        "step_time_ms": _steady(run, "step_time_ms"),
        "peak_mem_bytes": run.peak_mem_bytes, "peak_mem_kind": run.peak_mem_kind, "kernels": run.kernels,
        "device": run.device, "wall_time_s": run.wall_time_s,
        **{f"final_{m}": last.get(m) for m in FINAL_METRICS},
        "final_train_loss": last.get("train_loss"),
        "moe_max_load": last.get("moe_max_load"), "moe_dropped_fraction": last.get("moe_dropped_fraction"),
    }  # fmt: skip
    for kind in KINDS:
        target = targets[kind]["value"]
        reached = None
        if run.status == "done" and target is not None:
            reached = steps_to_target(*curve(run, setup.metric(kind), smooth=kind == "eval"), target)
        entry[f"steps_to_target_{kind}"] = reached
    return entry


def _stats(prefix: str, per_seed: list[float | None]) -> dict[str, Any]:
    mean, ci = mean_ci95([v for v in per_seed if v is not None and math.isfinite(v)])
    return {f"{prefix}_mean": mean, f"{prefix}_ci95": ci, f"{prefix}_per_seed": per_seed}


def _status(statuses: list[str]) -> str:
    """One status for a model's runs: theirs when they agree; else running or interrupted when
    one is; else "partial" (some finished, others pending or finished otherwise)."""
    if len(set(statuses)) == 1:
        return statuses[0]
    for s in ("running", "interrupted"):
        if s in statuses:
            return s
    return "partial"


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return statistics.fmean(vals) if vals else None


def model_entry(name: str, entries: list[dict[str, Any]], targets: Mapping[str, dict[str, Any]],
                setup: SummarySetup) -> dict[str, Any]:
    """A model's summary object from its runs' entries (one per planned seed, in seed order)."""
    done = [e for e in entries if e["status"] == "done"]
    desc = setup.described[name]
    flops = desc.get("flops_per_token")
    errors = [f"seed {e['seed']}: {e['error']}" for e in entries if e["error"]]
    out: dict[str, Any] = {
        "name": name, "status": _status([e["status"] for e in entries]),
        "error": "; ".join(errors) or None,
        "seeds": len(done), "seed_list": [e["seed"] for e in entries],
        "seeds_finished": sum(e["status"] in FINISHED for e in entries),
        "steps_planned": setup.steps_planned,
        **{k: desc[k] for k in ("params_total", "params_active", "params_total_nonembed",
                                "params_active_nonembed")},
        "flops_per_token": flops,
        "flops_per_byte": flops * setup.tokens_per_byte if flops is not None else None,
    }  # fmt: skip
    for m in FINAL_METRICS:
        key = f"final_{m}"
        out.update(_stats(key, [e[key] if e["status"] == "done" else None for e in entries]))
    out["reference"] = setup.reference
    out["headline"] = setup.headline
    for kind in KINDS:
        key = f"steps_to_target_{kind}"
        per_seed = [e[key] for e in entries]
        out.update(_stats(key, per_seed))
        out[f"{key}_reached"] = sum(v is not None for v in per_seed)
        mean, ci, ref = out[f"{key}_mean"], out[f"{key}_ci95"], targets[kind]["reference_steps"]
        scale = 100.0 / ref if ref else None
        out[f"{key}_pct"] = mean * scale if mean is not None and scale else None
        out[f"{key}_pct_ci95"] = [c * scale for c in ci] if ci is not None and scale else None
        out[f"speedup_{kind}"] = ref / mean if ref and mean else None
        out[f"target_{kind}"] = targets[kind]
    passes = [e["data_passes"] for e in entries if e["tokens"]]
    kind = next((e["peak_mem_kind"] for e in entries if e["peak_mem_kind"]), None)
    out.update({
        "data_passes": max(passes) if passes else None,
        "data_passes_per_seed": [e["data_passes"] for e in entries],
        "tokens_per_pass": setup.tokens_per_pass,
        "tokens_per_s": _mean([e["tokens_per_s"] for e in entries]),
        "tokens_per_s_per_device": _mean([e["tokens_per_s_per_device"] for e in entries]),
        "step_time_ms": _mean([e["step_time_ms"] for e in entries]),
        "peak_mem_bytes": max((e["peak_mem_bytes"] for e in entries if e["peak_mem_bytes"] is not None),
                              default=None),
        "peak_mem_kind": kind,
        "peak_mem_definition": PEAK_MEM_KINDS.get(kind) if kind else None,
        "kernels": next((e["kernels"] for e in entries if e["kernels"]), {}),
        "moe_max_load": _mean([e["moe_max_load"] for e in done]),
        "moe_dropped_fraction": _mean([e["moe_dropped_fraction"] for e in done]),
        "paper_final_loss": setup.paper.final_loss.get(name) if setup.paper else None,
        "paper_steps_pct": setup.paper.steps_pct.get(name) if setup.paper else None,
        "runs": entries,
    })  # fmt: skip
    return out


def build_summary(runs: Mapping[tuple[str, int], ModelRun], setup: SummarySetup,
                  wall_time_s: float | None = None) -> list[dict[str, Any]]:
    """summary.json: one object per model of the plan, in plan order (finished, running or pending);
    each carries the comparison's wall time so far, ``wall_time_s``, as ``comparison_wall_time_s``."""
    targets = {kind: _target(kind, runs, setup) for kind in KINDS}
    out = []
    for name in setup.names:
        entries = [run_entry(runs.get((name, s)) or ModelRun(name), s, targets, setup) for s in setup.seeds]
        out.append({**model_entry(name, entries, targets, setup), "comparison_wall_time_s": wall_time_s})
    return out
