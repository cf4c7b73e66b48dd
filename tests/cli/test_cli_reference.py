from pathlib import Path

from ssmbench.cli.reference import cli_reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current():
    """docs/cli.md must list every command and option as the CLI defines them (run `make docs`)."""
    assert DOC.read_text() == cli_reference_markdown(), "docs/cli.md is stale: run `make docs`"


def test_every_command_documented():
    text = cli_reference_markdown()
    for cmd in ("env", "report", "compare", "models", "kernel-profile", "train-compare", "gen-speed"):
        assert f"## `ssmbench {cmd}`" in text
