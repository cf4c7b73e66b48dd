"""Model size: parameter counts (total / active, with and without embeddings) and forward FLOPs
per token (per byte for MegaByte), for any model of the zoo or the byte-level sets.

Counts come from the real modules; a config is built on the meta device
(``build_model(cfg, device="meta")``), so the largest sets are counted without allocating weights.

FLOP convention: 2 FLOPs (multiply + add) per matmul weight a token uses -- projections,
feed-forward, the router and one expert for MoE, Mamba's in/x/dt/out projections and conv taps,
the LM head (embedding lookups are free); plus, per attention layer, 4 * context * d_model for the
scores and the weighted sum over the full context (no halving for the causal mask, as in the
PaLM/Chinchilla convention); plus, per Mamba layer, the scan's FLOPs (9 per state element, D skip,
z gate). Norms, softmax, activations and residual adds are not counted, nor padding rows of the LM
head. Training is about 3x this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ssmbench.layers.moe import SwitchMoE
from ssmbench.models.config import LMConfig, MegaByteConfig, ModelConfig
from ssmbench.models.lm import LM
from ssmbench.models.megabyte import MegaByte
from ssmbench.models.official import OfficialMambaConfig, official_available
from ssmbench.models.registry import build_model


@dataclass(frozen=True)
class ParamCounts:
    """total: every parameter. active: what one token uses (MoE layers: router + one expert).
    *_nonembed: the same without the token (byte) embeddings and the LM head."""

    total: int
    active: int
    total_nonembed: int
    active_nonembed: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _built(model_or_cfg: nn.Module | ModelConfig) -> nn.Module:
    return model_or_cfg if isinstance(model_or_cfg, nn.Module) else build_model(model_or_cfg, device="meta")


def _numel(params: list[nn.Parameter]) -> int:
    """Elements of the distinct parameters in ``params`` (a tied weight counts once)."""
    return sum(p.numel() for p in {id(p): p for p in params}.values())


def _params(modules: list[nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def _padding(model: nn.Module) -> int:
    """Parameters of the model's padding rows (all in its embedding modules), 0 without any."""
    padding = getattr(model, "padding_params", None)
    return int(padding()) if callable(padding) else 0


def param_counts(model_or_cfg: nn.Module | ModelConfig | OfficialMambaConfig) -> ParamCounts:
    """Count a built model, or the model a config describes (built on the meta device).

    Embedding parameters are the model's ``embedding_modules()``; an MoE layer's inactive
    parameters are all its experts but one; a model's ``padding_params()`` (rows that exist only to
    pad a GEMM, such as the LM head's past the vocabulary) count nowhere: the counts are the real
    model's. mamba_ssm's model (OfficialMambaConfig) is built on the meta device when mamba_ssm
    imports, else counted as ssmbench's LM of the same shape."""
    if isinstance(model_or_cfg, OfficialMambaConfig) and official_available() is not None:
        model_or_cfg = model_or_cfg.equivalent_lm()
    model = _built(model_or_cfg)
    padding = _padding(model)
    total = _numel(list(model.parameters())) - padding
    embed = _numel(_params(model.embedding_modules())) - padding
    inactive = sum(
        _numel(list(m.parameters())) - m.active_params() for m in model.modules() if isinstance(m, SwitchMoE)
    )
    return ParamCounts(
        total=total,
        active=total - inactive,
        total_nonembed=total - embed,
        active_nonembed=total - inactive - embed,
    )


def megabyte_stack_params(model_or_cfg: MegaByte | MegaByteConfig) -> tuple[int, int]:
    """(global, local) non-embedding parameters of a MegaByte model: the global Transformer stack
    with its padding patch, and the local stack with its padding byte. Neither includes the
    global-to-local projection (d_global / P x d_local), the byte embeddings or the LM head."""
    model = _built(model_or_cfg)
    return _numel(model.global_parameters()), _numel([*model.local_model.parameters(), model.local_pad])


def lm_flops_per_token(model_or_cfg: LM | LMConfig, seq_len: int) -> int:
    """Forward FLOPs per token of an ``LM`` at context ``seq_len`` (the module docstring's convention)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    model = _built(model_or_cfg)
    layers = [block.layer for block in model.blocks]
    head = model.lm_head.weight.numel() - _padding(model)  # the real vocabulary's rows only
    return sum(layer.flops_per_token(seq_len) for layer in layers) + 2 * head


def megabyte_flops_per_byte(model_or_cfg: MegaByte | MegaByteConfig, seq_len: int) -> int:
    """Forward FLOPs per byte of a MegaByte model at context ``seq_len`` bytes, in the convention
    of ``lm_flops_per_token``: the global model's FLOPs per patch (context seq_len / P patches)
    divided by P, plus per byte the global-to-local projection, the local model (context P) and
    the LM head."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    model = _built(model_or_cfg)
    P = model.cfg.patch_size
    global_per_patch = model.global_model.flops_per_token(max(1, seq_len // P))
    per_byte = (
        2 * model.to_local.weight.numel()
        + model.local_model.flops_per_token(P)
        + 2 * model.lm_head.weight.numel()
    )
    return global_per_patch // P + per_byte


def flops_per_token(model_or_cfg: LM | MegaByte | ModelConfig, seq_len: int) -> int:
    """Forward FLOPs per input position at context ``seq_len``: per token for an LM (a byte when its
    vocabulary is bytes), per byte for MegaByte."""
    if isinstance(model_or_cfg, (MegaByte, MegaByteConfig)):
        return megabyte_flops_per_byte(model_or_cfg, seq_len)
    return lm_flops_per_token(model_or_cfg, seq_len)
