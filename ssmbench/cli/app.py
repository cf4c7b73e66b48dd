"""The Typer application object; command modules register on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ssmbench",
    help=(
        "Benchmarks for selective state-space models against Transformers, MoE and "
        "byte-level models: training comparisons, generation speed, scan kernels."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
