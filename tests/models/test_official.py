"""mamba_ssm's model as a reference row: names, counts, the unavailable path (mamba_ssm is not
installed here), and the wrapper's plumbing on a stand-in ``mamba_ssm`` package."""

from __future__ import annotations

import sys
import types
from collections import namedtuple
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.models.describe import describe_model_set
from ssmbench.models.official import (
    OfficialMambaConfig,
    OfficialMambaLM,
    display_name,
    official_available,
    reference_names,
    with_references,
)
from ssmbench.models.registry import build_model, get_model_set
from ssmbench.models.size import param_counts
from tests.helpers import assert_close

CFG = OfficialMambaConfig(vocab_size=50, d_model=16, n_layer=2, d_state=4)


def test_reference_names_and_display():
    zoo = get_model_set("smoke")
    assert reference_names(zoo) == ["mamba@mamba_ssm"]
    extended = with_references(zoo, ["mamba", "mamba@mamba_ssm"])
    assert extended.names() == [*zoo.names(), "mamba@mamba_ssm"]
    official = extended.get("mamba@mamba_ssm")
    mamba = zoo.get("mamba")
    assert official == OfficialMambaConfig.like(mamba)
    assert (official.d_model, official.vocab_size) == (mamba.d_model, mamba.vocab_size)
    assert official.n_layer == len(mamba.pattern)
    assert with_references(zoo, ["mamba"]) is zoo
    assert display_name("mamba@mamba_ssm") == "mamba (mamba_ssm)" and display_name("mamba") == "mamba"
    with pytest.raises(BadInput, match="choose from mamba@mamba_ssm"):
        with_references(zoo, ["moe-mamba@mamba_ssm"])
    assert reference_names(get_model_set("bytes-smoke")) == ["mambabyte@mamba_ssm"]


def test_mamba_config_matches_ours():
    kw = CFG.mamba_config()
    assert kw["ssm_cfg"] == {"layer": "Mamba1", "d_state": 4, "d_conv": 4, "expand": 2, "dt_rank": "auto"}
    assert (kw["rms_norm"], kw["fused_add_norm"], kw["residual_in_fp32"], kw["tie_embeddings"]) == (
        False, True, True, False,
    )  # fmt: skip
    assert kw["d_intermediate"] == 0 and kw["pad_vocab_size_multiple"] == 8


@pytest.mark.skipif(official_available() is None, reason="mamba_ssm is installed here")
def test_unavailable_without_mamba_ssm():
    assert "mamba_ssm is not importable" in official_available()
    with pytest.raises(BackendUnavailable, match="mamba_ssm is not importable"):
        build_model(CFG)
    # counted as ssmbench's LM of the same shape
    assert param_counts(CFG) == param_counts(CFG.equivalent_lm())
    row = describe_model_set(with_references(get_model_set("smoke"), ["mamba@mamba_ssm"]))[-1]
    ours = describe_model_set(get_model_set("smoke"))[1]
    assert row["name"] == "mamba@mamba_ssm" and ours["name"] == "mamba"
    assert row["params_total"] == ours["params_total"] and row["flops_per_token"] == ours["flops_per_token"]


class _FakeMambaLMHeadModel(nn.Module):
    """Stands in for mamba_ssm's MambaLMHeadModel: its constructor, forward and generate
    signatures, its padded vocabulary; embedding -> LayerNorm -> untied head inside."""

    def __init__(self, config: Any, initializer_cfg: Any = None, device: Any = None, dtype: Any = None):
        super().__init__()
        self.config = config
        pad = config.pad_vocab_size_multiple
        vocab = -(-config.vocab_size // pad) * pad
        self.backbone = nn.Module()
        self.backbone.embedding = nn.Embedding(vocab, config.d_model)
        self.backbone.norm_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, vocab, bias=False)

    def forward(self, input_ids, position_ids=None, inference_params=None, num_last_tokens=0):
        h = self.backbone.norm_f(self.backbone.embedding(input_ids))
        if num_last_tokens > 0:
            h = h[:, -num_last_tokens:]
        return namedtuple("CausalLMOutput", ["logits"])(self.lm_head(h))

    def generate(self, input_ids, max_length, top_k=1, top_p=0.0, min_p=0.0, temperature=1.0,
                 return_dict_in_generate=False, output_scores=False, **kwargs):  # fmt: skip
        vocab_size = kwargs.get("vocab_size")
        seq = input_ids
        while seq.shape[1] < max_length:
            logits = self(seq).logits[:, -1, :vocab_size]
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
        return seq


