"""The pattern-built LM: decoding equals the full forward for every block kind; losses; gradients."""

import pytest
import torch
import torch.nn.functional as F

from ssmbench.models.config import LMConfig
from ssmbench.models.lm import LM, padded_vocab
from ssmbench.models.loss import RealLogits
from ssmbench.models.zoo_sets import ZOO_MODEL_SETS
from tests.helpers import assert_close

PATTERNS = {
    "transformer": ("attn", "ff") * 2,
    "mamba": ("mamba",) * 4,
    "mamba-mlp": ("mamba", "ff") * 2,
    "moe": ("attn", "moe") * 2,
    "moe-mamba": ("mamba", "moe") * 2,
}


def tiny(pattern: tuple[str, ...], **kw) -> LMConfig:
    base = dict(
        vocab_size=41, d_model=24, pattern=pattern, n_heads=3, d_ff=40, d_expert=20, n_experts=3,
        d_state=4, scan_backend="ref", step_backend="ref",
    )  # fmt: skip
    base.update(kw)
    return LMConfig(**base)


def decisive_routers(model: LM) -> LM:
    """Router weights large enough that some experts get more tokens than their capacity."""
    with torch.no_grad():
        for block in model.blocks:
            if block.kind == "moe":
                block.layer.router.weight.normal_(std=1.0)
    return model


@pytest.mark.parametrize("kind", list(PATTERNS))
def test_decode_equals_forward(kind):
    model = decisive_routers(LM(tiny(PATTERNS[kind])))  # capacity factor 1.0
    idx = torch.randint(0, 41, (2, 9))
    if "moe" in PATTERNS[kind]:
        # in training mode the capacity binds, so only eval mode's no-drop policy can match decoding
        assert any(float(s["dropped_fraction"]) > 0 for s in model(idx).moe_stats)
    model.eval()
    with torch.no_grad():
        out = model(idx)
        full = out.logits  # (2, 9, V)
        assert all(float(s["dropped_fraction"]) == 0 and s["capacity"] == 0 for s in out.moe_stats)
        cache = model.allocate_inference_cache(2, 12)
        stepped = torch.stack([model.step(idx[:, t], cache) for t in range(9)], dim=1)
        assert cache.seqlen_offset == 9
        cache.reset()
        pre = model.prefill(idx[:, :5], cache)
        rest = torch.stack([model.step(idx[:, t], cache) for t in range(5, 9)], dim=1)
    assert_close(stepped, full, 1e-4, f"{kind}: steps vs forward")
    assert_close(torch.cat([pre, rest], dim=1), full, 1e-4, f"{kind}: prefill + steps vs forward")


@pytest.mark.parametrize("kind", ["moe", "moe-mamba"])
def test_eval_logits_do_not_depend_on_batching(kind):
    model = decisive_routers(LM(tiny(PATTERNS[kind]))).eval()
    idx = torch.randint(0, 41, (6, 11))
    with torch.no_grad():
        whole = model(idx).logits  # (6, 11, V)
        one_by_one = torch.cat([model(idx[i : i + 1]).logits for i in range(6)])
        in_pairs = torch.cat([model(idx[i : i + 2]).logits for i in range(0, 6, 2)])
    assert_close(one_by_one, whole, 1e-5, f"{kind}: batch 1 vs 6")
    assert_close(in_pairs, whole, 1e-5, f"{kind}: batch 2 vs 6")


def test_static_positions_decode_equals_forward():
    model = LM(tiny(("attn", "mamba", "ff"))).eval()
    idx = torch.randint(0, 41, (1, 7))
    with torch.no_grad():
        full = model(idx).logits
        cache = model.allocate_inference_cache(1, 8)
        pre = model.prefill(idx[:, :3], cache)
        cache.use_static_positions("cpu")
        rest = torch.stack([model.step(idx[:, t], cache) for t in range(3, 7)], dim=1)
    assert cache.position.item() == 7 == cache.seqlen_offset
    assert_close(torch.cat([pre, rest], dim=1), full, 1e-4, "static-position steps vs forward")


def test_cache_overflow_is_refused():
    model = LM(tiny(("mamba",)))
    cache = model.allocate_inference_cache(1, 3)
    with pytest.raises(ValueError, match="has 3 left"):
        model.prefill(torch.zeros(1, 4, dtype=torch.long), cache)


def test_loss_aux_and_stats():
    model = LM(tiny(("attn", "moe") * 2, capacity_factor=1.0, lb_loss_weight=0.5))
    idx, tgt = torch.randint(0, 41, (2, 2, 11)).unbind(0)
    out = model(idx, tgt)
    assert out.logits.shape == (2, 11, 41)
    assert out.loss.item() == pytest.approx(
        F.cross_entropy(out.logits.reshape(-1, 41), tgt.reshape(-1)).item()
    )
    assert len(out.moe_stats) == 2
    for s in out.moe_stats:
        assert s["expert_fraction"].shape == (3,) and s["expert_fraction"].sum().item() == pytest.approx(1.0)
        assert 0 <= float(s["dropped_fraction"]) < 1 and s["dispatch"] == "bmm"
    # lb loss of each layer is >= 1 (equality at perfect balance), times the weight 0.5
    assert out.aux_loss.item() >= 0.5 * 2 * 0.999
    dense = LM(tiny(("attn", "ff")))(idx, tgt)
    assert dense.aux_loss.item() == 0 and dense.moe_stats == []


