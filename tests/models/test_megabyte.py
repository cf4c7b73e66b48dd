"""MegaByte: shapes, loss, causality by perturbation, cached decoding == forward."""

from __future__ import annotations

import math

import pytest
import torch

from ssmbench.models.config import MegaByteConfig
from ssmbench.models.megabyte import MegaByte
from ssmbench.models.size import megabyte_flops_per_byte
from tests.helpers import assert_close

CFG = MegaByteConfig(
    patch_size=4, d_global=32, n_global_layers=2, n_global_heads=2, d_local=24, n_local_layers=2,
    n_local_heads=2,
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def model() -> MegaByte:
    return MegaByte(CFG).eval()


@pytest.mark.parametrize("T", [1, 4, 13])
def test_forward_shapes_and_loss(model: MegaByte, T: int) -> None:
    idx = torch.randint(0, 256, (3, T))
    targets = torch.randint(0, 256, (3, T))
    out = model(idx, targets)
    assert out.logits.shape == (3, T, 256)
    assert out.aux_loss.item() == 0.0
    # near-uniform predictions at init: loss close to ln 256, and equal to a hand-computed CE
    ref = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 256), targets.reshape(-1))
    assert abs(out.loss.item() - ref.item()) < 1e-6
    assert abs(out.loss.item() - math.log(256)) < 0.5


def test_loss_counts_byte_zero(model: MegaByte) -> None:
    """Byte value 0 is a real byte: all-zero targets give a finite loss that moves with them."""
    idx = torch.randint(0, 256, (2, 9))
    zeros = model(idx, torch.zeros(2, 9, dtype=torch.long)).loss
    ones = model(idx, torch.ones(2, 9, dtype=torch.long)).loss
    assert torch.isfinite(zeros) and zeros.item() != ones.item()


def test_causality_by_perturbation(model: MegaByte) -> None:
    """Changing byte t never changes logits at positions < t, and does change position t."""
    T = 14
    idx = torch.randint(0, 256, (1, T))
    with torch.no_grad():
        base = model(idx).logits
        for t in range(T):
            other = idx.clone()
            other[0, t] = (other[0, t] + 97) % 256
            diff = (model(other).logits - base).abs().amax(dim=-1)[0]  # (T,)
            assert diff[:t].max().item() == 0.0 if t else True, f"byte {t} leaked into earlier logits"
            assert diff[t].item() > 0, f"logits at {t} ignore byte {t}"


def test_global_model_sees_only_past_patches(model: MegaByte) -> None:
    """The global output for patch k depends on patches < k only (the padding-patch offset)."""
    idx = torch.randint(0, 256, (1, 12))
    with torch.no_grad():
        _, g_in, _ = model._native(idx)
        g = model.global_model(g_in)
        idx2 = idx.clone()
        idx2[0, 5] += 1  # patch 1
        _, g_in2, _ = model._native(idx2)
        g2 = model.global_model(g_in2)
    assert torch.equal(g[:, :2], g2[:, :2])
    assert not torch.equal(g[:, 2], g2[:, 2])


@pytest.mark.parametrize("prefill_len,static", [(1, False), (4, False), (7, True), (8, True)])
def test_decode_equals_forward(model: MegaByte, prefill_len: int, static: bool) -> None:
    L = 23
    idx = torch.randint(0, 256, (2, L))
    with torch.no_grad():
        ref = model(idx).logits
        cache = model.allocate_inference_cache(2, L)
        if static:
            cache.use_static_positions("cpu")
        got = [model.prefill(idx[:, :prefill_len], cache)]
        for t in range(prefill_len, L):
            got.append(model.step(idx[:, t], cache)[:, None])
    assert_close(torch.cat(got, dim=1), ref, 1e-5, f"prefill {prefill_len}, static {static}")
    assert cache.seqlen_offset == L


def test_decode_after_reset_and_cache_errors(model: MegaByte) -> None:
    idx = torch.randint(0, 256, (1, 9))
    cache = model.allocate_inference_cache(1, 9)
    with torch.no_grad():
        first = model.prefill(idx, cache)
        with pytest.raises(ValueError, match="empty cache"):
            model.prefill(idx, cache)
        with pytest.raises(ValueError, match="left"):
            model.step(idx[:, 0], cache)
        cache.reset()
        again = model.prefill(idx, cache)
    assert torch.equal(first, again)


def test_megabyte_flops_per_byte() -> None:
    f = megabyte_flops_per_byte(CFG, 64)
    m = MegaByte(CFG)
    assert megabyte_flops_per_byte(m, 64) == f
    # local model and head run per byte; doubling the local depth adds 2 * its weights per byte
    from dataclasses import replace

    deeper = megabyte_flops_per_byte(replace(CFG, n_local_layers=4), 64)
    local_weights = sum(p.numel() for p in m.local_model.parameters() if p.dim() == 2)
    assert deeper - f == 2 * local_weights + 2 * 4 * CFG.patch_size * CFG.d_local  # + 4 P d per layer
    with pytest.raises(ValueError):
        megabyte_flops_per_byte(CFG, 0)
