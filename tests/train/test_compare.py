"""The comparison task with stand-in training: seeds (order, data, init), OOM recorded, what is
written and when, the summary's arithmetic end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from ssmbench.report.train_compare import render_summary as render_summary_md
from ssmbench.results import load_run
from ssmbench.train import compare
from ssmbench.train.compare import CompareRequest, plan_compare, run_compare
from ssmbench.train.loop import ModelRun
from tests.progress_log import ProgressLog

CURVES = {"transformer": [5.0, 4.0, 3.0], "mamba": [5.0, 4.5, 3.5], "moe": [5.0, 3.0, 2.0]}


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """Each model 'trains' by writing a hand-made eval curve (seed s adds 0.1 s); moe-mamba runs out
    of memory. Every call is recorded: model, seed of its data, its first batch, its first weight."""
    seen: list[dict] = []

    def fake(model, batches, ev, cfg, dev, run: ModelRun, opt, hooks, dist):
        seed = torch.initial_seed()  # the run's seed, set just before its model was built
        _, first = next(batches(0, 1))
        seen.append({"name": run.name, "seed": seed, "batch": first,
                     "weight": next(model.parameters()).detach().clone()})
        if run.name == "moe-mamba":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        for step, loss in zip((0, 2, 4), CURVES[run.name], strict=True):
            run.step = step
            run.add("eval_loss", loss + 0.1 * seed)
            run.add("eval_bpb", loss / 2)
            run.add("tokens_per_s", 1000.0 + step)
        run.tokens = cfg.steps * cfg.batch_size * cfg.seq_len
        run.status = "done"
        return run

    monkeypatch.setattr(compare, "train_model", fake)
    return seen


def _run(tmp_path, progress=None, results_changed=None, **kw):
    req = CompareRequest(steps=4, batch_size=2, seq_len=16, tokenizer="bytes", **kw)
    return run_compare(plan_compare(req), tmp_path / "run", device="cpu", progress=progress,
                       results_changed=results_changed)


def test_oom_is_recorded_and_the_others_go_on(tmp_path, calls) -> None:
    def render_summary(folder):
        # what the CLI does after every write: summary.md from the folder's files
        render_summary_md(load_run(folder), folder)

    models = ("transformer", "moe-mamba", "mamba", "moe")
    result = _run(tmp_path, results_changed=render_summary, models=models)
    by = {s["name"]: s for s in result.summary}
    assert by["moe-mamba"]["status"] == "oom" and "out of memory" in by["moe-mamba"]["error"]
    assert by["moe-mamba"]["seeds"] == 0 and by["moe-mamba"]["steps_to_target_eval_mean"] is None
    assert [by[n]["status"] for n in ("transformer", "mamba", "moe")] == ["done"] * 3
    # three evaluations, smoothed to (first, mean of the three, last). mamba (5, 4.5, 3.5): the target
    # is its last value 3.5, reached at its last step (100%)
    assert by["mamba"]["target_eval"]["value"] == pytest.approx(3.5)
    assert by["mamba"]["steps_to_target_eval_mean"] == pytest.approx(4.0)
    assert by["mamba"]["steps_to_target_eval_pct"] == pytest.approx(100.0)
    # transformer (5, 4, 3) crosses 3.5 halfway between steps 2 and 4
    assert by["transformer"]["steps_to_target_eval_mean"] == pytest.approx(3.0)
    assert by["transformer"]["steps_to_target_eval_pct"] == pytest.approx(75.0)
    # moe (5, 3, 2) smoothed to (5, 3.333, 2): 3.5 at 1.5 / 1.667 * 2 = 1.8
    assert by["moe"]["steps_to_target_eval_mean"] == pytest.approx(1.8)
    assert by["moe"]["speedup_eval"] == pytest.approx(4 / 1.8)
    assert json.loads((result.path / "summary.json").read_text()) == result.summary
    assert "oom" in (result.path / "summary.md").read_text()


def test_explicit_target_and_reference(tmp_path, calls) -> None:
    result = _run(tmp_path, models=("transformer", "moe"), reference="transformer", target_loss=4.5)
    by = {s["name"]: s for s in result.summary}
    t = by["transformer"]["target_eval"]
    assert t["value"] == 4.5 and by["transformer"]["reference"] == "transformer"
    # transformer (5, 4, 3) reaches 4.5 at 1; moe, smoothed to (5, 3.333, 2), at 0.5 / 1.667 * 2 = 0.6
    assert by["transformer"]["steps_to_target_eval_mean"] == pytest.approx(1.0)
    assert by["moe"]["steps_to_target_eval_mean"] == pytest.approx(0.6)
    assert by["moe"]["steps_to_target_eval_pct"] == pytest.approx(60.0)
    assert by["transformer"]["tokens_per_s"] == 1003.0  # median after the first interval


def test_seeds_change_init_and_data_the_same_way_for_every_model(tmp_path, calls) -> None:
    result = _run(tmp_path, models=("transformer", "mamba"), seeds=2, seed=5)
    # seed by seed: every model of seed 5, then every model of seed 6
    assert [(c["name"], c["seed"]) for c in calls] == [("transformer", 5), ("mamba", 5), ("transformer", 6),
                                                      ("mamba", 6)]
    first = {(c["name"], c["seed"]): c for c in calls}
    assert torch.equal(first[("transformer", 5)]["batch"], first[("mamba", 5)]["batch"])
    assert not torch.equal(first[("transformer", 5)]["batch"], first[("transformer", 6)]["batch"])
    assert not torch.equal(first[("mamba", 5)]["weight"], first[("mamba", 6)]["weight"])
    by = {s["name"]: s for s in result.summary}
    assert by["mamba"]["seed_list"] == [5, 6] and by["mamba"]["seeds"] == 2
    assert by["mamba"]["final_eval_loss_per_seed"] == pytest.approx([3.5 + 0.5, 3.5 + 0.6])
    low, high = by["mamba"]["final_eval_loss_ci95"]
    assert by["mamba"]["final_eval_loss_mean"] == pytest.approx(4.05) and low < 4.05 < high
    assert by["mamba"]["data_passes"] == 1.0  # the synthetic stream never repeats
    metrics = pd.read_csv(result.path / "metrics.csv")
    assert sorted(metrics.seed.unique().tolist()) == [5, 6]
    evals = metrics[(metrics.model == "mamba") & (metrics.metric == "eval_loss")]
    assert evals.groupby("seed").value.last().tolist() == pytest.approx([4.0, 4.1])
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["config"]["seeds"] == [5, 6] and manifest["seed"] == 5


def test_progress_bar_per_run_with_its_final_status(tmp_path, calls) -> None:
    log = ProgressLog()
    _run(tmp_path, progress=log, models=("transformer", "moe-mamba"), reference="transformer")
    assert log.entered == 1
    assert log.of("start") == [("start", "transformer", 4, 0), ("start", "moe-mamba", 4, 0)]
    assert log.of("finish") == [("finish", "transformer", "done"), ("finish", "moe-mamba", "oom")]
    log = ProgressLog()
    _run(tmp_path, progress=log, models=("transformer",), seeds=2)
    assert [c[1] for c in log.of("finish")] == ["transformer seed 0", "transformer seed 1"]


def test_the_task_writes_results_and_leaves_rendering_to_its_caller(tmp_path, calls) -> None:
    seen = []

    def changed(folder):
        seen.append(json.loads((folder / "summary.json").read_text()))

    result = _run(tmp_path, results_changed=changed, models=("transformer", "mamba"))
    assert not (result.path / "summary.md").exists() and not list(result.path.glob("*.png"))
    # before training, after each model, and once at the end; each time summary.json was complete
    assert len(seen) == 4 and seen[-1] == result.summary
    assert [s["status"] for s in seen[0]] == ["pending", "pending"]
    assert [s["status"] for s in seen[1]] == ["done", "pending"]


def test_cpu_allocator_failure_is_an_oom_row(tmp_path, monkeypatch) -> None:
    def no_memory(model, batches, ev, cfg, dev, run, opt, hooks, dist=None):
        raise MemoryError

    monkeypatch.setattr(compare, "train_model", no_memory)
    result = _run(tmp_path, models=("transformer",))
    assert [(s["status"], s["error"]) for s in result.summary] == [("oom", "seed 0: MemoryError")]
