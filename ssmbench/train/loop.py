"""Train one model: AdamW, schedule, clipping, bf16 autocast on GPU, MoE aux loss, fixed evals.

The state of a run (step, metric rows, EMA, time, status) is a ``ModelRun``; checkpoints save
it with the model and optimizer, and ``train_model`` continues from whatever step it holds.
Rows are long-format dicts: model, step, metric, value, wall_s (training seconds so far,
evaluations excluded), tokens (training tokens so far, all processes together).

Under torchrun (``dist``, see ssmbench.train.distributed) every rank runs this loop on its
share of each batch and of the evaluation windows; the logged losses are reduced over ranks,
so every rank holds the same rows, and the hooks (which write files) run on rank 0 only.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ssmbench.bench.timing import synchronize
from ssmbench.data import EvalSet, prefetch_batches
from ssmbench.train.config import TrainConfig
from ssmbench.train.distributed import SINGLE, Dist, all_reduce, parallelize
from ssmbench.train.metrics import EMA, bits_per_byte
from ssmbench.train.schedule import lr_at

FINISHED = ("done", "diverged", "oom")
EVAL_ELEMENTS = 1 << 26  # logits elements per evaluation chunk (256 MB in fp32)

BatchSource = Callable[[int, int], Generator[tuple[int, torch.Tensor], None, None]]
"""(first_step, stop_step) -> (step, rows) for steps first_step..stop_step-1 in order; rows:
(b, seq_len + 1) int64, this process's share of the step's global batch."""


class RowSource(Protocol):
    """Training rows by step, a pure function of (step, row): ssmbench.data's streams."""

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor: ...


def sharded_batches(data: RowSource, batch_size: int, dist: Dist = SINGLE, *, workers: int = 0,
                    pin_memory: bool = False) -> BatchSource:
    """This rank's rows [r B / W, (r + 1) B / W) of every global batch of ``batch_size`` rows (all
    of them in one process), made ahead of the step by ``workers`` processes (0: when asked), each
    making only this rank's rows; page-locked with ``pin_memory``."""
    start, stop = dist.shard(batch_size)
    return lambda first, last: prefetch_batches(data, batch_size, first, last, start=start, stop=stop,
                                                workers=workers, pin_memory=pin_memory)


@dataclass
class ModelRun:
    """Progress of one run. status: pending, running, done, diverged, oom, interrupted or failed
    (an error, or its worker process died: see ``error``). device: where it ran; wall_time_s:
    wall-clock seconds spent on it (build, training, evaluations, checkpoints; after a resume,
    counted from its checkpoint on)."""

    name: str
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    ema_m: float = 0.0
    ema_n: int = 0
    train_time_s: float = 0.0
    tokens: int = 0
    status: str = "pending"
    error: str | None = None
    kernels: dict[str, str] = field(default_factory=dict)
    peak_mem_bytes: int | None = None
    peak_mem_kind: str | None = None
    device: str | None = None
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelRun:
        return cls(**d)

    def add(self, metric: str, value: float) -> None:
        self.rows.append({"model": self.name, "step": self.step, "metric": metric, "value": float(value),
                          "wall_s": self.train_time_s, "tokens": self.tokens})


@dataclass
class TrainHooks:
    """Callbacks, on rank 0 only: progress(run, loss, tokens_per_s) after each logged interval;
    evaluated(run) after each evaluation (persist the rows); checkpoint(run, model, optimizer)
    every cfg.checkpoint_every steps (under FSDP model and optimizer are stand-ins whose
    ``state_dict()`` holds the full state gathered from the shards)."""

    progress: Callable[[ModelRun, float, float], None] = lambda run, loss, tps: None
    evaluated: Callable[[ModelRun], None] = lambda run: None
    checkpoint: Callable[[ModelRun, nn.Module, torch.optim.Optimizer], None] = lambda run, m, o: None


def adamw_kind(device: torch.device) -> dict[str, Any]:
    """The AdamW implementation used on ``device`` (recorded in manifests): the fused kernel on
    CUDA (one kernel for all parameters), the multi-tensor ``foreach`` one elsewhere."""
    fused = device.type == "cuda"
    return {"name": "AdamW", "fused": fused, "foreach": not fused}


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW (``adamw_kind`` of the model's device); weight decay on matrices only, never on
    params flagged ``_no_weight_decay``."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and not getattr(p, "_no_weight_decay", False) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    device = next(model.parameters()).device
    kind = adamw_kind(device)
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=kind["fused"], foreach=kind["foreach"]
    )


