"""The gate's correctness rule: every row against a float64 oracle on the same inputs, with a
tolerance per dtype that an output 1% off exceeds in every dtype the gate runs; such rows are
'incorrect', fail the gate and are never a speed-up."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import ssmbench.profile.attention as attention_mod
import ssmbench.profile.scan as scan_mod
from ssmbench.cli import app
from ssmbench.profile.presets import TOLERANCES
from ssmbench.profile.spec import RowSpec, TimingConfig
from ssmbench.profile.sweep import measure_row

CPU = torch.device("cpu")
FAST = TimingConfig(warmup_ms=0, rep_ms=1, min_reps=2, max_reps=4)
DTYPES = ("float32", "float16", "bfloat16")
# (impl, mode): the scan's forward and forward+backward, the decode step, attention
ROWS = [("chunked", "fwd"), ("chunked", "fwd_bwd"), ("ref", "step"), ("attention", "fwd"),
        ("attention", "fwd_bwd"), ("attention", "step")]
runner = CliRunner()


def scale_every_kernel(monkeypatch, factor: float) -> None:
    """Every timed scan, step and attention call returns its output times ``factor`` (the
    float64 oracle the check compares with is untouched)."""
    real_scan, real_step, real_attn = scan_mod.scan_impl, scan_mod.step_impl, attention_mod._call

    def scan_impl(name):
        fn = real_scan(name)
        return lambda *a: fn(*a) * factor

    def step_impl(name):
        fn = real_step(name)
        return lambda *a, **k: fn(*a, **k) * factor

    monkeypatch.setattr(scan_mod, "scan_impl", scan_impl)
    monkeypatch.setattr(scan_mod, "step_impl", step_impl)
    monkeypatch.setattr(attention_mod, "_call", lambda spec, q, k, v: real_attn(spec, q, k, v) * factor)


def test_tolerances_sit_between_rounding_and_a_one_percent_error():
    # a bf16 / fp16 result carries a unit roundoff of 2^-8 / 2^-11; 1% must be far outside
    assert 2.0**-8 < TOLERANCES["bfloat16"] < 0.01 / 1.5
    assert 2.0**-11 < TOLERANCES["float16"] < 0.01 / 1.5
    assert TOLERANCES["float32"] < 0.01 / 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl,mode", ROWS)
def test_correct_kernels_pass_in_every_dtype(impl, mode, dtype):
    r = measure_row(RowSpec(impl, mode, 2, 16, 37, 4, dtype, 8), CPU, FAST)
    assert r.status == "ok", (r.status, r.rel_err)
    assert r.rel_err <= TOLERANCES[dtype] and r.rel_err_on == "same shape"


@pytest.mark.parametrize("factor", [1.01, 1.04])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl,mode", ROWS)
def test_output_one_or_four_percent_off_is_incorrect(impl, mode, dtype, factor, monkeypatch):
    scale_every_kernel(monkeypatch, factor)
    r = measure_row(RowSpec(impl, mode, 2, 16, 37, 4, dtype, 8), CPU, FAST)
    assert r.status == "incorrect", (r.status, r.rel_err)
    assert r.rel_err > TOLERANCES[dtype]


def test_gate_fails_a_four_percent_wrong_kernel_in_every_dtype(tmp_path, monkeypatch):
    """End to end: a baseline of correct rows in three dtypes, then the same rows with every
    kernel 4% off: each row 'incorrect', exit 1, and no speed-up from them anywhere."""
    rows = ["--shape", "1,16,24,4", "--impl", "ref,chunked", "--mode", "fwd,step", "--dtype",
            "float32,float16,bfloat16", "--rep-ms", "1", "--min-reps", "3", "--rounds", "2"]
    baseline = tmp_path / "baseline.json"
    first = runner.invoke(app, ["kernel-profile", *rows, "--out", str(tmp_path / "base"),
                                "--save-baseline", str(baseline)])
    assert first.exit_code == 0, first.output
    scale_every_kernel(monkeypatch, 1.04)
    out = tmp_path / "gate"
    result = runner.invoke(app, ["kernel-profile", "--compare", str(baseline), "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    measured = [g for g in doc["gate"] if "chunked/step" not in g["row_id"]]
    assert len(measured) == 9 and {g["verdict"] for g in measured} == {"incorrect"}
    assert {json.loads(baseline.read_text())["rows"][i]["dtype"] for i in range(len(measured))} >= set(DTYPES)
    assert all(g["ratio"] != g["ratio"] for g in measured)  # no ratio: never a speed-up
    summary = json.loads((out / "summary.json").read_text())
    assert summary["speedup_vs_ref"] == [] and sorted(summary["incorrect"]) == sorted(
        g["row_id"] for g in measured)
    gate = pd.read_csv(out / "gate.csv")
    assert (gate.loc[gate["verdict"] == "incorrect", "note"].str.contains("over tolerance")).all()
