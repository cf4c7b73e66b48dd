"""Parameter counts and FLOPs per token, checked against hand counts and the paper's design."""

import math

import pytest
import torch

from ssmbench.models.config import LMConfig
from ssmbench.models.counts import describe_model_set, describe_pattern, flops_per_token, param_counts
from ssmbench.models.lm import LM
from ssmbench.models.presets import ZOO_PRESETS
from ssmbench.ops.scan.cost import ScanShape, scan_flops


def test_counts_of_built_model_equal_meta_counts():
    cfg = LMConfig(vocab_size=50, d_model=32, pattern=("attn", "moe", "mamba", "ff"), n_heads=4, d_ff=48,
                   d_expert=24, n_experts=5)  # fmt: skip
    model = LM(cfg)
    built = param_counts(model)
    assert built == param_counts(cfg)
    # the LM head's 14 padding rows (50 -> 64) are not counted
    assert model.padding_params() == (64 - 50) * 32
    assert built.total == sum(p.numel() for p in model.parameters()) - model.padding_params()
    embed = 2 * 50 * 32
    assert built.total - built.total_nonembed == embed
    inactive_experts = 4 * 2 * 32 * 24  # 4 of 5 experts idle for any token
    assert built.total - built.active == inactive_experts
    assert built.active_nonembed == built.active - embed


def test_paper_v1_matches_the_papers_design():
    d = 512
    rows = {r["name"]: r for r in describe_model_set(ZOO_PRESETS["paper-v1"])}
    for name, r in rows.items():
        counts = [r[f"params_{k}"] for k in ("total", "active", "total_nonembed", "active_nonembed")]
        print(name.ljust(12), "total / active / non-emb total / non-emb active:", *(f"{c:,}" for c in counts))
    embed = 2 * 50257 * d
    assert rows["transformer"]["params_total"] - rows["transformer"]["params_total_nonembed"] == embed
    # a Mamba layer is a little over 6 d^2: 16 of them plus 17 LayerNorms
    mamba_layer = (rows["mamba"]["params_total_nonembed"] - 17 * 2 * d) / 16
    assert 6 * d * d < mamba_layer < 6.5 * d * d
    # Transformer: 8 x (4 d^2 attention + 8 d^2 FF) plus norms
    assert rows["transformer"]["params_total_nonembed"] == 8 * 12 * d * d + 17 * 2 * d
    # MoE: 32 experts of 6 d^2 each, one active, router d x 32
    moe = rows["moe-mamba"]
    assert moe["params_total_nonembed"] - moe["params_active_nonembed"] == 8 * 31 * 6 * d * d
    assert moe["params_total_nonembed"] > 15 * moe["params_active_nonembed"]
    # active non-embedding parameters are matched: 21M (MoE: 4 d^2 + 6 d^2 per block) to 27M (Mamba),
    # as in the paper's own table
    active = {name: r["params_active_nonembed"] for name, r in rows.items()}
    assert max(active.values()) / min(active.values()) < 1.3, active
    assert min(active, key=active.get) == "moe" and max(active, key=active.get) == "mamba"
    for name in ("transformer", "mamba-mlp", "moe-mamba"):
        assert 24e6 < active[name] < 27e6


def test_flops_per_token_convention():
    T, d, V = 100, 32, 50
    cfg = LMConfig(vocab_size=V, d_model=d, pattern=("attn", "ff", "mamba", "moe"), n_heads=4, d_ff=64,
                   d_expert=48, n_experts=6, d_state=8)  # fmt: skip
    m = LM(cfg)
    mamba = m.blocks[2].layer
    matmul = (
        4 * d * d  # attention projections
        + 2 * d * 64  # FF
        + sum(w.numel() for w in (mamba.in_proj.weight, mamba.conv1d.weight, mamba.x_proj.weight,
                                  mamba.dt_proj.weight, mamba.out_proj.weight))
        + d * 6 + 2 * d * 48  # router + one expert
        + d * V  # LM head
    )  # fmt: skip
    scan = scan_flops(ScanShape(1, 2 * d, 1, 8), "fwd")
    assert flops_per_token(cfg, T) == 2 * matmul + 4 * T * d + scan
    assert flops_per_token(cfg, 2 * T) - flops_per_token(cfg, T) == 4 * T * d
    with pytest.raises(ValueError):
        flops_per_token(cfg, 0)


def test_big_presets_count_without_allocating():
    counts = param_counts(ZOO_PRESETS["paper-v2-100m"].get("moe-mamba"))
    assert counts.total > 1.5e9  # 1.7B parameters counted on the meta device
    assert 90e6 < counts.active_nonembed < 115e6


def test_describe_pattern():
    assert describe_pattern(("attn", "ff") * 8) == "8 x (attn, ff)"
    assert describe_pattern(("mamba",) * 3) == "3 x (mamba)"
    assert describe_pattern(("attn", "ff", "mamba")) == "1 x (attn, ff, mamba)"


def test_meta_build_leaves_init_functions_intact():
    param_counts(ZOO_PRESETS["smoke"].get("transformer"))
    w = torch.empty(1000)
    torch.nn.init.normal_(w)
    assert math.isclose(w.std().item(), 1.0, rel_tol=0.1)
