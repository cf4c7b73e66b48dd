"""Two runs of the same kind side by side.

``compare_final``: the final results (``registry.FINAL_RESULTS``) of both runs, one row per
(identity, metric), with B / A; ``run_differences``: what differs between the two runs' setups
(seed, config, device), which makes a ratio mean less; ``compare_rows``: the join of every
metrics.csv row (for training runs, every logged step), with B / A per value column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from ssmbench.errors import ResultsError
from ssmbench.report.registry import FinalResults, final_results_for, renderer_for
from ssmbench.report.tables import fmt, markdown_table
from ssmbench.results import LoadedRun

# differing config fields listed in a warning before the rest are counted
MAX_LISTED = 8


def _same_kind(a: LoadedRun, b: LoadedRun) -> None:
    if a.kind != b.kind:
        raise ResultsError(f"cannot compare a {a.kind!r} run with a {b.kind!r} run")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _records(run: LoadedRun, spec: FinalResults) -> list[dict[str, Any]]:
    if spec.source == "summary":
        summary = run.summary
        if isinstance(summary, dict):
            summary = summary.get("models")
        return [r for r in summary or [] if isinstance(r, dict)]
    df = run.metrics
    if spec.where is not None:
        col, value = spec.where
        df = df[df[col] == value] if col in df else df.iloc[0:0]
    return df.to_dict(orient="records")


def final_results(run: LoadedRun) -> pd.DataFrame:
    """One row per identity of ``run``: its key columns, then every declared column (the first
    field present), and '<name> ci95' for columns with an interval."""
    spec = final_results_for(run.kind)
    rows = []
    for rec in _records(run, spec):
        row: dict[str, Any] = {shown: rec.get(src) for src, shown in spec.keys}
        for col in spec.columns:
            row[col.name] = next((rec[f] for f in col.fields if _present(rec.get(f))), None)
            if col.ci is not None:
                row[f"{col.name} ci95"] = rec.get(col.ci)
        rows.append(row)
    columns = [s for _, s in spec.keys]
    for col in spec.columns:
        columns += [col.name] if col.ci is None else [col.name, f"{col.name} ci95"]
    return pd.DataFrame(rows, columns=columns)


def compare_final(a: LoadedRun, b: LoadedRun) -> pd.DataFrame:
    """The final results side by side, long format: the key columns, the columns compared without a
    ratio (parameter counts, statuses: one value when both runs agree, else 'A -> B'), then
    metric, A, B, B/A (and the intervals 'A ci95', 'B ci95' where the run has them). Rows only in
    one run keep an empty other side."""
    _same_kind(a, b)
    spec = final_results_for(a.kind)
    keys = [s for _, s in spec.keys]
    fa, fb = final_results(a), final_results(b)
    merged = fa.merge(fb, on=keys, how="outer", suffixes=(" A", " B"), sort=False)
    info = [c.name for c in spec.columns if not c.ratio]
    out = []
    for _, r in merged.iterrows():
        base = {k: r[k] for k in keys}
        for name in info:
            va, vb = r.get(f"{name} A"), r.get(f"{name} B")
            same = (not _present(va) and not _present(vb)) or va == vb
            base[name] = va if same else f"{_text(va)} -> {_text(vb)}"
        for col in (c for c in spec.columns if c.ratio):
            va, vb = r.get(f"{col.name} A"), r.get(f"{col.name} B")
            row = {**base, "metric": col.name, "A": _number(va), "B": _number(vb)}
            both = _present(row["A"]) and _present(row["B"]) and row["A"] != 0
            row["B/A"] = row["B"] / row["A"] if both else None
            if col.ci is not None:
                row["A ci95"], row["B ci95"] = (_interval(r.get(f"{col.name} ci95 {side}")) for side in "AB")
            out.append(row)
    return pd.DataFrame(out)


def _interval(value: Any) -> list[float] | None:
    """[low, high] when ``value`` is one, else None."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_present(v) for v in value):
        return [float(v) for v in value]
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and _present(value) else None


def _text(value: Any) -> str:
    return "-" if not _present(value) else str(value)


