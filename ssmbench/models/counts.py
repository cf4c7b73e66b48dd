"""Parameter counts (total / active, with and without embeddings) and forward FLOPs per token.

Counts come from the real modules, built on the meta device when given a config, so the
largest presets are counted without allocating their weights.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig, MegaByteConfig, ModelConfig, ModelSet
from ssmbench.models.official import OfficialMambaConfig, official_available
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


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Make torch.nn.init's in-place initialisers no-ops: on meta tensors they compute nothing
    anyway, but their Python decompositions import torch._dynamo (seconds) on first use."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


def build_on_meta(cfg: ModelConfig) -> nn.Module:
    """The model of ``cfg`` with meta tensors: shapes only, no memory, no init."""
    with torch.device("meta"), _skip_init():
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


def _padding(model: nn.Module) -> int:
    """Parameters of the model's padding rows (all in its embedding modules), 0 without any."""
    padding = getattr(model, "padding_params", None)
    return int(padding()) if callable(padding) else 0


def param_counts(model_or_cfg: nn.Module | ModelConfig | OfficialMambaConfig) -> ParamCounts:
    """Count a built model, or the model a config describes (built on the meta device).

    Modules with an ``active_params()`` method (the MoE layer) count only that much as active;
    a model's ``padding_params()`` (rows that exist only to pad a GEMM, such as the LM head's past
    the vocabulary) count nowhere: the counts are the real model's. mamba_ssm's model
    (OfficialMambaConfig) is built on the meta device when mamba_ssm imports, else counted as
    ssmbench's LM of the same shape.
    """
    if isinstance(model_or_cfg, OfficialMambaConfig) and official_available() is not None:
        model_or_cfg = model_or_cfg.equivalent_lm()
    model = model_or_cfg if isinstance(model_or_cfg, nn.Module) else build_on_meta(model_or_cfg)
    padding = _padding(model)
    total = _numel([model]) - padding
    embed = _numel(_embedding_modules(model)) - padding
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
    FLOPs from ``ssmbench.ops.scan.cost`` (9 per state element, D skip, z gate). Norms,
    softmax, activations and residual adds are not counted; nor are padding rows of the LM head
    (the real model's FLOPs). Training is about 3x this.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    model = model_or_cfg if isinstance(model_or_cfg, nn.Module) else build_on_meta(model_or_cfg)
    layers = [block.layer for block in model.blocks]
    head = model.lm_head.weight.numel() - _padding(model)
    return sum(layer.flops_per_token(seq_len) for layer in layers) + 2 * head


def describe_pattern(pattern: tuple[str, ...]) -> str:
    """("attn", "ff") * 8 -> "8 x (attn, ff)"; a pattern that is not a repeat is listed whole."""
    for period in range(1, len(pattern) + 1):
        unit = pattern[:period]
        if len(pattern) % period == 0 and unit * (len(pattern) // period) == pattern:
            return f"{len(pattern) // period} x ({', '.join(unit)})"
    return ", ".join(pattern)


def _megabyte_row(cfg: MegaByteConfig, seq_len: int) -> dict[str, Any]:
    """MegaByte counts from ssmbench.models.megabyte when it provides them, else counted generically."""
    megabyte = importlib.import_module("ssmbench.models.megabyte")
    counts = megabyte.param_counts(cfg) if hasattr(megabyte, "param_counts") else param_counts(cfg)
    if not isinstance(counts, dict):
        counts = counts.to_dict() if hasattr(counts, "to_dict") else asdict(counts)
    flops = int(megabyte.flops_per_byte(cfg, seq_len)) if hasattr(megabyte, "flops_per_byte") else None
    structure = (
        f"MegaByte P={cfg.patch_size}: global d {cfg.d_global} x {cfg.n_global_layers}, "
        f"local d {cfg.d_local} x {cfg.n_local_layers}"
    )
    return {"structure": structure, **counts, "flops_per_token": flops}


def describe_model_set(model_set: ModelSet, seq_len: int | None = None) -> list[dict[str, Any]]:
    """One row per model: name, structure, d_model, vocab_size, params_total, params_active,
    params_total_nonembed, params_active_nonembed, flops_per_token (forward, at ``seq_len``,
    default the set's own; a token is a byte when vocab_size is 256), token ('byte' or 'token')."""
    seq_len = seq_len or model_set.seq_len
    rows = []
    for name, cfg in model_set.models:
        if isinstance(cfg, LMConfig):
            counts = param_counts(cfg).to_dict()
            row = {"structure": describe_pattern(cfg.pattern), **counts}
            row["flops_per_token"] = flops_per_token(cfg, seq_len)
            d_model = cfg.d_model
        elif isinstance(cfg, OfficialMambaConfig):
            counts = param_counts(cfg).to_dict()
            row = {"structure": f"mamba_ssm MambaLMHeadModel: {cfg.n_layer} x (mamba)", **counts}
            # the same network as ssmbench's LM of that shape: the same FLOPs
            row["flops_per_token"] = flops_per_token(cfg.equivalent_lm(), seq_len)
            d_model = cfg.d_model
        else:
            row = _megabyte_row(cfg, seq_len)
            d_model = cfg.d_global
        params = {
            f"params_{k}": int(row[k] if k in row else row[f"params_{k}"])
            for k in ("total", "active", "total_nonembed", "active_nonembed")
        }
        rows.append(
            {
                "name": name,
                "structure": row["structure"],
                "d_model": d_model,
                "vocab_size": cfg.vocab_size,
                **params,
                "flops_per_token": row["flops_per_token"],
                "token": "byte" if cfg.vocab_size == 256 else "token",
                "seq_len": seq_len,
            }
        )
    return rows


def describe_preset(
    name: str,
    *,
    experts: int | None = None,
    seq_len: int | None = None,
    match_flops: str | None = None,
    vary: str = "layers",
) -> dict[str, Any]:
    """What ``ssmbench models`` shows for one preset: {"preset", "description", "seq_len",
    "models": describe_model_set rows, "matched": {model: FLOPs-match record} (with match_flops)}.

    experts: experts per MoE layer instead of the preset's. match_flops: a model of the set whose
    forward FLOPs per byte the others are resized to, along ``vary`` (ssmbench.models.flops_match).
    """
    from ssmbench.models.presets import with_experts
    from ssmbench.models.registry import get_model_set

    if seq_len is not None and seq_len < 1:
        raise BadInput(f"--seq-len must be positive, got {seq_len}")
    model_set = get_model_set(name)
    if experts is not None:
        model_set = with_experts(model_set, experts)
    seq_len = seq_len or model_set.seq_len
    matched: dict[str, Any] = {}
    if match_flops is not None:
        from ssmbench.models.flops_match import match_model_set

        model_set, matches = match_model_set(model_set, match_flops, seq_len=seq_len, vary=vary)
        matched = {
            n: {"knob": m.knob, "value": m.value, "flops_per_byte": m.flops_per_byte,
                "reference_flops_per_byte": m.reference_flops_per_byte, "rel_diff": m.rel_diff}
            for n, m in matches.items()
        }  # fmt: skip
    return {
        "preset": model_set.name,
        "description": model_set.description,
        "seq_len": seq_len,
        "models": describe_model_set(model_set, seq_len),
        "matched": matched,
    }
