"""Parameter counts (total / active, with and without embeddings) and forward FLOPs per token.

Counts come from the real modules, built on the meta device when given a config, so the
largest presets are counted without allocating their weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ssmbench.models.config import LMConfig, ModelConfig
from ssmbench.models.registry import build_model


@dataclass(frozen=True)
class ParamCounts:
    """total: every parameter. active: what one token uses (MoE layers: router + one expert).
    *_nonembed: the same without the token embedding and the LM head."""

    total: int
    active: int
    total_nonembed: int
    active_nonembed: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def build_on_meta(cfg: ModelConfig) -> nn.Module:
    """The model of ``cfg`` with meta tensors: shapes only, no memory, no real init."""
    with torch.device("meta"):
        return build_model(cfg)


def _embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The model's own answer when it has one; else every nn.Embedding and every module whose
    name ends in 'head' (the output projection)."""
    if hasattr(model, "embedding_modules"):
        return list(model.embedding_modules())
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.Embedding) or name.rsplit(".", 1)[-1].endswith("head")
    ]


def _numel(modules: list[nn.Module]) -> int:
    seen: set[int] = set()
    n = 0
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
    return n


def param_counts(model_or_cfg: nn.Module | ModelConfig) -> ParamCounts:
    """Count a built model, or the model a config describes (built on the meta device).

    Modules with an ``active_params()`` method (the MoE layer) count only that much as active.
    """
    model = model_or_cfg if isinstance(model_or_cfg, nn.Module) else build_on_meta(model_or_cfg)
    total = _numel([model])
    embed = _numel(_embedding_modules(model))
    inactive = sum(_numel([m]) - m.active_params() for m in model.modules() if hasattr(m, "active_params"))
    return ParamCounts(
        total=total,
        active=total - inactive,
        total_nonembed=total - embed,
        active_nonembed=total - inactive - embed,
    )


def flops_per_token(model_or_cfg: nn.Module | LMConfig, seq_len: int) -> int:
    """Forward FLOPs per token of an ``LM`` at context ``seq_len``.

    Convention: 2 FLOPs (multiply + add) per matmul weight a token uses -- projections,
    feed-forward, the router and one expert for MoE, Mamba's in/x/dt/out projections and conv
    taps, and the LM head (the embedding lookup is free); plus, per attention layer,
    4 * seq_len * d_model for the scores and the weighted sum over the full context (no halving
    for the causal mask, as in the PaLM/Chinchilla convention); plus, per Mamba layer, the scan's
    FLOPs from ``ssmbench.ops.scan.counts`` (9 per state element, D skip, z gate). Norms,
    softmax, activations and residual adds are not counted. Training is about 3x this.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    model = model_or_cfg if isinstance(model_or_cfg, nn.Module) else build_on_meta(model_or_cfg)
    layers = [block.layer for block in model.blocks]
    return sum(layer.flops_per_token(seq_len) for layer in layers) + 2 * model.lm_head.weight.numel()
