"""The training loop in several layouts, run on every rank by torchrun (test_distributed.py) and
in one process as the reference: ``python torchrun_loop.py OUT.json`` writes rank 0's rows of
each scenario to OUT.json."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ssmbench.data.dataset import TokenDataset
from ssmbench.data.sources import synthetic_source
from ssmbench.data.tokenizers import ByteTokenizer
from ssmbench.models.config import LMConfig
from ssmbench.models.registry import build_model
from ssmbench.train.checkpoint import load_checkpoint, save_checkpoint
from ssmbench.train.config import TrainConfig
from ssmbench.train.distributed import SINGLE, Dist, launch
from ssmbench.train.loop import ModelRun, TrainHooks, make_optimizer, sharded_batches, train_model

CPU = torch.device("cpu")
TIMING = {"step_time_ms", "tokens_per_s", "tokens_per_s_per_device"}
SCENARIOS = ("ddp_grad_accum", "moe_no_drop", "fsdp_resume")


def _data() -> tuple[TokenDataset, Any]:
    src = synthetic_source(60_000, seed=0)
    tok = ByteTokenizer()
    ds = TokenDataset(tok.encode(src.train), tok.encode(src.val), 24, tok.token_byte_lengths(), seed=0)
    return ds, ds.eval_set(7)  # 7 windows: uneven shares over 2 ranks


def _cfg(**kw: Any) -> TrainConfig:
    base = dict(steps=6, batch_size=8, seq_len=24, lr=3e-3, warmup_frac=0.0, schedule="cosine", amp="none",
                eval_interval=2, eval_windows=7, log_interval=1, ema_alpha=0.1)
    return TrainConfig(**{**base, **kw})


def _model(pattern: tuple[str, ...], **kw: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(LMConfig(vocab_size=256, d_model=32, pattern=pattern, n_heads=2, d_ff=64, d_expert=32,
                                n_experts=4, d_state=4, **kw))


def comparable(run: ModelRun) -> list[list[Any]]:
    return [[r["step"], r["metric"], r["value"]] for r in run.rows if r["metric"] not in TIMING]


def scenario(name: str, dist: Dist, tmp: Path) -> list[list[Any]]:
    """Rows of one scenario. ddp_grad_accum: two micro-batches per step; moe_no_drop: MoE with
    room for every token and no balancing loss (so one process and shards agree); fsdp_resume:
    FSDP2 with two micro-batches per step, stopped at a checkpoint and resumed from it (rows
    of the resumed run)."""
    ds, ev = _data()
    if name == "ddp_grad_accum":
        cfg = _cfg(grad_accum=2)
        run = train_model(_model(("attn", "ff")), sharded_batches(ds, cfg.batch_size, dist), ev, cfg, CPU,
                          ModelRun(name), dist=dist)
        return comparable(run)
    if name == "moe_no_drop":
        cfg = _cfg()
        model = _model(("attn", "moe"), capacity_factor=4.0, lb_loss_weight=0.0)
        run = train_model(model, sharded_batches(ds, cfg.batch_size, dist), ev, cfg, CPU, ModelRun(name),
                          dist=dist)
        return comparable(run)
    cfg = _cfg(checkpoint_every=3, grad_accum=2)
    dist = replace(dist, fsdp=dist.active)
    ckpt = tmp / "fsdp.pt"
    hooks = TrainHooks(checkpoint=lambda r, m, o: save_checkpoint(ckpt, r, m, o))
    train_model(_model(("mamba", "ff")), sharded_batches(ds, cfg.batch_size, dist), ev, cfg, CPU,
                ModelRun(name), hooks=hooks, dist=dist)
    model = _model(("mamba", "ff")).to(CPU)
    opt = make_optimizer(model, cfg)
    run = load_checkpoint(ckpt, model, opt)
    assert run.step == 3
    run = train_model(model, sharded_batches(ds, cfg.batch_size, dist), ev, cfg, CPU, run, opt, dist=dist)
    return comparable(run)


def all_scenarios(dist: Dist, tmp: Path) -> dict[str, list[list[Any]]]:
    return {name: scenario(name, dist, tmp) for name in SCENARIOS}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    with launch("cpu") as (dist, _):
        assert dist.world_size == 2 and dist != SINGLE
        rows = all_scenarios(dist, out.parent)
        if dist.is_main:
            out.write_text(json.dumps(rows))
