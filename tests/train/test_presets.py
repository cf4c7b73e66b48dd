"""Training presets against the model registry; planning a comparison; the paper's figures."""

from __future__ import annotations

import pytest

from ssmbench.errors import BadInput
from ssmbench.models.registry import get_model_set
from ssmbench.train.compare import CompareRequest, plan_compare
from ssmbench.train.presets import TRAIN_PRESETS, preset_for_suite


@pytest.mark.parametrize("name", list(TRAIN_PRESETS))
def test_presets_fit_their_model_sets(name: str) -> None:
    p = TRAIN_PRESETS[name]
    names = get_model_set(p.model_set).names()
    assert p.reference in names
    if p.paper is not None:
        assert set(p.paper.final_loss) <= set(names) and set(p.paper.steps_pct) <= set(names)
    assert p.train.batch_size % p.train.grad_accum == 0
    plan = plan_compare(CompareRequest(preset=name))
    assert plan.names == names and plan.reference == p.reference


def test_paper_v1_mirrors_the_paper() -> None:
    t = TRAIN_PRESETS["paper-v1"].train
    assert (t.steps, t.batch_size, t.seq_len, t.lr, t.grad_clip, t.warmup_frac) == (100_000, 256, 256, 1e-3,
                                                                                     0.5, 0.01)
    v2 = TRAIN_PRESETS["paper-v2-25m"].train
    assert (v2.seq_len, v2.batch_size, v2.steps, v2.schedule, v2.min_lr_frac, v2.weight_decay) == (
        1024, 64, 150_000, "cosine", 0.1, 0.1)
    assert v2.steps_metric == "train_loss_ema" and v2.ema_alpha == 0.001


def test_no_preset_repeats_data_and_gpu_presets_run_three_seeds() -> None:
    for name, p in TRAIN_PRESETS.items():
        # synthetic: the unbounded stream; paper presets: C4 sized for one pass of the planned tokens
        assert p.train.data_bytes is None, name
        assert p.seeds == (1 if name.endswith("smoke") else 3), name
    plan = plan_compare(CompareRequest(preset="small"))
    assert plan.seeds == (0, 1, 2)
    plan = plan_compare(CompareRequest(preset="small", seed=7, seeds=2, data_bytes=5_000_000))
    assert plan.seeds == (7, 8) and plan.train.data_bytes == 5_000_000
    assert plan_compare(CompareRequest()).seeds == (0,)
    for bad, message in ((dict(seeds=0), "--seeds must be at least 1"), (dict(data_bytes=0), "data-bytes")):
        with pytest.raises(BadInput, match=message):
            plan_compare(CompareRequest(**bad))


def test_paper_figures_only_for_the_papers_data_and_tokenizer() -> None:
    paper = TRAIN_PRESETS["paper-v1"].paper
    assert paper.setup_note("hf:c4", "gpt2") is None
    for data, tok in (("synthetic", "gpt2"), ("hf:c4", "bpe-4096"), ("pystdlib", "bytes")):
        note = paper.setup_note(data, tok)
        assert data in note and tok in note and "left out" in note


def test_experts_ablation_figures() -> None:
    plan = plan_compare(CompareRequest(preset="paper-v1", experts=8))
    assert plan.paper.final_loss["moe-mamba"] == 3.51 and plan.paper.steps_pct["moe-mamba"] == 91.0
    assert "moe" not in plan.paper.final_loss and plan.paper.final_loss["mamba"] == 3.51
    assert all(c.n_experts == 8 for n, c in plan.models if n in ("moe", "moe-mamba"))
    plan = plan_compare(CompareRequest(preset="paper-v1", experts=2))
    assert "moe-mamba" not in plan.paper.final_loss


def test_suite_alias_and_reference_fallback() -> None:
    assert preset_for_suite(None, "bytes").name == "bytes-smoke"
    assert preset_for_suite(None, None).name == "smoke"
    with pytest.raises(BadInput, match="belongs to suite"):
        preset_for_suite("smoke", "bytes")
    plan = plan_compare(CompareRequest(models=("transformer", "moe")))
    assert plan.reference == "transformer" and "not run" in plan.reference_note
    with pytest.raises(BadInput, match="no MoE models"):
        plan_compare(CompareRequest(suite="bytes", experts=4))
    with pytest.raises(BadInput, match="eval-mode sliding"):
        plan_compare(CompareRequest(eval_stride=4))
