"""The five-way zoo of MoE-Mamba (Pioro et al., arXiv 2401.04081) at several sizes: model sets, as data.

Every set holds the same five models, built from one block count n and width d:
  transformer = ("attn", "ff") * n      FF of width d_ff (4d: 8 d^2; attention 4 d^2)
  mamba       = ("mamba",) * 2n         a Mamba layer is a little over 6 d^2
  mamba-mlp   = ("mamba", "ff") * n     FF of width d_ff_mamba (3d: 6 d^2, like the Mamba layer)
  moe         = ("attn", "moe") * n     experts as wide as the FF they replace (d_ff)
  moe-mamba   = ("mamba", "moe") * n    experts as wide as Mamba-MLP's FF (d_ff_mamba)
So each MoE model's active parameters equal its dense sibling's plus one router.
A set's vocab size is a default: the training task replaces it with its tokenizer's. Its
seq_len is the context the paper trained at (FLOPs per token are quoted there).
"""

from __future__ import annotations

from dataclasses import replace

from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig, ModelConfig, ModelSet

ZOO_MODELS = ("transformer", "mamba", "mamba-mlp", "moe", "moe-mamba")


def five_way(
    name: str,
    description: str,
    *,
    d_model: int,
    n_blocks: int,
    vocab_size: int,
    n_heads: int,
    d_ff: int,
    d_ff_mamba: int,
    n_experts: int,
    capacity_factor: float = 1.0,
    lb_loss_weight: float = 0.01,
    seq_len: int = 1024,
) -> ModelSet:
    """The five zoo models at one size (see the module docstring for the patterns and widths)."""
    base = LMConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        pattern=("attn", "ff") * n_blocks,
        n_heads=n_heads,
        d_ff=d_ff,
        d_expert=d_ff,
        n_experts=n_experts,
        capacity_factor=capacity_factor,
        lb_loss_weight=lb_loss_weight,
    )
    models = (
        ("transformer", base),
        ("mamba", replace(base, pattern=("mamba",) * (2 * n_blocks))),
        ("mamba-mlp", replace(base, pattern=("mamba", "ff") * n_blocks, d_ff=d_ff_mamba)),
        ("moe", replace(base, pattern=("attn", "moe") * n_blocks)),
        ("moe-mamba", replace(base, pattern=("mamba", "moe") * n_blocks, d_expert=d_ff_mamba)),
    )
    return ModelSet(name, description, models, seq_len)


def _has_moe(cfg: ModelConfig) -> bool:
    return isinstance(cfg, LMConfig) and "moe" in cfg.pattern


def with_experts(model_set: ModelSet, n_experts: int) -> ModelSet:
    """The same set with ``n_experts`` experts in every MoE layer (the paper's ablation: 1..32)."""
    if n_experts < 1:
        raise BadInput(f"--experts must be at least 1, got {n_experts}")
    models = tuple(
        (name, replace(cfg, n_experts=n_experts) if _has_moe(cfg) else cfg) for name, cfg in model_set.models
    )
    return replace(model_set, description=f"{model_set.description} [{n_experts} experts]", models=models)


_V1 = dict(vocab_size=50257, d_model=512, n_blocks=8, n_heads=8, d_ff=2048, d_ff_mamba=1536)

# name -> (description, five_way sizes)
_SIZES: dict[str, tuple[str, dict]] = {
    "smoke": (
        "tiny five-way zoo for CPU tests: d 64, 2 blocks (4 Mamba layers), 4 heads, FF 256 / 192, "
        "4 experts (256 wide in moe, 192 in moe-mamba), byte vocab",
        dict(vocab_size=256, d_model=64, n_blocks=2, n_heads=4, d_ff=256, d_ff_mamba=192, n_experts=4,
             seq_len=128),
    ),
    "small": (
        "minutes on one GPU: d 256, 4 blocks (8 Mamba layers), 4 heads, FF 1024 / 768, 16 experts "
        "(1024 wide in moe, 768 in moe-mamba), vocab 4096",
        dict(vocab_size=4096, d_model=256, n_blocks=4, n_heads=4, d_ff=1024, d_ff_mamba=768, n_experts=16,
             seq_len=512),
    ),
    "paper-v1": (
        "MoE-Mamba v1: d 512, 8 blocks or 16 Mamba layers, 8 heads, attention-side FF and moe's 32 "
        "experts 2048 wide, Mamba-side FF and moe-mamba's 32 experts 1536 wide, capacity 1.0, lb 0.01, "
        "GPT-2 vocab (trained at context 256)",
        dict(_V1, n_experts=32, seq_len=256),
    ),
    "paper-v2-25m": (
        "MoE-Mamba v2, ~25M active non-embedding: the v1 shapes (d 512, 8 blocks; Transformer "
        "12 d^2 x 8 = 25.2M), which v2 trains longer (context 1024, batch 64, 150k steps, cosine, wd 0.1)",
        dict(_V1, n_experts=32, seq_len=1024),
    ),
    "paper-v2-100m": (
        "MoE-Mamba v2, ~100M active non-embedding: d 768, 14 blocks (28 Mamba layers), 12 heads, FF 3072 "
        "/ 2304, 32 experts (3072 wide in moe, 2304 in moe-mamba); 14 blocks so that the Transformer's "
        "12 d^2 x 14 = 99.1M",
        dict(vocab_size=50257, d_model=768, n_blocks=14, n_heads=12, d_ff=3072, d_ff_mamba=2304,
             n_experts=32, seq_len=1024),
    ),
}  # fmt: skip

ZOO_MODEL_SETS: dict[str, ModelSet] = {
    name: five_way(name, description, **sizes) for name, (description, sizes) in _SIZES.items()
}
