"""pytest-benchmark suite: one training step (forward, backward, AdamW) of each five-way model.

The five-way zoo (Transformer, Mamba, Mamba-MLP, MoE, MoE-Mamba): on CUDA at the 'paper-v1' size
(d_model 512, GPT-2 vocabulary) with one micro-batch of the paper-v1 training preset (64 x 256
tokens, bf16 autocast, as `train-compare` runs it); on CPU the 'smoke' preset. SSMBENCH_BENCH_PRESET
overrides the preset. The loss is the model's cross-entropy plus its MoE load-balancing loss.
"""

from __future__ import annotations

import os

import pytest
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PRESET = os.environ.get("SSMBENCH_BENCH_PRESET", "paper-v1" if DEVICE.type == "cuda" else "smoke")
BATCH, SEQ = (64, 256) if DEVICE.type == "cuda" else (2, 64)


def _model_set():
    try:
        from ssmbench.models.registry import get_model_set

        return get_model_set(PRESET), None
    except ImportError as e:  # the model modules are written by another part of the project
        return None, f"model zoo not available yet ({e})"


MODEL_SET, WHY_NOT = _model_set()
NAMES = MODEL_SET.names() if MODEL_SET is not None else ["zoo"]


@pytest.mark.parametrize("name", NAMES)
def test_train_step(benchmark, synced, name):
    if MODEL_SET is None:
        pytest.skip(WHY_NOT)
    from ssmbench.models.registry import build_model

    cfg = MODEL_SET.get(name)
    torch.manual_seed(0)
    model = build_model(cfg).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (BATCH, SEQ + 1), generator=gen, device=DEVICE)
    x, y = idx[:, :-1], idx[:, 1:]  # (B, T)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=DEVICE.type == "cuda"):
            out = model(x, y)
        (out.loss + out.aux_loss).backward()
        opt.step()

    step()  # allocate optimizer state outside the timed rounds
    benchmark.extra_info.update(
        model=name, preset=PRESET, batch=BATCH, seq_len=SEQ,
        params=sum(p.numel() for p in model.parameters()),
    )
    benchmark(synced(step))
