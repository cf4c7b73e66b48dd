"""Learning-rate schedules: linear warm-up, then constant or cosine decay to a floor."""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, total_steps: int, warmup_steps: int, schedule: str,
          min_lr_frac: float = 0.1) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Warm-up: lr * (step + 1) / warmup_steps for step < warmup_steps. After it, "constant"
    keeps lr; "cosine" goes from lr to min_lr_frac * lr along half a cosine, reaching the
    floor at the last step (total_steps - 1).
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = min_lr_frac * lr
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))
