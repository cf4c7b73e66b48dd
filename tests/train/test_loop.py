
"""The training loop on tiny real models: learning, reproducibility, divergence, MoE load,
checkpoint-resume equivalence, evaluation arithmetic."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ssmbench.data import DataRequest, EvalSet, TrainStream, open_training_data
from ssmbench.models.config import LMConfig
from ssmbench.models.registry import build_model
from ssmbench.train import loop
from ssmbench.train.checkpoint import load_checkpoint, save_checkpoint
from ssmbench.train.config import TrainConfig
from ssmbench.train.loop import (
    ModelRun,
    TrainHooks,
    adamw_kind,
    evaluate,
    make_optimizer,
    optimizer_record,
    sharded_batches,
    train_model,
)
from ssmbench.train.metrics import peak_memory

CPU = torch.device("cpu")
TIMING = {"step_time_ms", "tokens_per_s", "tokens_per_s_per_device"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> tuple[TrainStream, EvalSet]:
    data = open_training_data(DataRequest(tokenizer="bytes", seq_len=24, data_bytes=60_000))
    return data.train, data.eval_set(6)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=4, seq_len=24, lr=3e-3, warmup_frac=0.0, schedule="cosine", amp="none",
                eval_interval=2, eval_windows=6, log_interval=1, ema_alpha=0.1)
    return TrainConfig(**{**base, **kw})


def _model(pattern=("attn", "ff"), **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(LMConfig(vocab_size=256, d_model=32, pattern=pattern, n_heads=2, d_ff=64, d_expert=32,
                                n_experts=4, **kw))


def _train(model: torch.nn.Module, ds: TrainStream, ev, cfg: TrainConfig, run: ModelRun, *args,
           **kw) -> ModelRun:
    return train_model(model, sharded_batches(ds, cfg.batch_size), ev, cfg, CPU, run, *args, **kw)


def _values(run: ModelRun, metric: str) -> list[float]:
    return [r["value"] for r in run.rows if r["metric"] == metric]


def _comparable(run: ModelRun) -> list[tuple]:
    return [(r["step"], r["metric"], r["value"]) for r in run.rows if r["metric"] not in TIMING]


def test_loss_decreases_on_synthetic_data(data) -> None:
    ds, ev = data
    run = _train(_model(), ds, ev, _cfg(steps=40, eval_interval=20), ModelRun("t"))
    evals = _values(run, "eval_loss")
    assert run.status == "done" and run.step == 40 and len(evals) == 3
    assert evals[0] == pytest.approx(math.log(256), abs=0.3)  # untrained: about uniform
    assert evals[-1] < evals[0] - 1.0
    assert run.tokens == 40 * 4 * 24 and run.train_time_s > 0
    lrs = _values(run, "lr")
    assert lrs[0] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(3e-4)


def test_same_seed_same_curve(data) -> None:
    ds, ev = data
    a = _train(_model(), ds, ev, _cfg(), ModelRun("a"))
    b = _train(_model(), ds, ev, _cfg(), ModelRun("a"))
    assert _comparable(a) == _comparable(b)
    assert len(_values(a, "train_loss")) == 6


def test_divergence_is_recorded_and_rows_kept(data) -> None:
    ds, ev = data

    class Exploding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.calls = _model(), 0

        def forward(self, idx, targets=None):
            out = self.inner(idx, targets)
            if targets is not None:
                self.calls += 1
                if self.calls >= 3:
                    out.loss = out.loss * float("nan")
            return out

    run = _train(Exploding(), ds, ev, _cfg(), ModelRun("x"))
    assert run.status == "diverged" and run.step == 3 and "step 3" in run.error
    losses = _values(run, "train_loss")
    assert all(math.isfinite(v) for v in losses[:2]) and math.isnan(losses[-1])
    assert len(_values(run, "eval_loss")) == 2  # step 0 and step 2


def test_moe_load_rows(data) -> None:
    ds, ev = data
    run = _train(_model(("attn", "moe")), ds, ev, _cfg(steps=4), ModelRun("moe"))
    last = {r["metric"]: r["value"] for r in run.rows}
    fractions = [last[f"expert_fraction_{e:03d}"] for e in range(4)]
    assert sum(fractions) == pytest.approx(1.0, abs=1e-5)
    assert last["moe_max_load"] == pytest.approx(4 * max(fractions))
    assert 0.0 <= last["moe_dropped_fraction"] < 1.0


def test_resume_from_checkpoint_gives_the_same_curve(data, tmp_path) -> None:
    ds, ev = data
    cfg = _cfg(checkpoint_every=3)
    full = _train(_model(), ds, ev, cfg, ModelRun("m"))
    ckpt = tmp_path / "m.pt"

    def stop_at_5(run: ModelRun, loss: float, tps: float) -> None:
        if run.step == 5:
            raise KeyboardInterrupt

    hooks = TrainHooks(progress=stop_at_5, checkpoint=lambda r, m, o: save_checkpoint(ckpt, r, m, o))
    with pytest.raises(KeyboardInterrupt):
        _train(_model(), ds, ev, cfg, ModelRun("m"), hooks=hooks)
    torch.manual_seed(123)  # the checkpoint restores the RNG
    model = _model()
    opt = make_optimizer(model, cfg)
    run = load_checkpoint(ckpt, model, opt)
    assert run.step == 3
    resumed = _train(model, ds, ev, cfg, run, opt)
    assert _comparable(resumed) == _comparable(full)


def test_evaluate_matches_direct_cross_entropy(data, monkeypatch) -> None:
    ds, ev = data
    model = _model().eval()
    with torch.no_grad():
        logits = model(ev.inputs).logits
    direct = F.cross_entropy(logits.transpose(1, 2), ev.targets).item()
    loss, bpb = evaluate(model, ev, CPU, batch_size=4)
    assert loss == pytest.approx(direct, rel=1e-5)
    assert bpb == pytest.approx(direct * ev.n_tokens / math.log(2) / ev.n_bytes, rel=1e-5)
    monkeypatch.setattr(loop, "EVAL_ELEMENTS", 1)  # one window per chunk
    assert evaluate(model, ev, CPU, batch_size=4)[0] == pytest.approx(loss, rel=1e-6)


def test_weight_decay_groups_and_peak_memory() -> None:
    model = _model(("attn", "ff", "mamba"))
    opt = make_optimizer(model, _cfg(weight_decay=0.1))
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert any("A_log" in n for n, _ in model.named_parameters())
    assert not any("A_log" in n or n.endswith(".D") or "norm" in n or n.endswith("bias") for n in names)
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    mem, kind = peak_memory(CPU)  # no baseline: the process's peak
    assert kind == "cpu_process_peak_rss" and mem > 10 * 2**20


def test_cpu_peak_memory_is_the_runs_own() -> None:
    """After a reset, a run's peak is what it touched above the baseline, not the process's peak
    (which an earlier, larger allocation set). In a fresh interpreter, whose heap holds no freed
    memory a run could reuse unseen."""
    script = textwrap.dedent(
        """
        import torch
        from ssmbench.train.metrics import peak_memory, reset_peak_memory
        big = torch.ones(96 * 2**20 // 4)  # 96 MiB touched, then freed: the process's peak
        del big
        baseline = reset_peak_memory(torch.device("cpu"))
        if baseline is None:
            print("no-reset")
            raise SystemExit
        small = torch.ones(16 * 2**20 // 4)  # 16 MiB
        print(*peak_memory(torch.device("cpu"), baseline), *peak_memory(torch.device("cpu")))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    if out == ["no-reset"]:
        pytest.skip("this kernel cannot reset the resident-set high-water mark (/proc/self/clear_refs)")
    run, run_kind, process, process_kind = int(out[0]), out[1], int(out[2]), out[3]
    assert (run_kind, process_kind) == ("cpu_run_peak_rss", "cpu_process_peak_rss")
    assert 12 * 2**20 <= run < 64 * 2**20
    assert process >= 96 * 2**20


def test_optimizer_is_foreach_on_cpu_fused_on_cuda() -> None:
    opt = make_optimizer(_model(("mamba",)), _cfg())
    assert optimizer_record(opt) == {"name": "AdamW", "fused": False, "foreach": True} == adamw_kind(CPU)
    assert adamw_kind(torch.device("cuda")) == {"name": "AdamW", "fused": True, "foreach": False}
    if torch.cuda.is_available():
        fused = make_optimizer(_model(("mamba",)).cuda(), _cfg())
        assert optimizer_record(fused) == adamw_kind(torch.device("cuda"))