@pytest.fixture
def fake_mamba_ssm(monkeypatch):
    """A stand-in mamba_ssm package in sys.modules; its model runs on CPU."""
    config_module = types.ModuleType("mamba_ssm.models.config_mamba")
    config_module.MambaConfig = lambda **kw: types.SimpleNamespace(**kw)
    models_module = types.ModuleType("mamba_ssm.models.mixer_seq_simple")
    models_module.MambaLMHeadModel = _FakeMambaLMHeadModel
    generation = types.ModuleType("mamba_ssm.utils.generation")
    generation.InferenceParams = lambda max_seqlen, max_batch_size: types.SimpleNamespace(
        max_seqlen=max_seqlen, max_batch_size=max_batch_size, seqlen_offset=0
    )
    for name, module in {
        "mamba_ssm": types.ModuleType("mamba_ssm"), "mamba_ssm.models": types.ModuleType("mamba_ssm.models"),
        "mamba_ssm.models.config_mamba": config_module, "mamba_ssm.models.mixer_seq_simple": models_module,
        "mamba_ssm.utils": types.ModuleType("mamba_ssm.utils"), "mamba_ssm.utils.generation": generation,
    }.items():  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(OfficialMambaLM, "DEVICE_TYPES", ("cuda", "cpu"))


def test_wrapper_returns_our_output_and_loss(fake_mamba_ssm):
    model = build_model(CFG)
    assert isinstance(model, OfficialMambaLM) and official_available() is None
    assert model.model.config.ssm_cfg["d_state"] == 4 and model.model.config.rms_norm is False
    idx, tgt = torch.randint(0, 50, (2, 2, 7)).unbind(0)
    with torch.no_grad():
        model.model.lm_head.weight[50:] = 100.0  # padded rows: must not reach loss or logits
    out = model(idx, tgt)
    full = model.model(idx).logits  # (2, 7, 56): mamba_ssm pads 50 to a multiple of 8
    assert full.shape == (2, 7, 56) and out.logits.shape == (2, 7, 50)
    assert_close(out.logits, full[..., :50], 0.0, "logits")
    expected = F.cross_entropy(full[..., :50].reshape(-1, 50), tgt.reshape(-1))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.aux_loss.item() == 0.0 and out.moe_stats == []
    out.loss.backward()
    assert torch.equal(model.model.lm_head.weight.grad[50:], torch.zeros(6, 16))
    # counts: the real model's, built (on the meta device) now that mamba_ssm imports
    assert model.padding_params() == 2 * 6 * 16
    counts = param_counts(model)
    assert counts.total == sum(p.numel() for p in model.parameters()) - 2 * 6 * 16
    assert counts.total - counts.total_nonembed == 2 * 50 * 16
    assert param_counts(CFG) == counts


def test_wrapper_decoding_through_mamba_ssm(fake_mamba_ssm):
    model = build_model(CFG).eval()
    prompt = torch.randint(0, 50, (3, 4))
    seq = model.generate_official(prompt, 5)
    assert seq.shape == (3, 9) and torch.equal(seq[:, :4], prompt) and int(seq.max()) < 50
    last = model.prefill_official(prompt, 9)
    assert last.shape == (3, 50)
    assert_close(last, model(prompt).logits[:, -1], 1e-6, "prefill logits")


def test_wrapper_refuses_cpu_tensors(fake_mamba_ssm, monkeypatch):
    monkeypatch.setattr(OfficialMambaLM, "DEVICE_TYPES", ("cuda",))
    with pytest.raises(BackendUnavailable, match="needs CUDA"):
        build_model(CFG)(torch.zeros(1, 3, dtype=torch.long))