@pytest.mark.parametrize("name", list(PATTERNS))
def test_gradient_reaches_every_parameter(name):
    cfg = ZOO_MODEL_SETS["smoke"].get(name)
    model = LM(tiny(cfg.pattern, capacity_factor=1.0))
    idx = torch.randint(0, 41, (2, 10))
    out = model(idx, idx.roll(-1, dims=1))
    (out.loss + out.aux_loss).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_kernel_paths_recorded():
    model = LM(tiny(("mamba", "moe")))
    assert model.kernel_paths() == {}
    model(torch.randint(0, 41, (1, 5)))
    assert model.kernel_paths() == {
        "scan_backend": "ref", "conv_backend": "ref", "moe_dispatch": "bmm", "norm_backend": "ref"
    }
    model.step(torch.zeros(1, dtype=torch.long), model.allocate_inference_cache(1, 2))
    assert model.kernel_paths()["step_backend"] == "ref"


def test_init_scales_residual_projections():
    model = LM(tiny(("attn", "ff") * 8, d_model=96, n_heads=4, d_ff=384))
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = model.blocks[1].layer.down.weight.std().item()
    assert residual == pytest.approx(0.02 / 4, rel=0.1)  # 16 sub-layers


def test_padded_head_loss_and_logits_are_the_real_vocabularys():
    """vocab 41 -> 64 head rows: loss, logits and gradients equal an unpadded head's; the padding
    rows, whatever they hold, change nothing and get zero gradient."""
    assert padded_vocab(41) == 64 and padded_vocab(64) == 64 and padded_vocab(50257) == 50304
    model = LM(tiny(("mamba", "ff")))
    assert model.lm_head.weight.shape == (64, 24)
    assert torch.equal(model.lm_head.weight[41:], torch.zeros(23, 24))
    with torch.no_grad():
        model.lm_head.weight[41:] = 100 * torch.randn(23, 24)  # large logits, if they were read
    idx, tgt = torch.randint(0, 41, (2, 2, 11)).unbind(0)
    out = model(idx, tgt)
    h, y = model.embed(idx), None
    for block in model.blocks:
        h, y, _ = block(h, y)
    h = h + y
    w = model.lm_head.weight[:41].detach().clone().requires_grad_()
    ref_logits = model.norm_f(h).detach() @ w.t()  # (B, T, 41)
    ref_loss = F.cross_entropy(ref_logits.reshape(-1, 41), tgt.reshape(-1))
    assert out.logits.shape == (2, 11, 41)
    assert_close(out.logits, ref_logits, 1e-6, "logits")
    assert out.loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    out.loss.backward()
    ref_loss.backward()
    assert torch.equal(model.lm_head.weight.grad[41:], torch.zeros(23, 24))
    assert_close(model.lm_head.weight.grad[:41], w.grad, 1e-5, "head gradient")
    cache = model.allocate_inference_cache(2, 12)
    with torch.no_grad():
        assert model.prefill(idx[:, :3], cache).shape == (2, 3, 41)
        assert model.step(idx[:, 3], cache).shape == (2, 41)


def test_real_logits_forward_and_gradient():
    logits = torch.randn(5, 8, dtype=torch.bfloat16, requires_grad=True)
    real = RealLogits.apply(logits, 6)
    assert real.dtype == torch.float32 and real.is_contiguous()
    assert torch.equal(real, logits[:, :6].float())
    grad = torch.randn(5, 6)
    real.backward(grad)
    assert logits.grad.dtype == torch.bfloat16
    assert torch.equal(logits.grad[:, :6], grad.bfloat16())
    assert torch.equal(logits.grad[:, 6:], torch.zeros(5, 2, dtype=torch.bfloat16))


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-autocast"])
def test_fused_add_norm_equals_plain_forward(amp, device):
    """The forward with the fused Triton add + LayerNorm (interpreter on CPU) against the plain
    add then nn.LayerNorm: loss, logits and every gradient."""
    pytest.importorskip("triton")
    model = LM(tiny(("mamba", "moe", "attn", "ff"), capacity_factor=3.0)).to(device)
    idx, tgt = torch.randint(0, 41, (2, 2, 9), device=device).unbind(0)
    results = {}
    for backend in ("ref", "triton"):
        model.norm_backend = backend
        model.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(idx, tgt)
        (out.loss + out.aux_loss).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[backend] = (out.loss.item(), out.logits.float(), grads)
        assert model.kernel_paths()["norm_backend"] == backend
    tol = 2e-2 if amp else 1e-5
    assert results["triton"][0] == pytest.approx(results["ref"][0], rel=tol)
    assert_close(results["triton"][1], results["ref"][1], tol, "logits")
    for name, g in results["ref"][2].items():
        assert_close(results["triton"][2][name], g, 10 * tol, f"grad {name}")


def test_mamba_block_copies_pinned(device):
    """One more Mamba block in the LM (its layer, fused add + norm, residual) costs, forward +
    backward under bf16 autocast with the triton backends, three copies of activation-sized
    tensors (z for the scan, y for out_proj's weight gradient, dx and dz into in_proj's), none
    transposing, and one large elementwise op (the sum of u's two gradients): no casts around
    the norm. A new copy fails this test."""
    pytest.importorskip("triton")
    from ssmbench.bench.op_counts import count_ops

    B, T, D = 2, 128, 16

    def counts(n_layers: int) -> dict[str, int]:
        model = LM(LMConfig(vocab_size=64, d_model=D, pattern=("mamba",) * n_layers, d_state=4,
                            scan_backend="triton")).to(device)  # fmt: skip
        model.norm_backend = "triton"
        idx = torch.randint(0, 64, (B, T + 1), device=device)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = model(idx[:, :-1], idx[:, 1:])
            out.loss.backward()

        return count_ops(step, large=B * T * D).table()

    one, two = counts(1), counts(2)
    block = {k: two[k] - one[k] for k in one}
    assert block["large_copies"] == 3, block
    assert block["large_transposing_copies"] == 0, block
    assert block["large_elementwise"] == 1, block
