"""`ssmbench report RUN` and `ssmbench compare RUN_A RUN_B`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, err_console, print_json
from ssmbench.report.compare import (
    compare_final,
    compare_markdown,
    compare_rows,
    final_table,
    run_differences,
)
from ssmbench.report.registry import final_results_for, renderer_for
from ssmbench.report.tables import rich_table
from ssmbench.results import RunFolder, atomic_write_text, load_run, writable_folder


@app.command("report")
@cli_errors
def report_command(
    run: Annotated[Path, typer.Argument(help="A results folder written by ssmbench.")],
    out: Annotated[
        Path | None, typer.Option(help="Write the re-rendered summary and plots here (default: RUN).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json instead.")] = False,
) -> None:
    """Re-render a run's tables and plots from its files alone (no re-measurement)."""
    loaded = load_run(run)
    mod = renderer_for(loaded.kind)
    target = writable_folder(out, "--out") if out is not None else writable_folder(run, "results folder")
    paths = mod.render(loaded, target)
    if json_out:
        print_json({"run": str(run), "kind": loaded.kind, "summary": loaded.summary,
                    "written": [str(p) for p in paths]})
        return
    console.print(mod.console_table(loaded))
    for p in paths:
        console.print(f"wrote {p}")


@app.command("compare")
@cli_errors
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="Baseline results folder (A).")],
    run_b: Annotated[Path, typer.Argument(help="Results folder to compare (B).")],
    per_step: Annotated[bool, typer.Option(
        help="Also join every row of metrics.csv (every logged step of a training run) with B / A.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Write compare.csv and compare.md here (and per_step.csv with --per-step).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the tables and warnings as JSON.")] = False,
) -> None:
    """Put two runs of the same kind side by side: the final results of each model (or row) with
    B / A ratios and parameter counts, after a warning for every difference in seed, config or
    device between the runs."""
    a, b = load_run(run_a), load_run(run_b)
    final = compare_final(a, b)
    warnings = run_differences(a, b)
    rows = compare_rows(a, b) if per_step else None
    if out is not None:
        with RunFolder.create("compare", out) as folder:
            atomic_write_text(folder.path / "compare.csv", final.to_csv(index=False))
            md = compare_markdown(a.kind, run_a, run_b, final, warnings)
            atomic_write_text(folder.path / "compare.md", md)
            if rows is not None:
                atomic_write_text(folder.path / "per_step.csv", rows.to_csv(index=False))
    if json_out:
        print_json({"kind": a.kind, "a": str(run_a), "b": str(run_b), "warnings": warnings,
                    "final": _records(final), "per_step": _records(rows) if rows is not None else None})
        return
    for w in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    keys = [shown for _, shown in final_results_for(a.kind).keys]
    console.print(final_table(final, f"{a.kind}: final results, A = {run_a}, B = {run_b}", keys))
    if rows is not None:
        ratio_cols = [c for c in rows.columns if c.endswith("_ratio")]
        keys = [c for c in rows.columns if not c.endswith(("_a", "_b", "_ratio"))]
        console.print(rich_table(rows, title=f"{a.kind}: every row, B / A", columns=keys + ratio_cols))


def _records(df: pd.DataFrame) -> list[dict[str, object]]:
    return df.astype(object).where(pd.notna(df), None).to_dict(orient="records")
