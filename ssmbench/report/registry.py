"""Which renderer re-draws which kind of results folder, and what each kind's final results are.

A renderer module exposes KEY_COLUMNS (identity columns of metrics.csv), VALUE_COLUMNS
(numeric columns worth comparing row by row), ``render(run: LoadedRun, out: Path) -> list[Path]``
(summary.md and plots, from the folder's files alone) and ``console_table(run: LoadedRun)
-> rich Table``. ``FINAL_RESULTS`` declares, per kind, the table ``ssmbench compare`` leads with.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ssmbench.errors import ResultsError

RENDERERS = {
    "kernel-profile": "ssmbench.report.kernel_profile",
    "train-compare": "ssmbench.report.train_compare",
    "gen-speed": "ssmbench.report.gen_speed",
}


@dataclass(frozen=True)
class FinalColumn:
    """One column of a final-results table. fields: where to read it, first present wins (newer
    names first, older ones after); ci: the field holding its 95% interval [low, high], if any.
    ratio: compared as B / A (False: shown for both runs, e.g. parameter counts and statuses)."""

    name: str
    fields: tuple[str, ...]
    ratio: bool = True
    ci: str | None = None


@dataclass(frozen=True)
class FinalResults:
    """A kind's final results. source 'summary': summary.json is a list of objects, one per row;
    'metrics': the rows of metrics.csv where ``where`` (column, value) holds, if given.
    keys: (column in the source, shown name) pairs that identify a row in both runs."""

    source: str
    keys: tuple[tuple[str, str], ...]
    columns: tuple[FinalColumn, ...]
    where: tuple[str, str] | None = None


FINAL_RESULTS: dict[str, FinalResults] = {
    "train-compare": FinalResults(
        source="summary",
        keys=(("name", "model"),),
        columns=(
            FinalColumn("params non-emb", ("params_total_nonembed",), ratio=False),
            FinalColumn("active non-emb", ("params_active_nonembed",), ratio=False),
            FinalColumn("seeds", ("seeds",), ratio=False),
            FinalColumn("status", ("status",), ratio=False),
            FinalColumn("final eval loss", ("final_eval_loss_mean", "final_eval_loss"),
                        ci="final_eval_loss_ci95"),
            FinalColumn("final eval BPB", ("final_eval_bpb_mean", "final_eval_bpb"),
                        ci="final_eval_bpb_ci95"),
            FinalColumn("steps to target",
                        ("steps_to_target_mean", "steps_to_target_eval_mean", "steps_to_target"),
                        ci="steps_to_target_eval_ci95"),
            FinalColumn("tokens/s", ("tokens_per_s",)),
        ),
    ),
    "gen-speed": FinalResults(
        source="metrics",
        where=("measurement", "generate"),
        keys=(("model", "model"), ("batch_size", "batch")),
        columns=(
            FinalColumn("params", ("params_total",), ratio=False),
            FinalColumn("status", ("status",), ratio=False),
            FinalColumn("bytes/s", ("bytes_per_s",)),
            FinalColumn("ms/step", ("step_ms",)),
            FinalColumn("time to generate (s)", ("gen_time_s",)),
            FinalColumn("of streaming limit", ("stream_limit_frac",)),
        ),
    ),
    "kernel-profile": FinalResults(
        source="metrics",
        keys=(("row_id", "row"),),
        columns=(
            FinalColumn("backend", ("backend",), ratio=False),
            FinalColumn("status", ("status",), ratio=False),
            FinalColumn("ms (median)", ("ms_median",)),
            FinalColumn("TFLOP/s", ("tflops",)),
            FinalColumn("GB/s", ("gbps",)),
        ),
    ),
}


def renderer_for(kind: str) -> ModuleType:
    try:
        return importlib.import_module(RENDERERS[kind])
    except KeyError:
        raise ResultsError(
            f"results folder of kind {kind!r}: no renderer (known: {', '.join(RENDERERS)})"
        ) from None


def final_results_for(kind: str) -> FinalResults:
    if kind not in FINAL_RESULTS:
        raise ResultsError(f"results folder of kind {kind!r}: no final results to compare")
    return FINAL_RESULTS[kind]
