"""summary.json from hand-made runs: targets from the reference's seed-mean curve, steps per seed,
means and Student-t intervals over seeds, seeds that never reach the target, data passes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssmbench.train.loop import ModelRun
from ssmbench.train.summary import SummarySetup, build_summary

STEPS = list(range(0, 101, 10))
DESC = {"params_total": 10, "params_active": 8, "params_total_nonembed": 6, "params_active_nonembed": 4,
        "flops_per_token": 100.0}


def _run(name: str, evals: list[float], emas: list[float] | None = None, status: str = "done",
         tokens: int = 1000) -> ModelRun:
    run = ModelRun(name, step=STEPS[len(evals) - 1], status=status, tokens=tokens)
    for s, v in zip(STEPS, evals, strict=False):
        run.step = s
        run.add("eval_loss", v)
        run.add("eval_bpb", v / math.log(2) / 3.0)
        if s and emas is not None:
            run.add("train_loss_ema", emas[STEPS.index(s) - 1])
    run.step = STEPS[len(evals) - 1]
    return run


def _line(a: float, b: float, offset: float = 0.0) -> list[float]:
    return [a - b * s + offset for s in STEPS]


def _setup(names=("mamba", "moe-mamba", "transformer"), seeds=(0, 1), **kw) -> SummarySetup:
    base = dict(names=tuple(names), seeds=tuple(seeds), reference="mamba", steps_planned=100,
                steps_metric="eval_loss", ema_alpha=0.01, target_loss=None,
                described={n: DESC for n in names}, tokens_per_byte=0.5, tokens_per_pass=None, paper=None)
    return SummarySetup(**{**base, **kw})


@pytest.fixture
def summary() -> dict[str, dict]:
    # straight lines are kept exactly by the smoothing, so every answer has a closed form
    runs = {
        ("mamba", 0): _run("mamba", _line(5.0, 0.015, +0.05), _line(5.2, 0.015)[1:]),
        ("mamba", 1): _run("mamba", _line(5.0, 0.015, -0.05), _line(5.2, 0.015)[1:]),
        ("moe-mamba", 0): _run("moe-mamba", _line(5.0, 0.02, +0.05), _line(5.2, 0.02)[1:]),
        ("moe-mamba", 1): _run("moe-mamba", _line(5.0, 0.02, -0.05), _line(5.2, 0.02)[1:]),
        ("transformer", 0): _run("transformer", _line(5.0, 0.01), _line(5.2, 0.01)[1:]),
        ("transformer", 1): _run("transformer", _line(5.0, 0.01)[:4], status="oom"),
    }
    return {s["name"]: s for s in build_summary(runs, _setup())}


def test_target_is_the_final_value_of_the_references_seed_mean_curve(summary) -> None:
    t = summary["mamba"]["target_eval"]
    # the mean of the two seeds is 5 - 0.015 s: 3.5 at step 100, reached there
    assert t["value"] == pytest.approx(3.5) and t["reference_steps"] == pytest.approx(100.0)
    assert t["metric"] == "eval_loss" and t["reference_seeds"] == 2
    assert "centred moving average" in t["smoothing"]
    ema = summary["mamba"]["target_ema"]
    assert ema["metric"] == "train_loss_ema" and ema["value"] == pytest.approx(5.2 - 1.5)
    assert summary["mamba"]["headline"] == "eval"


def test_steps_per_seed_mean_and_interval(summary) -> None:
    moe = summary["moe-mamba"]
    # seed 0: 5.05 - 0.02 s = 3.5 at 77.5; seed 1: 4.95 - 0.02 s at 72.5
    assert moe["steps_to_target_eval_per_seed"] == pytest.approx([77.5, 72.5])
    assert moe["steps_to_target_eval_reached"] == 2
    assert moe["steps_to_target_eval_mean"] == pytest.approx(75.0)
    half = 12.706204736174698 * np.std([77.5, 72.5], ddof=1) / math.sqrt(2)  # t(0.975, 1 df)
    assert moe["steps_to_target_eval_ci95"] == pytest.approx([75 - half, 75 + half], rel=1e-9)
    assert moe["steps_to_target_eval_pct"] == pytest.approx(75.0)
    assert moe["speedup_eval"] == pytest.approx(4 / 3)
    assert moe["steps_to_target_eval_pct_ci95"] == pytest.approx([75 - half, 75 + half], rel=1e-9)
    # EMA: 5.2 - 0.02 s reaches 3.7 at 75, the reference's mean EMA curve at 100
    assert moe["steps_to_target_ema_per_seed"] == pytest.approx([75.0, 75.0])
    assert moe["steps_to_target_ema_ci95"] == pytest.approx([75.0, 75.0])


def test_a_seed_that_never_reaches_is_counted_not_averaged(summary) -> None:
    ref = summary["mamba"]
    # seed 0 of the reference ends 0.05 above the seed-mean target; seed 1 gets there at 1.45 / 0.015
    assert ref["steps_to_target_eval_per_seed"][0] is None
    assert ref["steps_to_target_eval_per_seed"][1] == pytest.approx(1.45 / 0.015)
    assert ref["steps_to_target_eval_reached"] == 1 and ref["steps_to_target_eval_ci95"] is None
    assert ref["steps_to_target_eval_mean"] == pytest.approx(1.45 / 0.015)
    tr = summary["transformer"]
    assert tr["steps_to_target_eval_reached"] == 0 and tr["steps_to_target_eval_mean"] is None
    assert tr["steps_to_target_eval_pct"] is None and tr["speedup_eval"] is None


def test_final_values_over_the_seeds_that_finished(summary) -> None:
    moe = summary["moe-mamba"]
    assert moe["status"] == "done" and moe["seeds"] == 2 and moe["seed_list"] == [0, 1]
    assert moe["final_eval_loss_per_seed"] == pytest.approx([3.05, 2.95])
    assert moe["final_eval_loss_mean"] == pytest.approx(3.0)
    low, high = moe["final_eval_loss_ci95"]
    assert low < 3.0 < high and (high - low) / 2 == pytest.approx(12.706204736174698 * 0.05, rel=1e-9)
    assert moe["final_eval_bpb_mean"] == pytest.approx(3.0 / math.log(2) / 3.0)
    # an oom seed: reported, left out of the statistics
    tr = summary["transformer"]
    assert tr["status"] == "partial" and tr["seeds"] == 1 and tr["seeds_finished"] == 2
    assert [r["status"] for r in tr["runs"]] == ["done", "oom"]
    assert tr["final_eval_loss_per_seed"] == [pytest.approx(4.0), None] and tr["final_eval_loss_ci95"] is None
    assert tr["params_active_nonembed"] == 4 and tr["flops_per_byte"] == pytest.approx(50.0)


def test_data_passes_per_seed_and_the_worst_per_model() -> None:
    runs = {("mamba", 0): _run("mamba", _line(5, 0.01), tokens=500),
            ("mamba", 1): _run("mamba", _line(5, 0.01), tokens=2500)}
    (s,) = build_summary(runs, _setup(names=("mamba",), tokens_per_pass=1000))
    assert s["data_passes_per_seed"] == [0.5, 2.5] and s["data_passes"] == 2.5
    (u,) = build_summary(runs, _setup(names=("mamba",)))
    assert u["data_passes"] == 1.0 and u["tokens_per_pass"] is None  # unbounded: never repeats


def test_explicit_target_pending_runs_and_the_ema_headline() -> None:
    runs = {("mamba", 0): _run("mamba", _line(5.0, 0.015), _line(5.2, 0.015)[1:])}
    by = {s["name"]: s for s in build_summary(runs, _setup(names=("mamba", "moe-mamba"), seeds=(0,),
                                                            target_loss=4.0))}
    t = by["mamba"]["target_eval"]
    assert t["value"] == 4.0 and "--target-loss" in t["source"]
    assert by["mamba"]["steps_to_target_eval_mean"] == pytest.approx(1.0 / 0.015)
    assert by["moe-mamba"]["status"] == "pending" and by["moe-mamba"]["seeds"] == 0
    ema = build_summary(runs, _setup(names=("mamba",), seeds=(0,), steps_metric="train_loss_ema",
                                     target_loss=4.0))[0]
    assert ema["headline"] == "ema" and ema["target_ema"]["value"] == 4.0
    assert ema["target_eval"]["value"] == pytest.approx(3.5)  # the other figure keeps the reference's
    nothing = build_summary({}, _setup(names=("mamba",), seeds=(0,)))[0]
    assert nothing["target_eval"]["value"] is None and nothing["steps_to_target_eval_per_seed"] == [None]
