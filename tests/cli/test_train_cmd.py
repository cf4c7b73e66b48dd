"""`ssmbench train-compare` through CliRunner: the results folder, report, resume, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.train import compare

TINY = ["--preset", "smoke", "--steps", "4", "--batch-size", "2", "--seq-len", "16", "--eval-interval", "2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, runner):
    out = tmp_path_factory.mktemp("tc") / "run"
    res = runner.invoke(app, ["train-compare", *TINY, "--models", "transformer,mamba", "--out", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_smoke_writes_every_file(finished) -> None:
    out, printed = finished
    for name in ("manifest.json", "metrics.csv", "summary.json", "summary.md", "loss_vs_steps.png",
                 "loss_vs_time.png", "bpb_vs_steps.png", "steps_to_target.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary == printed["summary"]
    assert [s["name"] for s in summary] == ["transformer", "mamba"]
    for s in summary:
        assert s["status"] == "done" and s["steps_done"] == 4
        for key in ("params_total_nonembed", "params_active_nonembed", "final_eval_loss", "final_eval_bpb",
                    "steps_to_target", "steps_to_target_pct", "speedup", "tokens_per_s", "peak_mem_bytes",
                    "flops_per_token", "flops_per_byte"):
            assert s[key] is not None, key
    mamba = summary[1]
    assert mamba["steps_to_target"] == 4 and mamba["steps_to_target_pct"] == 100 and mamba["speedup"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "train-compare" and manifest["config"]["train"]["steps"] == 4
    assert manifest["tokenizer"]["used"].startswith("bpe") and manifest["eval"]["mode"] == "nonoverlap"
    assert manifest["data"]["entropy_rate_bits_per_byte"] > 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.columns) >= {"model", "step", "metric", "value", "wall_s", "tokens", "kernels"}
    evals = metrics[(metrics.metric == "eval_loss") & (metrics.model == "mamba")]
    assert evals.step.tolist() == [0, 2, 4]
    assert metrics[metrics.model == "mamba"].kernels.str.contains("scan_backend=").all()


def test_report_rerenders_the_folder(finished, runner, tmp_path) -> None:
    out, _ = finished
    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "transformer" in res.output and (tmp_path / "steps_to_target.png").is_file()
    assert "## Results" in (tmp_path / "summary.md").read_text()


def test_resume_does_not_redo_finished_models(tmp_path, runner, monkeypatch) -> None:
    out = tmp_path / "run"
    trained: list[tuple[str, int]] = []
    interrupt = [True]
    real = compare.train_model

    def interrupting(model, batches, ev, cfg, dev, run, opt, hooks, dist):
        trained.append((run.name, run.step))
        progress = hooks.progress

        def stop(r, loss, tps):
            progress(r, loss, tps)
            if interrupt[0] and r.name == "mamba" and r.step == 3:
                raise KeyboardInterrupt  # what Ctrl-C raises

        hooks.progress = stop
        return real(model, batches, ev, cfg, dev, run, opt, hooks, dist)

    monkeypatch.setattr(compare, "train_model", interrupting)
    args = ["train-compare", *TINY, "--models", "transformer,mamba", "--checkpoint-every", "2"]
    res = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert res.exit_code == 130
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["done", "interrupted"]
    assert "`mamba`: interrupted" in (out / "summary.md").read_text()  # re-rendered at the interrupt
    assert (out / "checkpoints" / "mamba.pt").is_file()
    partial = pd.read_csv(out / "metrics.csv")
    assert (partial[partial.model == "mamba"].metric == "train_loss").sum() >= 3  # partial curve on disk

    trained.clear()
    interrupt[0] = False
    res = runner.invoke(app, ["train-compare", "--resume", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert trained == [("mamba", 2)]  # transformer kept, mamba from its step-2 checkpoint
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["done", "done"]
    assert not (out / "checkpoints" / "mamba.pt").exists()
    metrics = pd.read_csv(out / "metrics.csv")
    steps = metrics[(metrics.model == "mamba") & (metrics.metric == "train_loss")].step.tolist()
    assert steps == [1, 2, 3, 4]

    res = runner.invoke(app, ["train-compare", "--resume", str(out), "--steps", "9"])
    assert res.exit_code == 2 and "drop --steps" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "transformer,gpt5"], "unknown model 'gpt5'"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--data", "/nonexistent/text.txt"], "no such file"),
        (["--steps", "0"], "steps must be positive"),
        (["--batch-size", "-2"], "batch-size must be positive"),
        (["--models", "transformer", "--reference", "mamba"], "not among those run"),
        (["--suite", "bytes", "--tokenizer", "bpe"], "token-free"),
        (["--tokenizer", "wordpiece"], "unknown tokenizer"),
        (["--eval-mode", "sliding", "--eval-stride", "999"], "eval-stride"),
        (["--experts", "0"], "at least 1"),
    ],
)
def test_bad_input_is_one_line_exit_2(runner, tmp_path, args, message) -> None:
    res = runner.invoke(app, ["train-compare", *args, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_context_longer_than_data(runner, tmp_path) -> None:
    text = tmp_path / "tiny.txt"
    text.write_bytes(b"hello world " * 20)
    res = runner.invoke(app, ["train-compare", "--data", str(text), "--tokenizer", "bytes", "--seq-len", "64",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "longer than the validation split" in res.output


def test_bytes_suite_reports_bpb_and_flops_per_byte(runner, tmp_path) -> None:
    out = tmp_path / "bytes"
    res = runner.invoke(app, ["train-compare", "--suite", "bytes", "--steps", "2", "--batch-size", "2",
                              "--seq-len", "16", "--eval-interval", "1", "--eval-mode", "sliding",
                              "--eval-stride", "8", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["summary"]
    assert [s["name"] for s in summary] == ["mambabyte", "megabyte", "byte-transformer"]
    for s in summary:
        assert s["status"] == "done" and s["target_metric"] == "eval_bpb"
        assert s["flops_per_byte"] == s["flops_per_token"] > 0  # a token is a byte
        assert s["final_eval_bpb"] == pytest.approx(s["final_eval_loss"] / 0.6931471805599453)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["eval"]["mode"] == "sliding" and manifest["eval"]["stride"] == 8
    assert manifest["config"]["eval_mode"] == "sliding"
