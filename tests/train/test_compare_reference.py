"""train-compare with mamba_ssm's model as a reference row: without mamba_ssm it is a row with
status "unavailable" and the reason, and the other models run; the manifest names the optimizer."""

from __future__ import annotations

import json

import pytest

from ssmbench.errors import BadInput
from ssmbench.models.official import official_available
from ssmbench.report.train_compare import render_summary
from ssmbench.results import load_run
from ssmbench.train import compare
from ssmbench.train.compare import CompareRequest, plan_compare, run_compare
from ssmbench.train.loop import ModelRun


def _fake_training(model, dataset, ev, cfg, dev, run: ModelRun, opt, hooks, dist=None):
    for step, loss in ((0, 5.0), (2, 4.0)):
        run.step = step
        run.add("eval_loss", loss)
    run.status = "done"
    return run


@pytest.mark.skipif(official_available() is None, reason="mamba_ssm is installed here")
def test_reference_row_is_unavailable_without_mamba_ssm(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compare, "train_model", _fake_training)
    req = CompareRequest(steps=2, batch_size=2, seq_len=16, tokenizer="bytes",
                         models=("mamba", "mamba@mamba_ssm"))  # fmt: skip
    result = run_compare(plan_compare(req), tmp_path / "run", device="cpu")
    by = {s["name"]: s for s in result.summary}
    assert by["mamba"]["status"] == "done"
    official = by["mamba@mamba_ssm"]
    assert official["status"] == "unavailable" and "mamba_ssm is not importable" in official["error"]
    # counted as ssmbench's LM of the same shape (the same parameters)
    assert official["params_total"] == by["mamba"]["params_total"]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["optimizer"] == {"name": "AdamW", "fused": False, "foreach": True}
    assert manifest["model_configs"]["mamba@mamba_ssm"]["type"] == "OfficialMambaConfig"
    render_summary(load_run(result.path), result.path)
    md = (result.path / "summary.md").read_text()
    assert "unavailable" in md and "| mamba (mamba_ssm) |" in md


def test_unknown_reference_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no mamba_ssm reference 'moe@mamba_ssm'"):
        plan_compare(CompareRequest(steps=2, batch_size=2, seq_len=16, models=("moe@mamba_ssm",)))
