"""Parameter counts and FLOPs per token/byte, checked against formulas computed here and the papers' sizes."""

import math

import pytest
import torch

from ssmbench.models.byte_sets import BYTE_MODEL_SETS
from ssmbench.models.config import LMConfig, MegaByteConfig
from ssmbench.models.lm import LM
from ssmbench.models.megabyte import MegaByte
from ssmbench.models.size import (
    flops_per_token,
    lm_flops_per_token,
    megabyte_flops_per_byte,
    megabyte_stack_params,
    param_counts,
)
from ssmbench.models.zoo_sets import ZOO_MODEL_SETS


def norm_params(d: int) -> int:
    return 2 * d  # LayerNorm weight and bias


def attn_params(d: int) -> int:
    return 4 * d * d  # fused QKV and output projection, no biases


def mamba_params(d: int, N: int = 16, expand: int = 2, d_conv: int = 4) -> int:
    """in_proj, conv (+bias), x_proj, dt_proj (+bias), A_log, D, out_proj."""
    di, r = expand * d, math.ceil(d / 16)
    return d * 2 * di + di * d_conv + di + di * (r + 2 * N) + r * di + di + di * N + di + di * d


def moe_params(d: int, width: int, n_experts: int) -> tuple[int, int]:
    """(total, active): router + every expert, router + one expert."""
    expert = 2 * d * width
    return d * n_experts + n_experts * expert, d * n_experts + expert


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


def test_paper_v1_counts_follow_the_formulas():
    ms = ZOO_MODEL_SETS["paper-v1"]
    d, V, n, E = 512, 50257, 8, 32
    norms = (2 * n + 1) * norm_params(d)  # one per sub-layer and the final one
    counts = {name: param_counts(cfg) for name, cfg in ms.models}
    ff = lambda width: 2 * d * width  # noqa: E731
    moe_total, moe_active = moe_params(d, 2048, E)
    mm_total, mm_active = moe_params(d, 1536, E)
    expected = {
        "transformer": (n * (attn_params(d) + ff(2048)),) * 2,
        "mamba": (2 * n * mamba_params(d),) * 2,
        "mamba-mlp": (n * (mamba_params(d) + ff(1536)),) * 2,
        "moe": (n * (attn_params(d) + moe_total), n * (attn_params(d) + moe_active)),
        "moe-mamba": (n * (mamba_params(d) + mm_total), n * (mamba_params(d) + mm_active)),
    }
    for name, (total, active) in expected.items():
        c = counts[name]
        assert (c.total_nonembed, c.active_nonembed) == (total + norms, active + norms), name
        assert c.total - c.total_nonembed == 2 * V * d, name  # embedding and untied LM head
    # the paper's Transformer-MoE: 545M total / 25M active non-embedding
    assert counts["moe"].total_nonembed == pytest.approx(545e6, rel=0.04)
    assert counts["moe"].active_nonembed == pytest.approx(25e6, rel=0.04)
    # a Mamba layer is a little over 6 d^2
    assert 6 * d * d < mamba_params(d) < 6.5 * d * d


@pytest.mark.parametrize("set_name", list(ZOO_MODEL_SETS))
def test_each_moe_model_is_its_dense_sibling_plus_experts(set_name):
    ms = ZOO_MODEL_SETS[set_name]
    for moe, dense in (("moe", "transformer"), ("moe-mamba", "mamba-mlp")):
        cfg = ms.get(moe)
        c, dc = param_counts(cfg), param_counts(ms.get(dense))
        routers = len(cfg.pattern) // 2 * cfg.d_model * cfg.n_experts
        assert c.active_nonembed == dc.active_nonembed + routers, (set_name, moe)


def test_flops_per_token_convention():
    T, d, V, N = 100, 32, 50, 8
    cfg = LMConfig(vocab_size=V, d_model=d, pattern=("attn", "ff", "mamba", "moe"), n_heads=4, d_ff=64,
                   d_expert=48, n_experts=6, d_state=N)  # fmt: skip
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
    scan = 2 * d * (9 * N + 2 + 5)  # per channel: 9 per state element, D skip 2, z gate 5
    assert lm_flops_per_token(cfg, T) == flops_per_token(cfg, T) == 2 * matmul + 4 * T * d + scan
    assert lm_flops_per_token(m, T) == lm_flops_per_token(cfg, T)
    assert flops_per_token(cfg, 2 * T) - flops_per_token(cfg, T) == 4 * T * d
    with pytest.raises(ValueError):
        flops_per_token(cfg, 0)


