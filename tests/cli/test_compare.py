"""`ssmbench compare A B`: the final results side by side first (B / A, parameter counts), a
warning per difference in seed, config or device, the per-step join only with --per-step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.report.compare import compare_final, run_differences
from ssmbench.results import RunFolder, load_run

runner = CliRunner()


def _train_run(path: Path, *, seed: int, lr: float, device: str, models: list[dict], steps: int = 3) -> Path:
    """A train-compare folder: per-step metrics for every model and a summary.json."""
    with RunFolder.create("train-compare", path) as folder:
        folder.write_manifest(config={"train": {"lr": lr, "steps": steps}, "preset": "smoke"}, seed=seed,
                              environment={"device_name": device})
        rows = [{"model": m["name"], "step": s, "metric": "eval_loss", "value": 5.0 - s, "wall_s": s,
                 "tokens": 10 * s, "kernels": "-"} for m in models for s in range(steps)]
        folder.write_metrics(rows)
        folder.write_summary(models)
    return path


OLD = [  # summary.json before per-seed statistics
    {"name": "transformer", "params_total_nonembed": 3150336, "params_active_nonembed": 3150336,
     "final_eval_loss": 3.2, "final_eval_bpb": 0.96, "steps_to_target": 400.0, "tokens_per_s": 7.0e5,
     "status": "done"},
    {"name": "mamba", "params_total_nonembed": 3200000, "params_active_nonembed": 3200000,
     "final_eval_loss": 3.3, "final_eval_bpb": 1.0, "steps_to_target": 300.0, "tokens_per_s": 5.0e5,
     "status": "done"},
]
NEW = [  # per-model statistics over seeds
    {"name": "transformer", "params_total_nonembed": 3150336, "params_active_nonembed": 3150336,
     "seeds": 3, "final_eval_loss_mean": 3.0, "final_eval_loss_ci95": [2.9, 3.1],
     "final_eval_bpb_mean": 0.9, "steps_to_target_eval_mean": 200.0, "tokens_per_s": 7.7e5,
     "status": "done"},
    {"name": "mamba", "params_total_nonembed": 3200000, "params_active_nonembed": 3200000,
     "seeds": 3, "final_eval_loss_mean": 3.3, "final_eval_loss_ci95": [3.2, 3.4],
     "final_eval_bpb_mean": 1.0, "steps_to_target_eval_mean": 300.0, "tokens_per_s": 5.0e5,
     "status": "done"},
]


@pytest.fixture
def two_train_runs(tmp_path) -> tuple[Path, Path]:
    a = _train_run(tmp_path / "a", seed=0, lr=1e-3, device="NVIDIA H100", models=OLD)
    b = _train_run(tmp_path / "b", seed=1, lr=2e-3, device="NVIDIA H200", models=NEW)
    return a, b


def test_final_results_with_old_and_new_field_names(two_train_runs):
    a, b = (load_run(p) for p in two_train_runs)
    final = compare_final(a, b).set_index(["model", "metric"])
    loss = final.loc[("transformer", "final eval loss")]
    assert loss["A"] == 3.2 and loss["B"] == 3.0 and loss["B/A"] == pytest.approx(3.0 / 3.2)
    assert list(loss["B ci95"]) == [2.9, 3.1] and not isinstance(loss["A ci95"], list)
    steps = final.loc[("transformer", "steps to target")]
    assert steps["A"] == 400.0 and steps["B"] == 200.0 and steps["B/A"] == pytest.approx(0.5)
    assert final.loc[("mamba", "tokens/s"), "B/A"] == pytest.approx(1.0)
    assert final.loc[("mamba", "final eval loss"), "params non-emb"] == 3200000  # the same in both runs
    assert final.loc[("mamba", "final eval loss"), "seeds"] == "- -> 3"  # A did not record seeds


def test_differences_are_warned(two_train_runs):
    a, b = (load_run(p) for p in two_train_runs)
    notes = run_differences(a, b)
    assert any(n.startswith("different seeds: A 0, B 1") for n in notes)
    assert any("different configs" in n and "train.lr: 0.001 -> 0.002" in n for n in notes)
    assert any("different devices: A NVIDIA H100, B NVIDIA H200" in n for n in notes)
    assert run_differences(a, a) == []


def test_cli_leads_with_final_results_and_keeps_per_step_behind_a_flag(two_train_runs, tmp_path):
    a, b = two_train_runs
    result = runner.invoke(app, ["compare", str(a), str(b)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning:") == 3
    assert "final results" in result.stdout and "final eval loss" in result.stdout
    assert "3 [2.9, 3.1]" in result.stdout  # B's mean with its interval
    assert "every row" not in result.stdout  # the per-step join is opt-in
    per_step = runner.invoke(app, ["compare", str(a), str(b), "--per-step", "--json"])
    assert per_step.exit_code == 0, per_step.output
    doc = json.loads(per_step.stdout)
    assert len(doc["final"]) == 2 * 4 and len(doc["warnings"]) == 3
    assert len(doc["per_step"]) == 2 * 3 and doc["per_step"][0]["value_ratio"] is not None
    out = tmp_path / "cmp"
    written = runner.invoke(app, ["compare", str(a), str(b), "--out", str(out), "--per-step"])
    assert written.exit_code == 0, written.output
    md = (out / "compare.md").read_text()
    assert md.index("warning: different seeds") < md.index("| model |")
    assert set(pd.read_csv(out / "compare.csv")["metric"]) == {"final eval loss", "final eval BPB",
                                                               "steps to target", "tokens/s"}
    assert (out / "per_step.csv").is_file()


def test_compare_refuses_other_kinds(two_train_runs, tmp_path):
    other = tmp_path / "gen"
    with RunFolder.create("gen-speed", other) as folder:
        folder.write_manifest(config={}, seed=0, environment={})
    result = runner.invoke(app, ["compare", str(two_train_runs[0]), str(other)])
    assert result.exit_code == 2 and "cannot compare" in result.stderr


@pytest.mark.usefixtures("one_thread")
def test_gen_speed_runs_side_by_side(tmp_path):
    runs = []
    for seed in (0, 1):
        out = tmp_path / f"gen{seed}"
        result = runner.invoke(app, ["gen-speed", "--preset", "gen-smoke", "--models", "mambabyte",
                                     "--gen-len", "8", "--batch-sizes", "1,2", "--device", "cpu",
                                     "--seed", str(seed), "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs.append(out)
    final = compare_final(*(load_run(p) for p in runs))
    assert set(final["batch"]) == {1, 2} and set(final["model"]) == {"mambabyte"}
    assert {"bytes/s", "ms/step", "time to generate (s)", "of streaming limit"} == set(final["metric"])
    assert final["B/A"].map(lambda r: r > 0 and math.isfinite(r)).all()
    assert (final["params"] > 0).all()
    assert any("different seeds" in n for n in run_differences(*(load_run(p) for p in runs)))
