"""pytest-benchmark suite: one training step (forward, backward, AdamW) of each five-way model.

The five-way zoo (Transformer, Mamba, Mamba-MLP, MoE, MoE-Mamba): on CUDA at the 'paper-v1' size
(d_model 512, GPT-2 vocabulary) with one micro-batch of the paper-v1 training preset (64 x 256
tokens, bf16 autocast, as `train-compare` runs it); on CPU the 'smoke' preset. SSMBENCH_BENCH_PRESET
overrides the preset. The loss is the model's cross-entropy plus its MoE load-balancing loss; the
optimizer is the trainer's (``make_optimizer``: fused AdamW on CUDA, foreach elsewhere).

Beside our models: ``mamba@mamba_ssm``, mamba_ssm's own MambaLMHeadModel at the size of the set's
``mamba`` (``ssmbench.models.official``), with the same loss and optimizer; skipped with the
reason when mamba_ssm (or CUDA) is missing.
"""

from __future__ import annotations

import os

import pytest
import torch

from ssmbench.errors import BackendUnavailable
from ssmbench.models.official import reference_names, with_references
from ssmbench.models.registry import build_model, get_model_set
from ssmbench.models.size import param_counts
from ssmbench.train.loop import make_optimizer, optimizer_record
from ssmbench.train.presets import get_train_preset

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PRESET = os.environ.get("SSMBENCH_BENCH_PRESET", "paper-v1" if DEVICE.type == "cuda" else "smoke")
BATCH, SEQ = (64, 256) if DEVICE.type == "cuda" else (2, 64)
BASE_SET = get_model_set(PRESET)
MODEL_SET = with_references(BASE_SET, reference_names(BASE_SET))
# the optimisation settings (lr, betas, weight decay) of the paper-v1 training preset
TRAIN = get_train_preset("paper-v1").train


@pytest.mark.parametrize("name", MODEL_SET.names())
def test_train_step(benchmark, synced, name):
    cfg = MODEL_SET.get(name)
    torch.manual_seed(0)
    try:
        model = build_model(cfg).to(DEVICE)
    except BackendUnavailable as e:
        pytest.skip(f"{name}: {e}")
    opt = make_optimizer(model, TRAIN)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (BATCH, SEQ + 1), generator=gen, device=DEVICE)
    x, y = idx[:, :-1], idx[:, 1:]  # (B, T)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=DEVICE.type == "cuda"):
            out = model(x, y)
        (out.loss + out.aux_loss).backward()
        opt.step()

    try:
        step()  # allocate optimizer state outside the timed rounds
    except BackendUnavailable as e:
        pytest.skip(f"{name}: {e}")
    benchmark.extra_info.update(
        model=name, preset=PRESET, batch=BATCH, seq_len=SEQ, params=param_counts(model).total,
        optimizer=optimizer_record(opt), kernels=model.kernel_paths(),
    )  # fmt: skip
    benchmark(synced(step))
