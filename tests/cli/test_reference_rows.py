"""`ssmbench gen-speed` with mamba_ssm's model asked for: without mamba_ssm (or CUDA) it is a row
with status "unavailable: <reason>", never dropped, and the other models are measured."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssmbench.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def test_gen_speed_reference_row_unavailable_on_cpu(tmp_path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["gen-speed", "--preset", "gen-smoke", "--models", "mambabyte,mambabyte@mamba_ssm",
              "--batch-sizes", "1,2", "--gen-len", "12", "--prompt-len", "4", "--device", "cpu",
              "--out", str(out), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out / "metrics.csv")
    official = rows[rows["model"] == "mambabyte@mamba_ssm"]
    assert len(official) == 2 and official["status"].str.startswith("unavailable: ").all()
    assert official["params_total"].iloc[0] == rows[rows["model"] == "mambabyte"]["params_total"].iloc[0]
    assert (rows[rows["model"] == "mambabyte"]["status"] == "ok").all()
    summary = json.loads(res.stdout)["summary"]
    by = {m["model"]: m for m in summary["models"]}
    assert by["mambabyte@mamba_ssm"]["statuses"] == {"1": official["status"].iloc[0],
                                                     "2": official["status"].iloc[1]}  # fmt: skip
    assert "mambabyte (mamba_ssm)" in (out / "summary.md").read_text()


def test_gen_speed_unknown_reference_is_one_line_error(tmp_path) -> None:
    res = runner.invoke(app, ["gen-speed", "--preset", "gen-smoke", "--models", "megabyte@mamba_ssm",
                              "--device", "cpu", "--out", str(tmp_path / "run")])  # fmt: skip
    assert res.exit_code == 2
    assert "no mamba_ssm reference 'megabyte@mamba_ssm'" in res.output
