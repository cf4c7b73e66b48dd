"""Two runs of the same kind side by side: join on identity columns, ratio of each value."""

from __future__ import annotations

import pandas as pd

from ssmbench.errors import ResultsError
from ssmbench.report.registry import renderer_for
from ssmbench.results import LoadedRun


def compare_runs(a: LoadedRun, b: LoadedRun) -> pd.DataFrame:
    """Rows present in both runs, with ``<col>_a``, ``<col>_b`` and ``<col>_ratio`` (b / a)."""
    if a.kind != b.kind:
        raise ResultsError(f"cannot compare a {a.kind!r} run with a {b.kind!r} run")
    mod = renderer_for(a.kind)
    keys = [k for k in mod.KEY_COLUMNS if k in a.metrics.columns and k in b.metrics.columns]
    values = [v for v in mod.VALUE_COLUMNS if v in a.metrics.columns and v in b.metrics.columns]
    if not keys or not values:
        raise ResultsError("the two runs share no comparable columns")
    da = a.metrics[keys + values].drop_duplicates(subset=keys, keep="last")
    db = b.metrics[keys + values].drop_duplicates(subset=keys, keep="last")
    merged = da.merge(db, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    merged["present"] = merged.pop("_merge").map(
        {"both": "both", "left_only": "only A", "right_only": "only B"}
    )
    for v in values:
        ratio = merged[f"{v}_b"] / merged[f"{v}_a"]
        merged[f"{v}_ratio"] = ratio.where(merged[f"{v}_a"] != 0)
    ordered = keys + [c for v in values for c in (f"{v}_a", f"{v}_b", f"{v}_ratio")] + ["present"]
    return merged[ordered]
