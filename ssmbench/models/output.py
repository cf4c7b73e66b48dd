"""What every language model returns, and the interface tasks rely on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor


@dataclass
class LMOutput:
    """logits: (batch, T, vocab). loss: mean cross-entropy in nats per token (None without
    targets). aux_loss: weighted load-balancing loss (0-dim; zero for models without MoE).
    moe_stats: per MoE layer, {"expert_fraction": (n_experts,) tensor, "dropped_fraction": float}.
    """

    logits: Tensor
    loss: Tensor | None
    aux_loss: Tensor
    moe_stats: list[dict[str, Any]] = field(default_factory=list)


class LanguageModel(Protocol):
    """Models train with ``forward`` and decode with ``prefill`` then ``step``.

    forward(idx (B, T) long, targets (B, T) long | None) -> LMOutput
    allocate_inference_cache(batch_size, max_seqlen, dtype) -> cache object
    prefill(idx (B, T), cache) -> logits (B, T, V), cache advanced by T
    step(idx_t (B,), cache) -> logits (B, V), cache advanced by 1
    """

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> LMOutput: ...

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype: Any = None) -> Any: ...

    def prefill(self, idx: Tensor, cache: Any) -> Tensor: ...

    def step(self, idx_t: Tensor, cache: Any) -> Tensor: ...
