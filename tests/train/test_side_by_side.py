"""train-compare --devices: the (model, seed) runs in spawned worker processes, side by side, give
the sequential run's numbers; a run that fails or whose process dies is recorded and the others go
on; the schedule is in the manifest."""

from __future__ import annotations

import json

import pandas as pd

from ssmbench.train import compare
from ssmbench.train.compare import CompareRequest, plan_compare, run_compare
from tests.train import worker_jobs

MODELS = ("transformer", "mamba", "moe")


def _request(**kw) -> CompareRequest:
    return CompareRequest(preset="smoke", steps=4, batch_size=2, seq_len=16, tokenizer="bytes",
                          eval_interval=2, models=MODELS, seeds=2, threads=1, **kw)  # fmt: skip


def _curves(folder) -> pd.DataFrame:
    m = pd.read_csv(folder / "metrics.csv")
    m = m[m.metric.isin(["train_loss", "eval_loss"])]
    return m.sort_values(["model", "seed", "metric", "step"]).reset_index(drop=True)[
        ["model", "seed", "metric", "step", "value"]]


def test_runs_side_by_side_equal_the_sequential_runs(tmp_path) -> None:
    seq = run_compare(plan_compare(_request()), tmp_path / "seq", device="cpu")
    par = run_compare(plan_compare(_request()), tmp_path / "par", devices=("cpu", "cpu"))
    assert [s["status"] for s in par.summary] == ["done"] * 3
    a, b = _curves(seq.path), _curves(par.path)
    assert len(a) == len(b) > 0
    keys = ["model", "seed", "metric", "step"]
    pd.testing.assert_frame_equal(a[keys], b[keys])
    assert (a.value - b.value).abs().max() <= 1e-5 * a.value.abs().max()
    manifest = json.loads((par.path / "manifest.json").read_text())
    runs = manifest["schedule"]["runs"]
    assert sorted((r["model"], r["seed"]) for r in runs) == sorted((m, s) for m in MODELS for s in (0, 1))
    assert {r["device"] for r in runs} == {"cpu"} and all(r["status"] == "done" for r in runs)
    assert manifest["environment"]["devices"] == ["cpu", "cpu"]


def test_a_failing_run_and_a_dying_worker_are_recorded_and_the_others_go_on(tmp_path, monkeypatch) -> None:
    # the workers import the job by name: worker_jobs.broken_runs breaks mamba and kills moe's process
    monkeypatch.setattr(compare, "_worker_job", worker_jobs.broken_runs)
    res = run_compare(plan_compare(_request()), tmp_path / "run", devices=("cpu", "cpu"))
    by = {s["name"]: s for s in res.summary}
    assert [r["status"] for r in by["transformer"]["runs"]] == ["done", "done"]
    assert [r["status"] for r in by["mamba"]["runs"]] == ["failed", "failed"]
    assert all("broken on purpose" in r["error"] for r in by["mamba"]["runs"])
    assert [r["status"] for r in by["moe"]["runs"]] == ["failed", "failed"]
    assert all("died" in r["error"] for r in by["moe"]["runs"])
    assert by["transformer"]["final_eval_loss_mean"] is not None
