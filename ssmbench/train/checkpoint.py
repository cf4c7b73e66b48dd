"""Checkpoints: model, optimizer, RNG state and the run's progress (which is also the data
position: the batch of step s depends only on the seed and s), written atomically, one per
(model, seed) run."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from ssmbench.results import atomic_write_bytes
from ssmbench.train.loop import ModelRun


def checkpoint_path(run_dir: Path, model_name: str, seed: int) -> Path:
    """The checkpoint of one (model, seed) run of a comparison."""
    return Path(run_dir) / "checkpoints" / f"{model_name}-seed{seed}.pt"


def save_checkpoint(path: Path, run: ModelRun, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    state = {
        "run": run.to_dict(),
        "data_position": run.step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> ModelRun:
    """Restore ``model`` and ``optimizer`` in place and return the run as it was saved."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    run = ModelRun.from_dict(state["run"])
    run.status = "running"
    return run
