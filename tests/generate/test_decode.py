"""Decoder, sampling and graph plans on the tiny byte models (CPU); --verify is test_verify.py's."""

from __future__ import annotations

import pytest
import torch

from ssmbench.errors import BadInput
from ssmbench.generate.decode import Decoder
from ssmbench.generate.graphs import (
    MegaByteCachePlan,
    bucket_for,
    bucket_lengths,
    keys_for,
    kv_view,
    plan_for,
)
from ssmbench.generate.sampling import Sampling, sample_next
from ssmbench.generate.verify import amplify_memory, verify_cached_decoding
from ssmbench.models.byte_sets import BYTE_MODEL_SETS
from ssmbench.models.megabyte import MegaByte
from ssmbench.models.registry import build_model

SMOKE = BYTE_MODEL_SETS["gen-smoke"].models


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: build_model(cfg).eval() for name, cfg in SMOKE}


@pytest.mark.parametrize("name", [n for n, _ in SMOKE])
def test_greedy_decoding_matches_rerunning_the_prefix(models, name: str) -> None:
    """Cached greedy decoding produces the bytes that full forward passes over the growing
    sequence pick (the slow way: re-running the whole prefix for every byte)."""
    model = models[name]
    prompt = torch.randint(0, 256, (2, 5))
    N = 11
    cache = model.allocate_inference_cache(2, 5 + N)
    dec = Decoder(model, cache, batch_size=2, prompt_len=5, gen_len=N, sampling=Sampling(), cuda_graph=False)
    out, timing = dec.generate(prompt, probe_steps=[1, 3], window=4)
    seq = prompt
    with torch.no_grad():
        for _ in range(N):
            nxt = model(seq).logits[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    assert torch.equal(out, seq[:, 5:])
    assert timing.n_steps == N - 1 and set(timing.step_ms_at) == {5, 7}
    assert timing.total_ms >= timing.decode_ms > 0
    # a second run reuses the buffers and gives the same bytes
    again, _ = dec.generate(prompt)
    assert torch.equal(again, out)


def test_decoder_rejects_wrong_prompt_and_sizes(models) -> None:
    model = models["mambabyte"]
    cache = model.allocate_inference_cache(1, 8)
    dec = Decoder(model, cache, batch_size=1, prompt_len=4, gen_len=4, sampling=Sampling(), cuda_graph=True)
    assert dec.path == "eager (no CUDA)"
    with pytest.raises(ValueError, match="4-byte prompt"):
        dec.prefill(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        Decoder(model, cache, batch_size=1, prompt_len=4, gen_len=0, sampling=Sampling(), cuda_graph=False)


def test_sampling() -> None:
    logits = torch.randn(64, 256)
    assert torch.equal(sample_next(logits, Sampling()), logits.argmax(-1))
    assert torch.equal(sample_next(logits, Sampling(greedy=False, top_k=1)), logits.argmax(-1))
    top3 = logits.topk(3, dim=-1).indices
    for _ in range(5):
        s = sample_next(logits, Sampling(greedy=False, top_k=3, temperature=2.0))
        assert (top3 == s[:, None]).any(-1).all()
    # sampling follows the distribution: a two-way logit gap of ln 3 gives about 3:1
    two = torch.full((4000, 4), -1e9)
    two[:, 0], two[:, 1] = torch.log(torch.tensor(3.0)), 0.0
    frac = (sample_next(two, Sampling(greedy=False)) == 0).float().mean().item()
    assert 0.70 < frac < 0.80
    with pytest.raises(BadInput):
        Sampling(temperature=0.0)
    with pytest.raises(BadInput):
        Sampling(top_k=0)


def test_buckets_and_megabyte_graph_keys(models) -> None:
    assert bucket_lengths(300) == [64, 128, 256, 300]
    assert bucket_lengths(50) == [50]
    assert bucket_for(65, [64, 128, 256, 300]) == 128
    model: MegaByte = models["megabyte"]
    P = model.cfg.patch_size
    cache = model.allocate_inference_cache(1, 40)
    plan = plan_for(model, cache)
    assert isinstance(plan, MegaByteCachePlan)
    keys = keys_for(plan, range(3, 40))
    # one graph per in-patch offset, plus the global step's bucket(s)
    assert {k[0] for k in keys} == set(range(P))
    for key in keys:
        view = plan.capture_view(key)
        assert plan.key(view.seqlen_offset) == key


def test_kv_view_shares_buffers(models) -> None:
    model = models["byte-transformer"]
    cache = model.allocate_inference_cache(1, 100)
    cache.use_static_positions("cpu")
    view = kv_view(cache, 64)
    kv = next(s for s in view.layer_states if s is not None)
    full = next(s for s in cache.layer_states if s is not None)
    kv.k[0, 0, 5, 0] = 7.0
    assert full.k[0, 0, 5, 0].item() == 7.0 and kv.max_seqlen == 64
    assert view.position is cache.position


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", [n for n, _ in SMOKE])
def test_cuda_graph_decoding_matches_eager(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(dict(SMOKE)[name]).cuda().eval()
    amplify_memory(model)
    r = verify_cached_decoding(name, model, seq_len=150, prefill_len=7, cuda_graph=True)
    assert r.path.startswith("cuda-graph"), r.path
    assert r.passed, r