def optimizer_record(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """{name, fused, foreach} of a built optimizer, as ``adamw_kind`` describes it."""
    return {
        "name": type(opt).__name__,
        "fused": bool(opt.defaults.get("fused")),
        "foreach": bool(opt.defaults.get("foreach")),
    }


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when asked; full precision otherwise (CPU runs are references)."""
    if device.type == "cuda" and amp == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, ev: EvalSet, device: torch.device, amp: str = "none",
             batch_size: int = 16, dist: Dist = SINGLE) -> tuple[float, float]:
    """(mean loss in nats per scored token, bits per raw byte) on the fixed evaluation set;
    under torchrun each rank scores a share of the windows and the NLL sums are added up."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    inputs, targets, mask = _eval_share(ev, dist)
    n, t = inputs.shape
    vocab = None
    i = 0
    while i < n:
        # one window first, to learn the vocabulary and so the chunk that keeps logits small
        chunk = 1 if vocab is None else max(1, min(batch_size, EVAL_ELEMENTS // (t * vocab)))
        x, y, m = (a[i : i + chunk].to(device) for a in (inputs, targets, mask))
        with autocast(device, amp):
            logits = model(x).logits  # (b, T, V)
        vocab = logits.shape[-1]
        nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")  # (b, T)
        total += (nll * m).sum(dtype=torch.float64)
        i += chunk
    model.train(was_training)
    nll_sum = float(all_reduce(total, dist))
    return nll_sum / ev.n_tokens, bits_per_byte(nll_sum, ev.n_bytes)


def _eval_share(ev: EvalSet, dist: Dist) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, mask) of this rank's windows; padding windows (to the same count on
    every rank) score nothing."""
    if not dist.active:
        return ev.inputs, ev.targets, ev.mask
    lo, hi, per = dist.window_share(ev.inputs.shape[0])
    idx = torch.cat([torch.arange(lo, hi), torch.zeros(per - (hi - lo), dtype=torch.long)])
    mask = ev.mask[idx]
    mask[hi - lo :] = False
    return ev.inputs[idx], ev.targets[idx], mask


def _kernels(model: nn.Module) -> dict[str, str]:
    paths = getattr(model, "kernel_paths", None)
    return dict(paths()) if callable(paths) else {}


class _Window:
    """Losses, gradient norms and learning rates between two logged steps, kept on the device
    until then (one sync per window)."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []
        self.lrs: list[float] = []


class _MoELoad:
    """Expert load between two evaluations: mean fraction of tokens per expert (over MoE layers
    and steps) and mean dropped fraction."""

    def __init__(self) -> None:
        self.fraction: torch.Tensor | None = None
        self.dropped: torch.Tensor | None = None
        self.n = 0

    def add(self, stats: list[dict[str, Any]]) -> None:
        if not stats:
            return
        frac = torch.stack([s["expert_fraction"].detach().float() for s in stats]).mean(0)  # (E,)
        drop = torch.stack([torch.as_tensor(s["dropped_fraction"]).detach().float() for s in stats]).mean()
        self.fraction = frac if self.fraction is None else self.fraction + frac
        self.dropped = drop if self.dropped is None else self.dropped + drop
        self.n += 1

    def rows_into(self, run: ModelRun, dist: Dist = SINGLE) -> None:
        """Rows of the mean load over all ranks' shards."""
        if self.fraction is None or self.dropped is None:
            return
        frac = (all_reduce(self.fraction, dist) / (self.n * dist.world_size)).tolist()
        dropped = all_reduce(self.dropped, dist) / (self.n * dist.world_size)
        for e, f in enumerate(frac):
            run.add(f"expert_fraction_{e:03d}", f)
        run.add("moe_max_load", max(frac) * len(frac))
        run.add("moe_dropped_fraction", float(dropped))


def train_model(model: nn.Module, batches: BatchSource, eval_set: EvalSet, cfg: TrainConfig,
                device: torch.device, run: ModelRun, optimizer: torch.optim.Optimizer | None = None,
                hooks: TrainHooks | None = None, dist: Dist = SINGLE) -> ModelRun:
    """Train ``model`` from ``run.step`` to ``cfg.steps`` on ``batches``; returns the updated run.

    A NaN/inf training loss ends the run with status "diverged" (the rows so far are kept).
    CUDA out-of-memory propagates to the caller, which records it. Under torchrun ``model`` is
    wrapped here (DDP, or FSDP2 with ``dist.fsdp``, which also points ``optimizer`` at the shards).
    """
    hooks = hooks or TrainHooks()
    micro = dist.local_batch(cfg.batch_size, cfg.grad_accum) // cfg.grad_accum
    model.to(device).train()
    opt = optimizer if optimizer is not None else make_optimizer(model, cfg)
    net = parallelize(model, opt, dist, device)
    params = [p for g in opt.param_groups for p in g["params"]]
    ema = EMA(cfg.ema_alpha, run.ema_m, run.ema_n)
    eval_bs = max(16, cfg.batch_size // cfg.grad_accum)  # no gradients: larger chunks fit
    run.status = "running"
    if not any(r["metric"] == "eval_loss" for r in run.rows):
        _evaluate_into(run, model, eval_set, device, cfg, eval_bs, dist)
        if dist.is_main:
            hooks.evaluated(run)
    window, moe, t_last = _Window(), _MoELoad(), time.perf_counter()
    # closed on every way out (an early return, an error), so prefetching workers stop at once
    with contextlib.closing(batches(run.step, cfg.steps)) as steps:
        for _, batch in steps:
            lr = lr_at(run.step, lr=cfg.lr, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                       schedule=cfg.schedule, min_lr_frac=cfg.min_lr_frac)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = batch.to(device, non_blocking=True)  # (B / world_size, T+1)
            opt.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=device)
            for k in range(cfg.grad_accum):
                part = batch[k * micro : (k + 1) * micro]  # (B / world_size / grad_accum, T+1)
                with net.micro_batch(last=k == cfg.grad_accum - 1):
                    with autocast(device, cfg.amp):
                        out = net(part[:, :-1], part[:, 1:])
                    ((out.loss + out.aux_loss) / cfg.grad_accum).backward()
                step_loss += out.loss.detach().float() / cfg.grad_accum
                moe.add(out.moe_stats)
            max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            window.grad_norms.append(net.clip_grad_norm(params, max_norm).detach())
            opt.step()
            window.losses.append(step_loss)
            window.lrs.append(lr)
            run.step += 1
            at_eval = run.step % cfg.eval_interval == 0 or run.step == cfg.steps
            at_ckpt = (bool(cfg.checkpoint_every) and run.step % cfg.checkpoint_every == 0
                       and run.step < cfg.steps)
            if run.step % cfg.log_interval == 0 or at_eval or at_ckpt:
                if not run.kernels:
                    run.kernels = _kernels(model)
                synchronize(device)
                if not _log_window(run, window, ema, time.perf_counter() - t_last, cfg, hooks, dist):
                    return run
                window = _Window()
                if at_eval:
                    moe.rows_into(run, dist)
                    moe = _MoELoad()
                    _evaluate_into(run, model, eval_set, device, cfg, eval_bs, dist)
                    if dist.is_main:
                        hooks.evaluated(run)
                if at_ckpt:
                    ckpt_model, ckpt_opt = net.checkpoint_state(opt)
                    if dist.is_main:
                        hooks.checkpoint(run, ckpt_model, ckpt_opt)
                t_last = time.perf_counter()  # evaluation and checkpoint time is not training time
    run.status = "done"
    return run


def _log_window(run: ModelRun, w: _Window, ema: EMA, dt: float, cfg: TrainConfig, hooks: TrainHooks,
                dist: Dist) -> bool:
    """Turn a window into rows; False (and status "diverged") when a loss is not finite.

    The losses are means over all ranks' shards (equal shards: the global batch's mean), and
    the window's time is the slowest rank's, so every rank decides and logs the same.
    """
    losses = (all_reduce(torch.stack(w.losses), dist) / dist.world_size).tolist()
    dt = float(all_reduce(torch.tensor([dt], dtype=torch.float64, device=w.losses[0].device), dist, op="max"))
    n = len(losses)
    run.train_time_s += dt
    run.tokens += n * cfg.batch_size * cfg.seq_len
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        run.step = run.step - n + bad[0] + 1
        run.add("train_loss", float("nan"))
        run.status, run.error = "diverged", f"loss {losses[bad[0]]} at step {run.step}"
        return False
    for v in losses:
        ema.update(v)
    run.ema_m, run.ema_n = ema.m, ema.n
    tps = n * cfg.batch_size * cfg.seq_len / dt if dt > 0 else float("nan")
    mean_loss = sum(losses) / n
    run.add("train_loss", mean_loss)
    run.add("train_loss_ema", ema.value)
    run.add("lr", w.lrs[-1])
    run.add("grad_norm", float(torch.stack(w.grad_norms).float().mean()))
    run.add("step_time_ms", 1e3 * dt / n)
    run.add("tokens_per_s", tps)
    run.add("tokens_per_s_per_device", tps / dist.world_size)
    if dist.is_main:
        hooks.progress(run, mean_loss, tps)
    return True


def _evaluate_into(run: ModelRun, model: nn.Module, ev: EvalSet, device: torch.device, cfg: TrainConfig,
                   batch_size: int, dist: Dist) -> None:
    loss, bpb = evaluate(model, ev, device, cfg.amp, batch_size, dist)
    run.add("eval_loss", loss)
    run.add("eval_bpb", bpb)
