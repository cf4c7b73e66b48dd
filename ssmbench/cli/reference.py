"""The command reference in docs/cli.md, generated from each command's ``--help`` so it cannot drift.

Regenerate with ``python -m ssmbench.cli.reference > docs/cli.md`` (``make docs``).
"""

from __future__ import annotations

from typer.testing import CliRunner

from ssmbench.cli import app

WIDTH = 110


def command_names() -> list[str]:
    return [c.name for c in app.registered_commands if c.name]


def cli_reference_markdown() -> str:
    """Markdown: one section per command holding its ``--help`` text."""
    runner = CliRunner()
    env = {"COLUMNS": str(WIDTH), "TERM": "dumb", "NO_COLOR": "1", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    out = [
        "# Command reference",
        "",
        "Generated from the CLI by `make docs`; `tests/cli/test_cli_reference.py` fails when it is stale.",
        "Every command also runs as `python -m ssmbench COMMAND`.",
        "",
    ]
    for name in command_names():
        result = runner.invoke(app, [name, "--help"], env=env, prog_name="ssmbench")
        text = "\n".join(line.rstrip() for line in result.output.strip().splitlines())
        out += [f"## `ssmbench {name}`", "", "```text", text, "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(cli_reference_markdown(), end="")
