"""`ssmbench kernel-profile` through Typer's CliRunner: results folder, re-render, bad
arguments, and the regression gate (real slowdown fails, unchanged code passes, bad baselines)."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

import ssmbench.profile.scan as scan_mod
from ssmbench.cli import app
from ssmbench.ops.scan.ref import selective_scan_ref

runner = CliRunner()

METRIC_COLUMNS = ["impl", "backend", "mode", "batch", "dim", "seqlen", "dstate", "dtype", "ms_median",
                  "ms_p20", "ms_p80", "n_samples", "flops", "bytes", "tflops", "gbps", "frac_copy_bw",
                  "frac_matmul", "rel_err", "rel_err_on", "status"]
# Five quick rows with enough samples for the U test.
GATE_ROWS = ["--shape", "1,16,24,4", "--impl", "ref,chunked,attention", "--mode", "fwd,step",
             "--head-dim", "8", "--rep-ms", "3", "--min-reps", "3", "--rounds", "8"]


def invoke(args: list[str]):
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def one_line_error(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("error:") and text in err and "\n" not in err, err
    assert "Traceback" not in result.output


def test_smoke_folder_and_report(tmp_path):
    out = tmp_path / "run"
    # triton is left out here: under the interpreter it takes seconds (tests/profile checks it)
    result = invoke(["kernel-profile", "--preset", "smoke", "--shape", "1,16,16,4", "--rep-ms", "1",
                     "--impl", "ref,chunked,attention", "--min-reps", "3", "--rounds", "1", "--out", str(out),
                     "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["out"] == str(out) and data["exit_code"] == 0 and data["gate"] is None
    for name in ("manifest.json", "metrics.csv", "summary.json", "summary.md", "samples.json",
                 "latency_vs_seqlen.png", "roofline.png"):
        assert (out / name).is_file(), name
    df = pd.read_csv(out / "metrics.csv")
    assert set(METRIC_COLUMNS) <= set(df.columns)
    ok = df[df["status"] == "ok"]
    assert set(ok["impl"]) == {"ref", "chunked", "attention"}
    assert set(ok["mode"]) == {"fwd", "fwd_bwd", "step"}
    assert (ok["rel_err"] < 1e-4).all() and (ok["ms_p20"] <= ok["ms_p80"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "kernel-profile" and manifest["ceilings"]["copy_gbps"] > 0
    timing = manifest["config"]["timing"]
    assert timing["threads"] == 1 and timing["cpu_clock"] == "thread"
    # `ssmbench report` re-renders from the files alone
    again = tmp_path / "again"
    rep = invoke(["report", str(out), "--out", str(again)])
    assert rep.exit_code == 0, rep.output
    assert (again / "roofline.png").stat().st_size > 1000 and "## Rows" in (again / "summary.md").read_text()


def test_ctrl_c_keeps_finished_rows(tmp_path, monkeypatch):
    import ssmbench.profile.sweep as sweep_mod

    real, calls = sweep_mod.measure_row, []

    def stop_at_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "measure_row", stop_at_third)
    out = tmp_path / "run"
    result = invoke(["kernel-profile", "--shape", "1,16,16,4", "--impl", "ref,attention", "--mode",
                     "fwd,step", "--rounds", "1", "--rep-ms", "1", "--out", str(out),
                     "--save-baseline", str(tmp_path / "b.json")])
    assert result.exit_code == 130
    assert list(pd.read_csv(out / "metrics.csv")["row_id"]) == ["ref/fwd/1x16x16x4/float32",
                                                                 "attention/fwd/1x16x16x4/float32/hd16"]
    assert "interrupted in round 1" in json.loads((out / "manifest.json").read_text())["interrupted"]
    assert "- rows: 2;" in (out / "summary.md").read_text()  # rendered on the way out
    partial = json.loads((tmp_path / "b.json").read_text())  # a baseline of the rows measured
    assert len(partial["rows"]) == 2 and partial["interrupted"].startswith("interrupted in round 1")


@pytest.mark.parametrize("args, text", [
    (["--impl", "nope"], "unknown impl"),
    (["--shape", "1,2,3"], "expected four integers"),
    (["--shape", "1,0,8,4"], "must be positive"),
    (["--shape", "65536,65536,65536,16"], "needs at least"),
    (["--dtype", "int8"], "unknown dtype"),
    (["--mode", "backward"], "unknown mode"),
    (["--preset", "huge"], "unknown preset"),
    (["--device", "tpu"], "unknown device"),
    (["--rep-ms", "0"], "--rep-ms"),
    (["--threads", "2"], "--cpu-clock thread needs --threads 1"),
    (["--cpu-clock", "sundial"], "choose from wall, thread"),
    (["--max-regression", "10%"], "need --compare"),
    (["--compare", "x.json", "--preset", "smoke"], "drop --preset"),
    (["--compare", "x.json", "--max-regression", "lots"], "expected a percentage"),
])
def test_bad_arguments_exit_2(args, text):
    one_line_error(invoke(["kernel-profile", *args]), text)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    d = tmp_path_factory.mktemp("gate")
    path = d / "baseline.json"
    result = invoke(["kernel-profile", *GATE_ROWS, "--out", str(d / "base"), "--save-baseline", str(path)])
    assert result.exit_code == 0, result.output
    return path


def gate(baseline_path, tmp_path, *extra: str):
    out = str(tmp_path / "gate")
    return invoke(["kernel-profile", "--compare", str(baseline_path), "--out", out, *extra])


def test_baseline_file_has_samples(baseline):
    doc = json.loads(baseline.read_text())
    assert doc["schema_version"] == 1 and doc["device"]["kind"].startswith("cpu")
    assert doc["ceilings"]["copy_gbps"] > 0 and doc["environment"]["torch"]
    status = {r["row_id"]: r["status"] for r in doc["rows"]}
    assert status.pop("chunked/step/1x16x24x4/float32") == "skipped: chunked has no step kernel"
    assert len(status) == 5 and set(status.values()) == {"ok"}
    assert all(len(r["samples_ms"]) >= 24 for r in doc["rows"] if r["status"] == "ok")


@pytest.mark.timing
def test_unchanged_code_passes_repeatedly(tmp_path):
    """False positives: five reruns against a baseline taken moments before, default threshold.

    This five-row sweep lasts well under a second, so its 8 rounds fall in one or two of the
    0.1-0.3 s windows in which this kind of shared VM runs ~2x slow or fast; eight re-measurements
    (each spreading its rounds over 2 s) instead of the default two let a flagged row meet a
    normal window. (With four, two CI runs of 2026-11-30 each had one rerun whose two rows stayed
    flagged, at 1.46x and 2.11x (the 2.11x while other tests ran beside it), right after the main
    test phase; the same test alone passed three times in three.) The full smoke preset's rate
    with the defaults is measured by benchmarks/gate_false_positive.py (docs/regression-gate.md)."""
    baseline = tmp_path / "now.json"
    result = invoke(["kernel-profile", *GATE_ROWS, "--out", str(tmp_path / "base"), "--save-baseline",
                     str(baseline)])
    assert result.exit_code == 0, result.output
    failing = []
    for i in range(5):
        result = gate(baseline, tmp_path / str(i), "--json", "--retries", "8")
        assert result.exit_code in (0, 1), result.output
        data = json.loads(result.stdout)
        failing += [(i, g["row_id"], g["ratio"]) for g in data["gate"] if g["verdict"] in ("REGRESSED",
                                                                                            "FAILED")]
    assert failing == []


@pytest.mark.timing
def test_baseline_twice_as_fast_fails(tmp_path, monkeypatch):
    """A kernel with a steady cost (4 ms of this thread's CPU time spent before the real one;
    the smoke timing counts thread CPU time) against a baseline that says it took half that."""
    real = scan_mod.scan_impl

    def spin(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    def steady(name):
        fn = real(name)
        return (lambda *a: (spin(0.004), fn(*a))[1]) if name == "chunked" else fn

    monkeypatch.setattr(scan_mod, "scan_impl", steady)
    rows = ["--shape", "1,16,24,4", "--impl", "chunked", "--mode", "fwd", "--rep-ms", "1", "--min-reps", "3",
            "--rounds", "4"]
    saved = tmp_path / "real.json"
    assert invoke(["kernel-profile", *rows, "--out", str(tmp_path / "b"), "--save-baseline", str(saved)]
                  ).exit_code == 0
    doc = json.loads(saved.read_text())
    for r in doc["rows"]:
        r["samples_ms"] = [s / 2 for s in r["samples_ms"]]
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(doc))
    result = gate(fast, tmp_path)
    assert result.exit_code == 1, result.output
    table = pd.read_csv(tmp_path / "gate" / "gate.csv")
    assert list(table["verdict"]) == ["REGRESSED"] and table["ratio"][0] > 1.6
    assert table["attempts"][0] == 3  # confirmed by both re-measurements
    assert "gate FAILED" in result.output


def test_incorrect_kernel_fails_the_gate(baseline, tmp_path, monkeypatch):
    real = scan_mod.scan_impl

    def wrong(name):
        return (lambda *a: selective_scan_ref(*a) * 2) if name == "chunked" else real(name)

    monkeypatch.setattr(scan_mod, "scan_impl", wrong)
    result = gate(baseline, tmp_path, "--json")
    assert result.exit_code == 1
    verdicts = {g["row_id"]: g["verdict"] for g in json.loads(result.stdout)["gate"]}
    assert verdicts["chunked/fwd/1x16x24x4/float32"] == "incorrect"


@pytest.mark.parametrize("mutate, text", [
    (lambda t: t[: len(t) // 3], "not valid JSON"),
    (lambda t: t.replace('"schema_version": 1', '"schema_version": 2'), "schema version 2"),
    (lambda t: "{}", "not an ssmbench kernel baseline"),
])
def test_bad_baseline_exit_2(baseline, tmp_path, mutate, text):
    bad = tmp_path / "bad.json"
    bad.write_text(mutate(baseline.read_text()))
    one_line_error(gate(bad, tmp_path), text)


def test_missing_baseline_exit_2(tmp_path):
    one_line_error(gate(tmp_path / "nope.json", tmp_path), "no baseline file")


def test_device_kind_mismatch(baseline, tmp_path):
    doc = json.loads(baseline.read_text())
    doc["device"]["kind"] = "NVIDIA H100 80GB HBM3"
    doc["rows"][0]["impl"] = "mamba_ssm"  # cannot run here: reported, not compared
    doc["rows"][0]["row_id"] = doc["rows"][0]["row_id"].replace("ref/", "mamba_ssm/")
    other = tmp_path / "h100.json"
    other.write_text(json.dumps(doc))
    one_line_error(gate(other, tmp_path), "--allow-device-mismatch")
    # the mamba_ssm row ran in the baseline and cannot run here: missing, which fails the gate
    result = gate(other, tmp_path, "--allow-device-mismatch", "--max-regression", "300%")
    assert result.exit_code == 1, result.output
    assert "could not compare 1 row(s) (these fail the gate)" in result.output
    table = pd.read_csv(tmp_path / "gate" / "gate.csv").set_index("row_id")
    missing = table.loc["mamba_ssm/fwd/1x16x24x4/float32"]
    assert missing["verdict"] == "missing" and "mamba_ssm is not installed" in missing["note"]
    result = gate(other, tmp_path, "--allow-device-mismatch", "--max-regression", "300%", "--allow-missing")
    assert result.exit_code == 0, result.output
    assert "allowed by --allow-missing" in result.output and "mamba_ssm/fwd" in result.output
