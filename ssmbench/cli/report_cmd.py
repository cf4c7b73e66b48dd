"""`ssmbench report RUN` and `ssmbench compare RUN_A RUN_B`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, print_json
from ssmbench.report.compare import compare_runs
from ssmbench.report.registry import renderer_for
from ssmbench.report.tables import fmt, markdown_table, rich_table
from ssmbench.results import RunFolder, atomic_write_text, load_run


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
    target = out if out is not None else run
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
    out: Annotated[Path | None, typer.Option(help="Write compare.csv and compare.md here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> None:
    """Put two runs of the same kind side by side; ratio columns are B / A."""
    a, b = load_run(run_a), load_run(run_b)
    df = compare_runs(a, b)
    if out is not None:
        folder = RunFolder.create("compare", out)
        atomic_write_text(folder.path / "compare.csv", df.to_csv(index=False))
        atomic_write_text(
            folder.path / "compare.md",
            f"# {a.kind}: {run_b} (B) against {run_a} (A)\n\n" + markdown_table(df),
        )
    if json_out:
        print_json(df.to_dict(orient="records"))
        return
    ratio_cols = [c for c in df.columns if c.endswith("_ratio")]
    keys = [c for c in df.columns if not c.endswith(("_a", "_b", "_ratio"))]
    console.print(rich_table(df, title=f"{a.kind}: B / A", columns=keys + ratio_cols))
    for c in ratio_cols:
        med = df[c].median()
        console.print(f"median {c}: {fmt(float(med)) if med == med else 'n/a'}")
