"""Choosing the next byte from logits, without host syncs (safe inside a CUDA graph).

Sampling uses the Gumbel-max trick (argmax of logits / T + Gumbel noise) instead of
``torch.multinomial``: the same distribution, drawn with ``torch.rand`` on the device's
default generator, which CUDA graphs capture and advance on every replay.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ssmbench.errors import BadInput


@dataclass(frozen=True)
class Sampling:
    """greedy: argmax. Otherwise sample from softmax(logits / temperature), restricted to the
    ``top_k`` largest logits when top_k is set."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise BadInput(f"temperature must be positive, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise BadInput(f"top-k must be at least 1, got {self.top_k}")

    def describe(self) -> str:
        if self.greedy:
            return "greedy"
        k = f", top_k={self.top_k}" if self.top_k else ""
        return f"sampled (temperature={self.temperature:g}{k})"


def sample_next(logits: Tensor, sampling: Sampling) -> Tensor:
    """logits: (B, V) -> next token ids (B,) long."""
    if sampling.greedy:
        return logits.argmax(dim=-1)
    x = logits.float() / sampling.temperature  # (B, V)
    if sampling.top_k is not None and sampling.top_k < x.shape[-1]:
        kth = x.topk(sampling.top_k, dim=-1).values[:, -1:]  # (B, 1)
        x = x.masked_fill(x < kth, float("-inf"))
    u = torch.rand_like(x).clamp_(1e-10, 1.0 - 1e-7)
    gumbel = -torch.log(-torch.log(u))  # (B, V)
    return (x + gumbel).argmax(dim=-1)
