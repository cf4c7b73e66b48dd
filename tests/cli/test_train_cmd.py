"""`ssmbench train-compare` through CliRunner: seeds and intervals, data passes, the results folder,
report, resume per (model, seed), pystdlib end to end, bad input."""

from __future__ import annotations

import json

import matplotlib.image
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.cli.train_cmd import parse_size
from ssmbench.errors import BadInput
from ssmbench.train import compare

TINY = ["--steps", "4", "--batch-size", "2", "--seq-len", "16", "--eval-interval", "2"]
PLOTS = ("loss_vs_steps", "loss_vs_time", "bpb_vs_steps", "ema_loss_vs_steps", "final_loss",
         "steps_to_target")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, runner):
    """The done-means command (smoke preset, transformer and mamba, 2 seeds, CPU), with fewer and
    smaller steps to keep the suite quick."""
    out = tmp_path_factory.mktemp("tc") / "run"
    command = ["train-compare", "--preset", "smoke", "--models", "transformer,mamba", "--seeds", "2",
               "--device", "cpu"]
    res = runner.invoke(app, [*command, *TINY, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_two_seeds_no_repeated_data_and_means_inside_their_intervals(finished) -> None:
    _, printed = finished
    for s in printed["summary"]:
        assert s["data_passes"] <= 1.0 and all(p <= 1.0 for p in s["data_passes_per_seed"])
        assert s["seeds"] == 2 and s["seed_list"] == [0, 1]
        low, high = s["final_eval_loss_ci95"]
        assert low <= s["final_eval_loss_mean"] <= high
        low, high = s["final_eval_bpb_ci95"]
        assert low <= s["final_eval_bpb_mean"] <= high
        assert len(s["final_eval_loss_per_seed"]) == 2 and s["final_eval_loss_per_seed"][0] is not None


def test_smoke_writes_every_file(finished) -> None:
    out, printed = finished
    for name in ("manifest.json", "metrics.csv", "summary.json", "summary.md", *(f"{p}.png" for p in PLOTS)):
        assert (out / name).is_file(), name
    for p in PLOTS:
        img = matplotlib.image.imread(out / f"{p}.png")
        assert img.shape[0] > 300 and img.shape[1] > 500 and img[..., :3].std() > 0.05, p  # drawn, not blank
    summary = json.loads((out / "summary.json").read_text())
    assert summary == printed["summary"]
    assert [s["name"] for s in summary] == ["transformer", "mamba"]
    for s in summary:
        assert s["status"] == "done" and [r["steps_done"] for r in s["runs"]] == [4, 4]
        for key in ("params_total_nonembed", "params_active_nonembed", "final_eval_loss_mean",
                    "final_eval_bpb_mean", "final_train_loss_ema_mean", "tokens_per_s", "peak_mem_bytes",
                    "flops_per_token", "flops_per_byte", "target_eval", "target_ema"):
            assert s[key] is not None, key
        assert s["steps_to_target_eval_reached"] + s["steps_to_target_eval_per_seed"].count(None) == 2
    assert summary[1]["target_eval"]["reference_steps"] is not None
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "train-compare" and manifest["config"]["train"]["steps"] == 4
    assert manifest["config"]["seeds"] == [0, 1] and manifest["data"]["tokens_per_pass"] is None
    assert manifest["tokenizer"]["used"].startswith("bpe") and manifest["eval"]["mode"] == "nonoverlap"
    assert manifest["data"]["entropy_rate_bits_per_byte"] > 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.columns) >= {"model", "seed", "step", "metric", "value", "wall_s", "tokens", "kernels"}
    evals = metrics[(metrics.metric == "eval_loss") & (metrics.model == "mamba")]
    assert evals.groupby("seed").step.apply(list).tolist() == [[0, 2, 4], [0, 2, 4]]
    assert metrics[metrics.model == "mamba"].kernels.str.contains("scan_backend=").all()


def test_report_rerenders_a_seeded_run(finished, runner, tmp_path) -> None:
    out, printed = finished
    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "transformer" in res.output and "[" in res.output  # intervals in the table
    assert all((tmp_path / f"{p}.png").is_file() for p in PLOTS)
    md = (tmp_path / "summary.md").read_text()
    assert "## Results" in md and "## Steps to target" in md and "## Every run" in md
    assert md.count("| mamba | 1 | done |") == 1 and "Student-t 95% interval" in md
    mean = printed["summary"][0]["final_eval_loss_mean"]
    assert f"{mean:.4g} [" in md


def test_resume_continues_the_missing_runs(tmp_path, runner, monkeypatch) -> None:
    out = tmp_path / "run"
    trained: list[tuple[str, int, int]] = []
    interrupt = [True]
    real = compare.train_model

    def interrupting(model, batches, ev, cfg, dev, run, opt, hooks, dist):
        seed = torch.initial_seed()  # the run's seed, set just before its model was built
        trained.append((run.name, seed, run.step))
        progress = hooks.progress

        def stop(r, loss, tps):
            progress(r, loss, tps)
            if interrupt[0] and (r.name, seed, r.step) == ("transformer", 1, 3):
                raise KeyboardInterrupt  # what Ctrl-C raises

        hooks.progress = stop
        return real(model, batches, ev, cfg, dev, run, opt, hooks, dist)

    monkeypatch.setattr(compare, "train_model", interrupting)
    args = ["train-compare", "--preset", "smoke", *TINY, "--models", "transformer,mamba", "--seeds", "2",
            "--checkpoint-every", "2"]
    res = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert res.exit_code == 130
    summary = json.loads((out / "summary.json").read_text())
    statuses = [[r["status"] for r in s["runs"]] for s in summary]
    assert statuses == [["done", "interrupted"], ["done", "pending"]]
    assert [s["status"] for s in summary] == ["interrupted", "partial"]
    assert "`transformer`: interrupted" in (out / "summary.md").read_text()  # re-rendered at the interrupt
    assert (out / "checkpoints" / "transformer-seed1.pt").is_file()
    partial = pd.read_csv(out / "metrics.csv")
    seed1 = partial[(partial.model == "transformer") & (partial.seed == 1)]
    assert (seed1.metric == "train_loss").sum() >= 3  # partial curve on disk

    trained.clear()
    interrupt[0] = False
    res = runner.invoke(app, ["train-compare", "--resume", str(out), "--json"])
    assert res.exit_code == 0, res.output
    # the finished runs kept; transformer seed 1 from its step-2 checkpoint; mamba seed 1 from the start
    assert trained == [("transformer", 1, 2), ("mamba", 1, 0)]
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["done", "done"] and all(s["seeds"] == 2 for s in summary)
    assert not list((out / "checkpoints").glob("*.pt"))
    metrics = pd.read_csv(out / "metrics.csv")
    for model in ("transformer", "mamba"):
        for seed in (0, 1):
            rows = metrics[(metrics.model == model) & (metrics.seed == seed)]
            assert rows[rows.metric == "train_loss"].step.tolist() == [1, 2, 3, 4], (model, seed)

    res = runner.invoke(app, ["train-compare", "--resume", str(out), "--seeds", "3"])
    assert res.exit_code == 2 and "drop --seeds" in res.output


def test_pystdlib_end_to_end(runner, tmp_path) -> None:
    out = tmp_path / "py"
    res = runner.invoke(app, ["train-compare", "--data", "pystdlib", "--data-bytes", "300K", "--tokenizer",
                              "bytes", "--models", "transformer", "--steps", "2", "--batch-size", "2",
                              "--seq-len", "16", "--eval-interval", "1", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    (s,) = json.loads(res.stdout)["summary"]
    assert s["status"] == "done" and 0 < s["data_passes"] < 0.01
    data = json.loads((out / "manifest.json").read_text())["data"]
    assert data["name"] == "pystdlib" and data["train_bytes"] == 300_000 and len(data["train_sha256"]) == 64
    assert s["tokens_per_pass"] == data["tokens_per_pass"] > 0


def test_repeated_data_is_warned_about(runner, tmp_path) -> None:
    # a 100-byte synthetic corpus holds 4 windows of 17 bytes: 64 trained tokens a pass; 4 steps train 128
    out = tmp_path / "rep"
    res = runner.invoke(app, ["train-compare", *TINY, "--data-bytes", "100", "--tokenizer", "bytes",
                              "--models", "transformer", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (s,) = json.loads((out / "summary.json").read_text())
    assert s["data_passes"] == pytest.approx(2.0)
    assert "WARNING" in res.output and "2.00 passes" in res.output
    assert "**Warning:** `transformer` made 2.00 passes" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    ("text", "size"),
    [("400000", 400_000), ("400K", 400_000), ("1.5M", 1_500_000), ("2G", 2_000_000_000), ("64Mi", 64 * 2**20),
     ("10kb", 10_000), (" 3 GiB ", 3 * 2**30)],
)
def test_data_bytes_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["0", "-5", "0.0001K", "12Q", "", "M"])
def test_data_bytes_rejects_non_sizes(bad: str) -> None:
    with pytest.raises(BadInput, match="--data-bytes"):
        parse_size(bad)


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
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--data-bytes", "-3"], "--data-bytes must be positive"),
        (["--data-bytes", "lots"], "--data-bytes 'lots'"),
        (["--lr", "nan"], "--lr must be a finite number"),
    ],
)
def test_bad_input_is_one_line_exit_2(runner, tmp_path, args, message) -> None:
    res = runner.invoke(app, ["train-compare", *args, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_gpt2_without_tiktoken_says_how_to_get_it(runner, tmp_path, monkeypatch) -> None:
    from ssmbench.data import tokenizers

    monkeypatch.setattr(tokenizers, "_tiktoken_gpt2", lambda: (None, "tiktoken is not installed"))
    res = runner.invoke(app, ["train-compare", "--tokenizer", "gpt2", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "pip install tiktoken" in res.output and "bpe:N" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


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
        assert s["status"] == "done" and s["target_eval"]["metric"] == "eval_bpb"
        assert s["flops_per_byte"] == s["flops_per_token"] > 0  # a token is a byte
        assert s["final_eval_bpb_mean"] == pytest.approx(s["final_eval_loss_mean"] / 0.6931471805599453)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["eval"]["mode"] == "sliding" and manifest["eval"]["stride"] == 8
    assert manifest["config"]["eval_mode"] == "sliding"
