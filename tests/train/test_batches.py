"""The batches of one run: another seed's stream without reopening the data, and prefetching
(of one rank's rows) that hands over exactly the stream's rows."""

from __future__ import annotations

import pytest
import torch

from ssmbench.data import DataRequest, open_training_data
from ssmbench.models.config import LMConfig
from ssmbench.models.registry import build_model
from ssmbench.train.batches import for_seed
from ssmbench.train.config import TrainConfig
from ssmbench.train.distributed import Dist
from ssmbench.train.loop import ModelRun, sharded_batches, train_model


@pytest.mark.parametrize("data_bytes", [None, 20_000], ids=["unbounded-synthetic", "finite-corpus"])
def test_for_seed_gives_what_opening_the_data_with_that_seed_gives(data_bytes) -> None:
    base = open_training_data(DataRequest(tokenizer="bytes", seq_len=16, data_bytes=data_bytes))
    direct = open_training_data(DataRequest(tokenizer="bytes", seq_len=16, data_bytes=data_bytes, seed=3))
    other = for_seed(base, 3)
    assert other.tokenizer is base.tokenizer and other.val_ids is base.val_ids
    assert other.tokens_available == direct.tokens_available
    for step in (0, 1, 7):
        assert torch.equal(other.train_batch(step, 4), direct.train_batch(step, 4))
    assert not torch.equal(other.train_batch(0, 4), base.train_batch(0, 4))
    assert torch.equal(for_seed(base, 0).train_batch(2, 4), base.train_batch(2, 4))


@pytest.mark.parametrize("world", [1, 2])
def test_prefetched_rank_rows_are_the_streams(world) -> None:
    stream = open_training_data(DataRequest(tokenizer="bytes", seq_len=16, seed=1)).train
    for rank in range(world):
        batches = sharded_batches(stream, 4, Dist(rank, rank, world, "gloo"), workers=1)
        start, stop = rank * 4 // world, (rank + 1) * 4 // world
        got = list(batches(2, 5))
        assert [step for step, _ in got] == [2, 3, 4]
        for step, rows in got:
            assert torch.equal(rows, stream.rows(step, 4, start, stop))


def test_training_on_prefetched_batches_gives_the_same_curve() -> None:
    data = open_training_data(DataRequest(tokenizer="bytes", seq_len=24))
    cfg = TrainConfig(steps=6, batch_size=4, seq_len=24, amp="none", eval_interval=3, eval_windows=4,
                      log_interval=1)
    ev = data.eval_set(4)

    def curve(workers: int) -> list[tuple]:
        torch.manual_seed(0)
        model = build_model(LMConfig(vocab_size=256, d_model=32, pattern=("attn", "ff"), n_heads=2, d_ff=64))
        batches = sharded_batches(data.train, cfg.batch_size, workers=workers)
        run = train_model(model, batches, ev, cfg, torch.device("cpu"), ModelRun("m"))
        return [(r["step"], r["metric"], r["value"]) for r in run.rows
                if r["metric"] in ("train_loss", "eval_loss")]

    assert curve(workers=1) == curve(workers=0)
