"""Which renderer re-draws which kind of results folder.

A renderer module exposes KEY_COLUMNS (identity columns of metrics.csv), VALUE_COLUMNS
(numeric columns worth comparing), ``render(run: LoadedRun, out: Path) -> list[Path]``
(summary.md and plots, from the folder's files alone) and ``console_table(run: LoadedRun)
-> rich Table``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ssmbench.errors import ResultsError

RENDERERS = {
    "kernel-profile": "ssmbench.report.kernel_profile",
    "train-compare": "ssmbench.report.train_compare",
    "gen-speed": "ssmbench.report.gen_speed",
}


def renderer_for(kind: str) -> ModuleType:
    try:
        return importlib.import_module(RENDERERS[kind])
    except KeyError:
        raise ResultsError(
            f"results folder of kind {kind!r}: no renderer (known: {', '.join(RENDERERS)})"
        ) from None