def megabyte_formula(cfg: MegaByteConfig, seq_len: int) -> tuple[int, int, int]:
    """(global params, local params, forward FLOPs per byte) of the MegaByte design, by hand."""
    P, dg, dl = cfg.patch_size, cfg.d_global, cfg.d_local
    block = lambda d: 12 * d * d + 2 * norm_params(d)  # noqa: E731  attention 4d^2 + FF 8d^2 (ff_mult 4)
    glob = cfg.n_global_layers * block(dg) + norm_params(dg) + dg  # final norm, padding patch
    local = cfg.n_local_layers * block(dl) + norm_params(dl) + dl  # final norm, padding byte
    layer_flops = lambda d, ctx: 2 * 12 * d * d + 4 * ctx * d  # noqa: E731
    per_patch = cfg.n_global_layers * layer_flops(dg, seq_len // P)
    per_byte = 2 * (dg // P) * dl + cfg.n_local_layers * layer_flops(dl, P) + 2 * dl * cfg.vocab_size
    return glob, local, per_patch // P + per_byte


def test_megabyte_counts_follow_the_formula():
    cfg = MegaByteConfig(patch_size=4, d_global=64, n_global_layers=2, n_global_heads=4, d_local=32,
                         n_local_layers=3, n_local_heads=4)  # fmt: skip
    model = MegaByte(cfg)
    glob, local, flops = megabyte_formula(cfg, 64)
    assert megabyte_stack_params(cfg) == megabyte_stack_params(model) == (glob, local)
    assert megabyte_flops_per_byte(cfg, 64) == megabyte_flops_per_byte(model, 64) == flops_per_token(cfg, 64)
    assert megabyte_flops_per_byte(cfg, 64) == flops
    c = param_counts(model)
    to_local = (64 // 4) * 32
    assert c.total_nonembed == c.active_nonembed == glob + local + to_local
    assert c.total - c.total_nonembed == 256 * (64 // 4) + 256 * 32 + 32 * 256  # byte embeddings, head
    with pytest.raises(ValueError):
        megabyte_flops_per_byte(cfg, 0)


def test_megabyte_758m_262m_is_the_named_size_at_mambabytes_flops():
    paper = BYTE_MODEL_SETS["bytes-paper"]
    mega, mamba = paper.get("megabyte-758m-262m"), paper.get("mambabyte-353m")
    glob, local, flops = megabyte_formula(mega, 8192)
    assert megabyte_stack_params(mega) == (glob, local)
    assert glob == pytest.approx(758e6, rel=0.01) and local == pytest.approx(262e6, rel=0.01)
    d, N = mamba.d_model, mamba.d_state
    mamba_flops = len(mamba.pattern) * (
        # matmul and conv weights: all but the conv and dt biases, D and A_log (d_inner each, A_log x N)
        2 * (mamba_params(d) - 3 * 2 * d - 2 * d * N)
        + 2 * d * (9 * N + 7)
    ) + 2 * d * 256
    assert flops_per_token(mamba, 8192) == mamba_flops
    assert flops_per_token(mega, 8192) == flops
    assert flops == pytest.approx(mamba_flops, rel=0.05)
    assert param_counts(mamba).total_nonembed == pytest.approx(353e6, rel=0.01)


def test_big_sets_count_without_allocating():
    counts = param_counts(ZOO_MODEL_SETS["paper-v2-100m"].get("moe-mamba"))
    assert counts.total > 1.5e9  # 1.7B parameters counted on the meta device
    assert 90e6 < counts.active_nonembed < 115e6


def test_meta_build_leaves_init_functions_intact():
    param_counts(ZOO_MODEL_SETS["smoke"].get("transformer"))
    w = torch.empty(1000)
    torch.nn.init.normal_(w)
    assert math.isclose(w.std().item(), 1.0, rel_tol=0.1)
