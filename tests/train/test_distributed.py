"""One model over several processes: batch and evaluation shares, and torchrun itself (two gloo
processes on the CPU) against one process: the same curves, one results folder written by rank 0.

Tolerance: 1e-5 relative on every logged loss, gradient norm and learning rate. What differs
between one and two processes is only float rounding: each rank's forward runs on half the
rows (other matmul blocking) and DDP averages two half-batch gradients instead of one
full-batch mean; measured differences are about 1e-7 after 6 steps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as tdist
from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.data.dataset import TokenDataset
from ssmbench.data.sources import synthetic_source
from ssmbench.data.tokenizers import ByteTokenizer
from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig
from ssmbench.models.registry import build_model
from ssmbench.train.distributed import SINGLE, Dist, FollowerFolder, launch
from ssmbench.train.loop import evaluate, sharded_batches
from tests.train import torchrun_loop

REPO = Path(__file__).resolve().parents[2]
REL = 1e-5
TIMING = {"step_time_ms", "tokens_per_s", "tokens_per_s_per_device"}
CLI_ARGS = ["train-compare", "--preset", "smoke", "--models", "transformer,mamba", "--steps", "6",
            "--eval-interval", "2", "--checkpoint-every", "2", "--seeds", "1", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset() -> TokenDataset:
    src = synthetic_source(20_000, seed=0)
    tok = ByteTokenizer()
    return TokenDataset(tok.encode(src.train), tok.encode(src.val), 16, tok.token_byte_lengths(), seed=3)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_rank_shards_make_up_the_global_batch(dataset, world) -> None:
    parts = {r: list(sharded_batches(dataset, 8, Dist(r, r, world, "gloo"))(5, 7)) for r in range(world)}
    for k, step in enumerate((5, 6)):
        assert all(parts[r][k][0] == step for r in range(world))
        whole = torch.cat([parts[r][k][1] for r in range(world)])
        assert whole.shape == (8, 17) and torch.equal(whole, dataset.train_batch(step, 8))


def test_layouts_that_do_not_split_are_bad_input() -> None:
    with pytest.raises(BadInput, match="multiple of the 3 processes"):
        Dist(0, 0, 3, "gloo").shard(8)
    with pytest.raises(BadInput, match="do not split into 4 micro-batches"):
        Dist(1, 1, 4, "gloo").local_batch(8, grad_accum=4)
    assert Dist(1, 1, 4, "gloo").local_batch(16, grad_accum=2) == 4 and SINGLE.local_batch(8, 4) == 8


@pytest.mark.parametrize("n", [1, 7, 8, 64])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_window_shares_cover_every_window_once(n, world) -> None:
    shares = [Dist(r, r, world, "gloo").window_share(n) for r in range(world)]
    assert len({per for _, _, per in shares}) == 1
    covered = [i for lo, hi, per in shares for i in range(lo, hi)]
    assert covered == list(range(n)) and all(hi - lo <= per for lo, hi, per in shares)


@pytest.fixture
def group_of_one():
    """A real gloo process group of one process, so that collectives run in this test."""
    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    yield
    tdist.destroy_process_group()


def test_evaluation_shares_add_up_to_the_one_process_loss(group_of_one) -> None:
    src = synthetic_source(20_000, seed=1)
    tok = ByteTokenizer()
    ds = TokenDataset(tok.encode(src.train), tok.encode(src.val), 16, tok.token_byte_lengths(), seed=0)
    ev = ds.eval_set(7)
    torch.manual_seed(0)
    model = build_model(LMConfig(vocab_size=256, d_model=32, pattern=("attn", "ff"), n_heads=2, d_ff=64))
    whole, whole_bpb = evaluate(model, ev, torch.device("cpu"), batch_size=4)
    # in a group of one, each share's sum comes back alone: the shares of 3 ranks add up
    parts = [evaluate(model, ev, torch.device("cpu"), batch_size=4, dist=Dist(r, r, 3, "gloo"))
             for r in range(3)]
    assert sum(loss for loss, _ in parts) == pytest.approx(whole, rel=1e-6)
    assert sum(bpb for _, bpb in parts) == pytest.approx(whole_bpb, rel=1e-6)
    assert all(loss > 0 for loss, _ in parts)


def test_one_process_and_fsdp_without_torchrun(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with launch("cpu") as (dist, dev):
        assert dist == SINGLE and dist.parallel == "none" and dev == torch.device("cpu")
    with pytest.raises(BadInput, match="torchrun"), launch("cpu", fsdp=True):
        pass


def test_follower_folder_writes_nothing(tmp_path) -> None:
    folder = FollowerFolder(tmp_path / "run", "train-compare")
    folder.write_manifest(config={}, seed=0, environment={})
    folder.update_manifest(resumed_on="cpu")
    folder.write_metrics(pd.DataFrame({"a": [1]}))
    folder.write_summary([{"name": "x"}])
    assert not (tmp_path / "run").exists()


# ---- torchrun: two gloo processes ----


def _torchrun(script: str, *args: str, env_extra: dict[str, str] | None = None,
              **popen: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(REPO / "tests" / "train" / script), *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def _assert_same_rows(got: list, want: list, what: str) -> None:
    """Rows [key..., value]: the same keys in the same order, values within REL."""
    assert [r[:-1] for r in got] == [r[:-1] for r in want], what
    bad = [(g, w) for g, w in zip(got, want, strict=True) if not _close(g[-1], w[-1])]
    assert not bad, f"{what}: {bad[:3]}"


@pytest.mark.distributed
def test_loop_layouts_under_torchrun_match_one_process(tmp_path) -> None:
    """DDP with grad accumulation, MoE under DDP, FSDP2 with a checkpoint and resume."""
    _finish(_torchrun("torchrun_loop.py", str(tmp_path / "rows.json")))
    got = json.loads((tmp_path / "rows.json").read_text())
    (tmp_path / "one").mkdir()
    want = torchrun_loop.all_scenarios(SINGLE, tmp_path / "one")
    assert set(got) == set(want) == set(torchrun_loop.SCENARIOS)
    for name in want:
        _assert_same_rows(got[name], want[name], name)
        assert any(r[1] == "eval_loss" for r in want[name]) and any(r[1] == "train_loss" for r in want[name])


def _curves(folder: Path) -> list:
    m = pd.read_csv(folder / "metrics.csv")
    m = m[~m.metric.isin(TIMING)]
    return [[r.model, r.seed, r.step, r.metric, r.tokens, r.value] for r in m.itertuples()]


def _assert_same_folder(got: Path, want: Path) -> None:
    a = _curves(got)
    _assert_same_rows(a, _curves(want), f"{got} against {want}")
    assert {r[3] for r in a} >= {"eval_loss", "train_loss", "train_loss_ema", "grad_norm", "lr"}
    files = lambda p: sorted(str(f.relative_to(p)) for f in p.rglob("*"))
    assert files(got) == files(want)
    summary = json.loads((got / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["done", "done"]
    for s in summary:
        assert s["tokens_per_s_per_device"] == pytest.approx(s["tokens_per_s"] / 2, rel=1e-9)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The comparison run in this process, without torchrun."""
    out = tmp_path_factory.mktemp("one") / "run"
    res = CliRunner().invoke(app, [*CLI_ARGS, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.distributed
def test_torchrun_matches_one_process_and_only_rank_0_writes(tmp_path, one_process) -> None:
    out, writes = tmp_path / "run", tmp_path / "rank1-writes.txt"
    log = _finish(_torchrun("torchrun_cli.py", *CLI_ARGS, "--out", str(out),
                            env_extra={"SSMBENCH_TEST_WRITES": str(writes)}))
    assert not writes.exists(), writes.read_text()
    assert log.count("results: ") == 1  # rank 0 alone prints the table
    env = json.loads((out / "manifest.json").read_text())["environment"]
    assert env["world_size"] == 2 and env["backend"] == "gloo" and env["parallel"] == "ddp"
    assert env["devices"] == ["cpu", "cpu"]
    one_env = json.loads((one_process / "manifest.json").read_text())["environment"]
    assert one_env["world_size"] == 1 and one_env["backend"] is None
    _assert_same_folder(out, one_process)


@pytest.mark.distributed
def test_ctrl_c_under_torchrun_keeps_the_folder_and_resume_finishes_it(tmp_path, one_process) -> None:
    out, writes = tmp_path / "run", tmp_path / "rank1-writes.txt"
    env = {"SSMBENCH_TEST_WRITES": str(writes)}
    proc = _torchrun("torchrun_cli.py", *CLI_ARGS, "--out", str(out), env_extra=env, start_new_session=True)
    deadline = time.monotonic() + 600
    # the first model done and the second past its first checkpoint: then Ctrl-C, as a terminal
    # sends it, to torchrun and both ranks
    while not (out / "checkpoints" / "mamba-seed0.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-4000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["name"], s["status"]) for s in summary] == [("transformer", "done"), ("mamba", "interrupted")]
    assert (out / "checkpoints" / "mamba-seed0.pt").is_file()
    _finish(_torchrun("torchrun_cli.py", "train-compare", "--resume", str(out), "--device", "cpu",
                      env_extra=env))
    assert not writes.exists(), writes.read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed_layout"]["world_size"] == 2
    _assert_same_folder(out, one_process)
