"""Zoo model sets hold the paper's five patterns and widths; --experts changes only the MoE models."""

import pytest

from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig
from ssmbench.models.registry import get_model_set
from ssmbench.models.zoo_sets import ZOO_MODEL_SETS, ZOO_MODELS, with_experts


@pytest.mark.parametrize("set_name", list(ZOO_MODEL_SETS))
def test_every_set_holds_the_five_patterns_and_widths(set_name):
    ms = ZOO_MODEL_SETS[set_name]
    assert tuple(ms.names()) == ZOO_MODELS
    n = len(ms.get("transformer").pattern) // 2
    assert ms.get("transformer").pattern == ("attn", "ff") * n
    assert ms.get("mamba").pattern == ("mamba",) * (2 * n)
    assert ms.get("mamba-mlp").pattern == ("mamba", "ff") * n
    assert ms.get("moe").pattern == ("attn", "moe") * n
    assert ms.get("moe-mamba").pattern == ("mamba", "moe") * n
    for _, cfg in ms.models:
        assert cfg.d_model == ms.get("transformer").d_model
        assert cfg.d_model % cfg.n_heads == 0
    # experts as wide as the FF each MoE model's dense sibling has in their place
    assert ms.get("moe").d_expert == ms.get("transformer").d_ff
    assert ms.get("moe-mamba").d_expert == ms.get("mamba-mlp").d_ff < ms.get("transformer").d_ff


def test_paper_v1_values():
    ms = get_model_set("paper-v1")
    t, mm, moe, mmoe = (ms.get(n) for n in ("transformer", "mamba-mlp", "moe", "moe-mamba"))
    assert (t.d_model, t.d_ff, t.n_heads, t.vocab_size) == (512, 2048, 8, 50257)
    assert mm.d_ff == 1536 and mmoe.d_expert == 1536 and mmoe.n_experts == 32
    assert moe.d_expert == 2048 and moe.n_experts == 32
    assert (mmoe.capacity_factor, mmoe.lb_loss_weight) == (1.0, 0.01)
    assert ms.seq_len == 256


def test_with_experts():
    ms = with_experts(ZOO_MODEL_SETS["smoke"], 2)
    assert ms.get("moe").n_experts == ms.get("moe-mamba").n_experts == 2
    assert ms.get("transformer") == ZOO_MODEL_SETS["smoke"].get("transformer")
    assert ms.seq_len == ZOO_MODEL_SETS["smoke"].seq_len and "2 experts" in ms.description
    with pytest.raises(BadInput):
        with_experts(ms, 0)


def test_vocab_can_be_replaced_for_a_tokenizer():
    ms = ZOO_MODEL_SETS["paper-v1"].replace_all(vocab_size=4096)
    assert all(isinstance(c, LMConfig) and c.vocab_size == 4096 for _, c in ms.models)
    assert ms.seq_len == 256
