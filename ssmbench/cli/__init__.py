"""Command-line interface. Each command module registers itself on ``app``."""

from __future__ import annotations

import importlib

from ssmbench.cli.app import app

COMMAND_MODULES = (
    "env_cmd",
    "report_cmd",
    "models_cmd",
    "kernel_cmd",
    "train_cmd",
    "gen_cmd",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"ssmbench.cli.{_name}")


def main() -> None:
    app()


__all__ = ["app", "main"]
