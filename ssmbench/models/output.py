"""What every language model's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class LMOutput:
    """logits: (batch, T, vocab). loss: mean cross-entropy in nats per token (None without
    targets). aux_loss: weighted load-balancing loss (0-dim; zero for models without MoE).
    moe_stats: per MoE layer, {"expert_fraction": (n_experts,) tensor, "dropped_fraction": 0-dim
    tensor, "dispatch": str, "capacity": int (0: no limit)}.

    Decoding (every model): ``allocate_inference_cache(batch, max_seqlen, dtype)`` -> cache;
    ``prefill(idx (B, T), cache)`` -> logits (B, T, V); ``step(idx_t (B,), cache)`` -> (B, V).
    """

    logits: Tensor
    loss: Tensor | None
    aux_loss: Tensor
    moe_stats: list[dict[str, Any]] = field(default_factory=list)
