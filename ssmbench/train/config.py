"""Training settings: one frozen dataclass, shared by every model of a comparison."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ssmbench.errors import BadInput

SCHEDULES = ("cosine", "constant")
STEPS_METRICS = ("eval_loss", "train_loss_ema", "eval_bpb")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, evaluation and bookkeeping for one training run.

    lr: peak AdamW learning rate, reached after warmup_frac * steps linear warm-up steps, then
    held (schedule "constant") or decayed by a cosine to min_lr_frac * lr at the last step.
    weight_decay applies to matrices only (not biases, norms, Mamba's A_log and D).
    grad_clip: max global gradient norm (0 = off). grad_accum: micro-batches per step (the
    batch is the same, only cut into pieces to fit memory). amp: bf16 autocast on CUDA ("bf16") or "none".
    eval_interval: steps between evaluations (also at step 0 and the last step) on eval_windows
    fixed windows of the validation split, in eval_mode ("nonoverlap" or "sliding" with
    eval_stride). log_interval: steps between training-loss rows. ema_alpha: weight of the
    newest loss in the smoothed (bias-corrected) training loss. steps_metric: the headline
    steps-to-target curve (both the evaluation-based and the EMA-based figures are reported).
    data_bytes: training text size (a finite corpus of that many bytes; with synthetic data it
    turns the unbounded stream into a finite one); None: the whole corpus, the unbounded
    synthetic stream, or for streamed corpora enough text for one pass.
    """

    steps: int
    batch_size: int
    seq_len: int
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_frac: float = 0.01
    schedule: str = "constant"
    min_lr_frac: float = 0.1
    grad_clip: float = 0.5
    grad_accum: int = 1
    amp: str = "bf16"
    eval_interval: int = 100
    eval_windows: int = 64
    eval_mode: str = "nonoverlap"
    eval_stride: int | None = None
    log_interval: int = 10
    ema_alpha: float = 0.001
    steps_metric: str = "eval_loss"
    checkpoint_every: int = 0
    data_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_interval", "eval_windows", "log_interval",
                     "data_bytes"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise BadInput(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.grad_accum <= 0 or self.batch_size % self.grad_accum:
            raise BadInput(f"grad accumulation {self.grad_accum} must divide batch size {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise BadInput(f"lr must be positive, got {self.lr}")
        if self.checkpoint_every < 0:
            raise BadInput(f"checkpoint-every must be >= 0, got {self.checkpoint_every}")
        if self.schedule not in SCHEDULES:
            raise BadInput(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if self.steps_metric not in STEPS_METRICS:
            raise BadInput(
                f"unknown steps metric {self.steps_metric!r}; choose from {', '.join(STEPS_METRICS)}"
            )
        if not 0 < self.ema_alpha <= 1:
            raise BadInput(f"ema alpha must be in (0, 1], got {self.ema_alpha}")
        if self.amp not in ("bf16", "none"):
            raise BadInput(f"amp must be bf16 or none, got {self.amp!r}")
        if self.eval_stride is not None and self.eval_stride <= 0:
            raise BadInput(f"eval-stride must be positive, got {self.eval_stride}")
        for name, within, rule in (
            ("weight_decay", lambda v: v >= 0, ">= 0"), ("grad_clip", lambda v: v >= 0, ">= 0"),
            ("beta1", lambda v: 0 <= v < 1, "in [0, 1)"), ("beta2", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("warmup_frac", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("min_lr_frac", lambda v: 0 <= v <= 1, "in [0, 1]"),
        ):  # fmt: skip
            value = getattr(self, name)
            if not (math.isfinite(value) and within(value)):
                raise BadInput(f"{name.replace('_', '-')} must be a finite number {rule}, got {value}")

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_frac * self.steps))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """``replace`` with the changes that are not None (command-line options left unset)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
