"""The comparison task with stand-in training: OOM recorded, target and summary arithmetic."""

from __future__ import annotations

import json

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
def fake_training(monkeypatch):
    """Each model 'trains' by writing a hand-made eval curve; moe-mamba runs out of memory."""

    def fake(model, batches, ev, cfg, dev, run: ModelRun, opt, hooks, dist=None):
        if run.name == "moe-mamba":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        for step, loss in zip((0, 2, 4), CURVES[run.name], strict=True):
            run.step = step
            run.add("eval_loss", loss)
            run.add("eval_bpb", loss / 2)
            run.add("tokens_per_s", 1000.0 + step)
        run.status = "done"
        return run

    monkeypatch.setattr(compare, "train_model", fake)


def _run(tmp_path, progress=None, results_changed=None, **kw):
    req = CompareRequest(steps=4, batch_size=2, seq_len=16, tokenizer="bytes", **kw)
    return run_compare(plan_compare(req), tmp_path / "run", device="cpu", progress=progress,
                       results_changed=results_changed)


def test_oom_is_recorded_and_the_others_go_on(tmp_path, fake_training) -> None:
    def render_summary(folder):
        # what the CLI does after every write: summary.md from the folder's files
        render_summary_md(load_run(folder), folder)

    models = ("transformer", "moe-mamba", "mamba", "moe")
    result = _run(tmp_path, results_changed=render_summary, models=models)
    by = {s["name"]: s for s in result.summary}
    assert by["moe-mamba"]["status"] == "oom" and "out of memory" in by["moe-mamba"]["error"]
    assert by["moe-mamba"]["steps_to_target_text"] == ">100%"
    assert [by[n]["status"] for n in ("transformer", "mamba", "moe")] == ["done"] * 3
    # target: mamba's final eval loss 3.5; transformer crosses it between steps 2 (4.0) and 4 (3.0)
    assert by["mamba"]["target_value"] == 3.5
    assert by["transformer"]["steps_to_target"] == pytest.approx(3.0)
    assert by["transformer"]["steps_to_target_pct"] == pytest.approx(75.0)
    assert by["transformer"]["speedup"] == pytest.approx(4 / 3)
    # moe crosses 3.5 between step 0 (5.0) and step 2 (3.0): 0 + 1.5 / 2.0 * 2
    assert by["moe"]["steps_to_target"] == pytest.approx(1.5)
    assert by["moe"]["speedup"] == pytest.approx(4 / 1.5)
    assert json.loads((result.path / "summary.json").read_text()) == result.summary
    assert "oom" in (result.path / "summary.md").read_text()


def test_explicit_target_and_reference(tmp_path, fake_training) -> None:
    result = _run(tmp_path, models=("transformer", "mamba"), reference="transformer", target_loss=4.5)
    by = {s["name"]: s for s in result.summary}
    assert by["transformer"]["target_value"] == 4.5 and by["transformer"]["reference"] == "transformer"
    assert by["transformer"]["steps_to_target"] == pytest.approx(1.0)
    assert by["mamba"]["steps_to_target"] == pytest.approx(2.0)
    assert by["mamba"]["steps_to_target_pct"] == pytest.approx(200.0) and by["mamba"]["speedup"] == 0.5
    assert by["mamba"]["tokens_per_s"] == 1003.0  # median after the first interval


def test_progress_bar_per_model_with_its_final_status(tmp_path, fake_training) -> None:
    log = ProgressLog()
    _run(tmp_path, progress=log, models=("transformer", "moe-mamba"), reference="transformer")
    assert log.entered == 1
    assert log.of("start") == [("start", "transformer", 4, 0), ("start", "moe-mamba", 4, 0)]
    assert log.of("finish") == [("finish", "transformer", "done"), ("finish", "moe-mamba", "oom")]


def test_the_task_writes_results_and_leaves_rendering_to_its_caller(tmp_path, fake_training) -> None:
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
    assert [(s["status"], s["error"]) for s in result.summary] == [("oom", "MemoryError")]