def _cell(row: pd.Series, side: str) -> str:
    """A value with its 95% interval when the run has one: '3.157 [3.101, 3.213]'."""
    text = fmt(row[side])
    ci = row.get(f"{side} ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        text += f" [{fmt(ci[0])}, {fmt(ci[1])}]"
    return text


def _compact(value: Any) -> str:
    """Cell text; counts of a million and more in millions ('3.15M')."""
    if isinstance(value, (int, float)) and _present(value) and abs(value) >= 1e6:
        return f"{value / 1e6:.2f}M"
    return fmt(value)


def final_table(final: pd.DataFrame, title: str, keys: list[str]) -> Table:
    """One line per (row, metric); per row, the ``keys`` and a 'setup' cell holding the columns
    compared without a ratio (parameter counts, status: 'A -> B' where the runs differ)."""
    table = Table(title=title, show_lines=False)
    info = [c for c in final.columns if c not in (*keys, "metric", "A", "B", "B/A", "A ci95", "B ci95")]
    for c in keys:
        table.add_column(c, overflow="fold")
    if info:
        table.add_column("setup", min_width=12)
    for c in ("metric", "A", "B", "B/A"):
        # numbers stay whole on one line
        table.add_column(c, justify="left" if c == "metric" else "right", no_wrap=c != "metric")
    previous = None
    for i, (_, r) in enumerate(final.iterrows()):
        ident = tuple(str(r[c]) for c in keys)
        last = i + 1 == len(final) or tuple(str(final.iloc[i + 1][c]) for c in keys) != ident
        first = ident != previous
        cells = [escape(fmt(r[c])) if first else "" for c in keys]
        if info:
            cells.append("\n".join(escape(f"{c}: {_compact(r[c])}") for c in info) if first else "")
        table.add_row(*cells, str(r["metric"]), _cell(r, "A"), _cell(r, "B"), fmt(r["B/A"]), end_section=last)
        previous = ident
    return table


def compare_markdown(kind: str, run_a: Path, run_b: Path, final: pd.DataFrame, warnings: list[str]) -> str:
    """compare.md: the warnings, then the final results with B / A."""
    lines = [f"# {kind}: {run_b} (B) against {run_a} (A)", ""]
    lines += [f"- warning: {w}" for w in warnings] + ([""] if warnings else [])
    shown = final.copy()
    for side in ("A", "B"):
        shown[side] = [_cell(r, side) for _, r in final.iterrows()]
    columns = [c for c in shown.columns if not c.endswith("ci95")]
    return "\n".join(lines) + markdown_table(shown, columns)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def run_differences(a: LoadedRun, b: LoadedRun) -> list[str]:
    """One line per difference between the runs' setups that makes B / A less than a clean
    comparison: seed, config fields, device."""
    ma, mb = a.manifest, b.manifest
    notes = []
    if ma.get("seed") != mb.get("seed"):
        notes.append(f"different seeds: A {ma.get('seed')}, B {mb.get('seed')}")
    ca, cb = _flatten(ma.get("config") or {}), _flatten(mb.get("config") or {})
    differing = sorted(k for k in ca.keys() | cb.keys() if ca.get(k, "(absent)") != cb.get(k, "(absent)"))
    if differing:
        listed = "; ".join(f"{k}: {ca.get(k, '(absent)')} -> {cb.get(k, '(absent)')}"
                           for k in differing[:MAX_LISTED])
        more = f" (and {len(differing) - MAX_LISTED} more)" if len(differing) > MAX_LISTED else ""
        notes.append(f"different configs: {listed}{more}")
    da = (ma.get("environment") or {}).get("device_name")
    db = (mb.get("environment") or {}).get("device_name")
    if da != db:
        notes.append(f"different devices: A {da}, B {db} (absolute times only compare on the same device)")
    return notes


def compare_rows(a: LoadedRun, b: LoadedRun) -> pd.DataFrame:
    """Rows of metrics.csv present in either run, with ``<col>_a``, ``<col>_b`` and ``<col>_ratio``
    (b / a), joined on the renderer's key columns."""
    _same_kind(a, b)
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
