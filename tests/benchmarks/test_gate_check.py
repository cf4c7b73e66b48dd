"""benchmarks/gpu/gate_wrong_kernel.py, the gate check's fast-but-wrong kernel: with one backend's
output scaled by 1.04 (no source edited) the gate against a correct baseline exits 1 and marks
that backend's rows 'incorrect'; the other rows and the oracle are untouched."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import ssmbench.profile.scan as scan_mod
from benchmarks.gpu import gate_wrong_kernel
from ssmbench.cli import app

ROWS = ["--shape", "1,16,24,4", "--impl", "ref,chunked", "--mode", "fwd,fwd_bwd", "--dtype", "bf16",
        "--rep-ms", "1", "--min-reps", "3", "--rounds", "2", "--device", "cpu"]


@pytest.mark.usefixtures("one_thread")
def test_four_percent_wrong_kernel_fails_the_gate(tmp_path, monkeypatch):
    baseline = tmp_path / "baseline.json"
    first = CliRunner().invoke(app, ["kernel-profile", *ROWS, "--out", str(tmp_path / "base"),
                                     "--save-baseline", str(baseline)])
    assert first.exit_code == 0, first.output
    # the driver rebinds these module attributes; monkeypatch puts them back after the test
    monkeypatch.setattr(scan_mod, "scan_impl", scan_mod.scan_impl)
    monkeypatch.setattr(scan_mod, "step_impl", scan_mod.step_impl)
    out = tmp_path / "wrong"
    with pytest.raises(SystemExit) as exit_info:
        gate_wrong_kernel.main(["--impl", "chunked", "--factor", "1.04", "--", "--compare", str(baseline),
                                "--device", "cpu", "--out", str(out), "--json"])
    assert exit_info.value.code == 1
    gate = pd.read_csv(out / "gate.csv")
    verdicts = dict(zip(gate["row_id"], gate["verdict"], strict=True))
    assert verdicts["chunked/fwd/1x16x24x4/bfloat16"] == "incorrect"
    assert verdicts["chunked/fwd_bwd/1x16x24x4/bfloat16"] == "incorrect"
    assert verdicts["ref/fwd/1x16x24x4/bfloat16"] != "incorrect"
