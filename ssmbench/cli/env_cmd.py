"""`ssmbench env`: device, versions, usable backends."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ssmbench.bench.environment import collect_environment
from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, print_json
from ssmbench.device import resolve_device
from ssmbench.ops import backend_status


@app.command("env")
@cli_errors
def env_command(
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the device, library versions and which scan backends can run here (and why not)."""
    dev = resolve_device(device)
    env = collect_environment(dev)
    backends = {op: backend_status(dev, op) for op in ("scan", "step", "conv", "conv_step")}
    if json_out:
        print_json({"environment": env, "backends": backends})
        return
    table = Table(title="ssmbench environment", show_header=False)
    for k, v in env.items():
        table.add_row(k, str(v))
    console.print(table)
    bt = Table(title=f"backends on {dev}")
    bt.add_column("op")
    bt.add_column("backend")
    bt.add_column("usable")
    bt.add_column("why not")
    for op, status in backends.items():
        for name, why in status.items():
            bt.add_row(op, name, "yes" if why is None else "no", escape(why or ""))
    console.print(bt)
