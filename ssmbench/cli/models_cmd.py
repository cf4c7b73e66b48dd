"""`ssmbench models`: every model of a model set (``--preset``) with parameter counts and FLOPs per token."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, print_json
from ssmbench.errors import BadInput
from ssmbench.models.describe import describe_named_set
from ssmbench.models.registry import all_model_sets

# the expert counts of the MoE-Mamba paper's ablation
EXPERTS_RANGE = (1, 32)

COLUMNS = (
    "name",
    "structure",
    "params_total",
    "params_active",
    "params_total_nonembed",
    "params_active_nonembed",
    "flops_per_token",
)


def _millions(x: object) -> str:
    return "-" if x is None else f"{int(x) / 1e6:,.2f}M"


def _presets_table() -> Table:
    table = Table(title="model sets (ssmbench models --preset NAME)")
    for col in ("set", "models", "description"):
        table.add_column(col)
    for name, ms in all_model_sets().items():
        table.add_row(name, ", ".join(ms.names()), ms.description)
    return table


def _models_table(title: str, caption: str, rows: list[dict]) -> Table:
    unit = "byte" if rows and all(r["token"] == "byte" for r in rows) else "token"
    table = Table(title=title, caption=caption)
    headers = (
        "model",
        "structure",
        "total",
        "active",
        "total non-emb",
        "active non-emb",
        f"fwd FLOPs/{unit}",
    )
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in rows:
        table.add_row(r["name"], r["structure"], *(_millions(r[c]) for c in COLUMNS[2:]))
    return table


@app.command("models")
@cli_errors
def models_command(
    preset: Annotated[
        Optional[str],
        typer.Option(
            help="Model set to list (smoke, small, paper-v1, bytes-smoke, ...); omit to list the sets."
        ),
    ] = None,
    experts: Annotated[
        Optional[int], typer.Option(help="Experts per MoE layer instead of the preset's (ablation: 1..32).")
    ] = None,
    seq_len: Annotated[
        Optional[int],
        typer.Option(help="Context for FLOPs per token (attention grows with it); default the preset's."),
    ] = None,
    match_flops: Annotated[
        Optional[str],
        typer.Option(help="Resize the other models to this model's forward FLOPs per byte (e.g. mambabyte)."),
    ] = None,
    vary: Annotated[
        str, typer.Option(help="What --match-flops resizes: layers, global-layers (MegaByte) or width.")
    ] = "layers",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Parameter counts (total / active, with and without embeddings) and forward FLOPs per token."""
    lo, hi = EXPERTS_RANGE
    if experts is not None and not lo <= experts <= hi:
        raise BadInput(f"--experts must be in {lo}..{hi}, got {experts}")
    if preset is None:
        sets = all_model_sets()
        if json_out:
            print_json({n: {"models": ms.names(), "description": ms.description} for n, ms in sets.items()})
        else:
            console.print(_presets_table())
        return
    report = describe_named_set(preset, experts=experts, seq_len=seq_len, match_flops=match_flops, vary=vary)
    if json_out:
        print_json(report)
        return
    title = f"{report['preset']}: parameters and forward FLOPs at context {report['seq_len']}"
    console.print(_models_table(title, report["description"], report["models"]))
    for name, m in report["matched"].items():
        console.print(
            f"{name}: {m['knob']} = {m['value']}, {m['flops_per_byte'] / 1e6:,.2f}M FLOPs/byte "
            f"({m['rel_diff']:+.1%} against {match_flops})",
            highlight=False,
        )
