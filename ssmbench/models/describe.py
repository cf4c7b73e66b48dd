"""What ``ssmbench models`` shows: one row per model of a set (structure, parameter counts,
forward FLOPs per token or byte), with the set's expert count or FLOPs matching applied."""

from __future__ import annotations

from typing import Any

from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig, MegaByteConfig, ModelSet
from ssmbench.models.flops_match import match_model_set
from ssmbench.models.official import OfficialMambaConfig
from ssmbench.models.registry import get_model_set
from ssmbench.models.size import flops_per_token, megabyte_stack_params, param_counts
from ssmbench.models.zoo_sets import with_experts


def describe_pattern(pattern: tuple[str, ...]) -> str:
    """("attn", "ff") * 8 -> "8 x (attn, ff)"; a pattern that is not a repeat is listed whole."""
    for period in range(1, len(pattern) + 1):
        unit = pattern[:period]
        if len(pattern) % period == 0 and unit * (len(pattern) // period) == pattern:
            return f"{len(pattern) // period} x ({', '.join(unit)})"
    return ", ".join(pattern)


def _megabyte_structure(cfg: MegaByteConfig) -> str:
    """Shape and the non-embedding size of each stack (``megabyte_stack_params``)."""
    n_global, n_local = megabyte_stack_params(cfg)
    return (
        f"MegaByte P={cfg.patch_size}: global d {cfg.d_global} x {cfg.n_global_layers} "
        f"({n_global / 1e6:,.1f}M), local d {cfg.d_local} x {cfg.n_local_layers} ({n_local / 1e6:,.1f}M)"
    )


def describe_model_set(model_set: ModelSet, seq_len: int | None = None) -> list[dict[str, Any]]:
    """One row per model: name, structure, d_model (d_global for MegaByte), vocab_size,
    params_total, params_active, params_total_nonembed, params_active_nonembed, flops_per_token
    (forward, at ``seq_len``, default the set's own; a token is a byte when vocab_size is 256),
    token ('byte' or 'token'), seq_len."""
    seq_len = seq_len or model_set.seq_len
    rows = []
    for name, cfg in model_set.models:
        counts = param_counts(cfg)
        if isinstance(cfg, OfficialMambaConfig):
            # the same network as ssmbench's LM of that shape: the same FLOPs
            structure, d_model = f"mamba_ssm MambaLMHeadModel: {cfg.n_layer} x (mamba)", cfg.d_model
            cfg = cfg.equivalent_lm()
        elif isinstance(cfg, LMConfig):
            structure, d_model = describe_pattern(cfg.pattern), cfg.d_model
        else:
            structure, d_model = _megabyte_structure(cfg), cfg.d_global
        rows.append(
            {
                "name": name,
                "structure": structure,
                "d_model": d_model,
                "vocab_size": cfg.vocab_size,
                **{f"params_{k}": v for k, v in counts.to_dict().items()},
                "flops_per_token": flops_per_token(cfg, seq_len),
                "token": "byte" if cfg.vocab_size == 256 else "token",
                "seq_len": seq_len,
            }
        )
    return rows


def describe_named_set(
    name: str,
    *,
    experts: int | None = None,
    seq_len: int | None = None,
    match_flops: str | None = None,
    vary: str = "layers",
) -> dict[str, Any]:
    """What ``ssmbench models --preset NAME`` shows: {"preset", "description", "seq_len",
    "models": describe_model_set rows, "matched": {model: FLOPs-match record} (with match_flops)}.

    experts: experts per MoE layer instead of the set's. match_flops: a model of the set whose
    forward FLOPs per byte the others are resized to, along ``vary`` (ssmbench.models.flops_match).
    """
    if seq_len is not None and seq_len < 1:
        raise BadInput(f"--seq-len must be positive, got {seq_len}")
    model_set = get_model_set(name)
    if experts is not None:
        model_set = with_experts(model_set, experts)
    seq_len = seq_len or model_set.seq_len
    matched: dict[str, Any] = {}
    if match_flops is not None:
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
