"""--verify against decoders with planted state bugs: each must fail, correct code must pass.

Every model family: Mamba LM (mambabyte), Transformer with a KV cache (byte-transformer), MoE
(attention + experts), MoE-Mamba, MegaByte (global and local caches). The bugs are planted with
monkeypatch around the real code: a Mamba step that never writes its SSM state, a conv state that
never rolls, a KV cache that never keeps the new entry or keeps it in the wrong slot, a MegaByte
global cache emptied at every patch.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import ssmbench.layers.mamba as mamba_layer
from ssmbench.generate.verify import (
    SENSITIVITY_MARGIN,
    amplify_memory,
    verify_cached_decoding,
    verify_tolerance,
)
from ssmbench.layers.attention import CausalSelfAttention
from ssmbench.models.megabyte import MegaByte
from ssmbench.models.registry import build_model, get_model_set


def _configs() -> dict:
    smoke = dict(get_model_set("gen-smoke").models)
    zoo = dict(get_model_set("smoke").models)
    # capacity for every token also in the forward pass, so routing cannot differ from decoding's
    roomy = {"capacity_factor": float(zoo["moe"].n_experts)}
    return {
        "mambabyte": smoke["mambabyte"],
        "byte-transformer": smoke["byte-transformer"],
        "megabyte": smoke["megabyte"],
        "moe": replace(zoo["moe"], **roomy),
        "moe-mamba": replace(zoo["moe-mamba"], **roomy),
    }


CONFIGS = _configs()


def _model(name: str, amplify: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(CONFIGS[name]).float().eval()
    return amplify_memory(model) if amplify else model


def ssm_state_never_written(monkeypatch) -> None:
    real = mamba_layer.selective_state_update
    monkeypatch.setattr(mamba_layer, "selective_state_update",
                        lambda state, *a, **k: real(state.clone(), *a, **k))


def conv_state_never_rolls(monkeypatch) -> None:
    real = mamba_layer.causal_conv1d_update
    monkeypatch.setattr(mamba_layer, "causal_conv1d_update",
                        lambda x, conv, *a, **k: real(x, conv.clone(), *a, **k))


def kv_never_appended(monkeypatch) -> None:
    real = CausalSelfAttention.step

    def step(self, x, cache, pos):
        p = int(pos)
        old_k, old_v = cache.k[:, :, p].clone(), cache.v[:, :, p].clone()
        y = real(self, x, cache, pos)
        cache.k[:, :, p], cache.v[:, :, p] = old_k, old_v  # the new key/value is not kept
        return y

    monkeypatch.setattr(CausalSelfAttention, "step", step)


def kv_in_wrong_slot(monkeypatch) -> None:
    real = CausalSelfAttention.step

    def step(self, x, cache, pos):
        p = int(pos)
        y = real(self, x, cache, pos)
        if p > 0:  # kept one slot too early, over the previous position's entry
            cache.k[:, :, p - 1], cache.v[:, :, p - 1] = cache.k[:, :, p].clone(), cache.v[:, :, p].clone()
        return y

    monkeypatch.setattr(CausalSelfAttention, "step", step)


def megabyte_global_cache_reset_each_patch(monkeypatch) -> None:
    real = MegaByte.step

    def step(self, idx_t, cache):
        if (cache.seqlen_offset + 1) % self.cfg.patch_size == 0:
            offset = cache.global_cache.seqlen_offset
            cache.global_cache.reset()
            cache.global_cache.seqlen_offset = offset
        return real(self, idx_t, cache)

    monkeypatch.setattr(MegaByte, "step", step)


BUGS = [
    ("mambabyte", ssm_state_never_written),
    ("mambabyte", conv_state_never_rolls),
    ("moe-mamba", ssm_state_never_written),
    ("moe-mamba", conv_state_never_rolls),
    ("byte-transformer", kv_never_appended),
    ("byte-transformer", kv_in_wrong_slot),
    ("moe", kv_never_appended),
    ("moe", kv_in_wrong_slot),
    ("megabyte", kv_never_appended),
    ("megabyte", kv_in_wrong_slot),
    ("megabyte", megabyte_global_cache_reset_each_patch),
]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_correct_decoders_pass(name: str) -> None:
    r = verify_cached_decoding(name, _model(name))
    assert r.passed, r.reason
    assert r.tolerance == verify_tolerance(torch.float32) and r.dtype == "float32"
    # the check could see a lost state: the prompt moves later logits far beyond the tolerance
    assert r.sensitivity >= SENSITIVITY_MARGIN * r.tolerance
    assert r.seq_len - r.prefill_len >= 64  # positions far past the prompt


@pytest.mark.parametrize("name,bug", BUGS, ids=[f"{n}-{b.__name__}" for n, b in BUGS])
def test_planted_state_bugs_fail(name: str, bug, monkeypatch) -> None:
    model = _model(name)
    bug(monkeypatch)
    r = verify_cached_decoding(name, model)
    assert not r.passed
    # by far: the error is the state's share of the logits, not rounding
    assert r.error > 100 * r.tolerance, r
    assert "differ" in r.reason


def test_a_ssm_bug_hides_under_random_init_weights(monkeypatch) -> None:
    """Why the weights are amplified: with the model's own init a lost SSM state moves the logits
    by little, and the check reports that it cannot see state rather than passing."""
    clean = verify_cached_decoding("mambabyte", _model("mambabyte", amplify=False))
    assert not clean.passed and "insensitive" in clean.reason
    assert clean.error <= clean.tolerance
    ssm_state_never_written(monkeypatch)
    broken = verify_cached_decoding("mambabyte", _model("mambabyte", amplify=False))
    assert broken.error < 100 * broken.tolerance  # small: the old max-abs check passed it


def test_amplify_memory_keeps_norms_biases_and_mamba_skip() -> None:
    torch.manual_seed(0)
    model = build_model(CONFIGS["mambabyte"]).float()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    amplify_memory(model, seed=3)
    after = dict(model.named_parameters())

    def kept(name: str) -> bool:
        if name.endswith("dt_proj.bias"):  # set for slow decay
            return False
        return "norm" in name or name.endswith((".bias", ".D", "dt_proj.weight"))

    for name, old in before.items():
        assert torch.equal(old, after[name]) == kept(name), name
    w = after["blocks.0.layer.in_proj.weight"]
    assert w.std().item() == pytest.approx(w.shape[-1] ** -0.5, rel=0.1)
    A = -torch.exp(after["blocks.0.layer.A_log"])
    assert (A >= -0.2).all() and (A <= -0.02).all()


class _GeneratorNeedsItsDevice(torch.overrides.TorchFunctionMode):
    """Stands in for ``with torch.device("cuda")`` on a CPU machine: there, a factory call given a
    CPU generator but no device is made on the GPU and fails ("Expected a 'cuda' device type for
    generator"). Here such a call fails the same way, whatever the default device."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("generator") is not None and kwargs.get("device") is None:
            raise RuntimeError(f"{func.__name__} got a generator but no device")
        return func(*args, **kwargs)


def test_verify_draws_on_the_cpu_under_another_default_device() -> None:
    """gen-speed --verify builds models under ``torch.device(cuda)``: every draw from the check's
    CPU generator names the CPU, so the check runs on a GPU (it raised there once)."""
    model = build_model(CONFIGS["mambabyte"]).float().eval()
    with _GeneratorNeedsItsDevice():
        amplify_memory(model)
        result = verify_cached_decoding("mambabyte", model, seed=0)
    assert result.passed, result.reason
