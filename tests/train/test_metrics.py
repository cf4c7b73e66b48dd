"""Schedules, smoothed loss, BPB and steps-to-target on hand-made curves."""

from __future__ import annotations

import math

import pytest

from ssmbench.errors import BadInput
from ssmbench.train.config import TrainConfig
from ssmbench.train.metrics import EMA, bits_per_byte, steps_to_target, steps_to_target_table
from ssmbench.train.schedule import lr_at


def test_warmup_then_cosine_to_floor() -> None:
    kw = dict(lr=1e-3, total_steps=101, warmup_steps=10, min_lr_frac=0.1)
    assert lr_at(0, schedule="cosine", **kw) == pytest.approx(1e-4)
    assert lr_at(9, schedule="cosine", **kw) == pytest.approx(1e-3)
    assert lr_at(10, schedule="cosine", **kw) == pytest.approx(1e-3)
    assert lr_at(55, schedule="cosine", **kw) == pytest.approx(0.55e-3)  # halfway: mean of lr and floor
    assert lr_at(100, schedule="cosine", **kw) == pytest.approx(1e-4)
    lrs = [lr_at(s, schedule="cosine", **kw) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lr_at(70, schedule="constant", **kw) == 1e-3


def test_ema_is_bias_corrected() -> None:
    ema = EMA(0.001)
    assert math.isnan(ema.value)
    assert ema.update(4.0) == pytest.approx(4.0)
    for _ in range(9):
        ema.update(2.0)
    # weights (1-a)^k, newest first: close to the plain mean for small a
    assert ema.value == pytest.approx((4.0 + 9 * 2.0) / 10, rel=1e-2)
    fast = EMA(1.0)
    fast.update(3.0)
    assert fast.update(5.0) == 5.0


def test_bits_per_byte() -> None:
    assert bits_per_byte(math.log(2) * 100, 100) == pytest.approx(1.0)
    assert bits_per_byte(math.log(256) * 10, 10) == pytest.approx(8.0)


def test_steps_to_target_interpolates_between_evals() -> None:
    steps, losses = [0, 100, 200, 300], [6.0, 4.0, 3.0, 2.5]
    assert steps_to_target(steps, losses, 3.5) == pytest.approx(150.0)
    assert steps_to_target(steps, losses, 3.0) == pytest.approx(200.0)
    assert steps_to_target(steps, losses, 6.5) == 0.0
    assert steps_to_target(steps, losses, 2.0) is None
    # the first crossing counts, even if the curve goes back up
    assert steps_to_target([0, 10, 20, 30], [5.0, 3.0, 4.0, 2.0], 3.5) == pytest.approx(7.5)
    # a NaN in the curve neither reaches the target nor anchors the interpolation
    assert steps_to_target([0, 10, 20, 30], [5.0, math.nan, 3.0, 2.0], 3.5) == pytest.approx(20.0)


def test_steps_to_target_table_like_the_paper() -> None:
    curves = {
        "mamba": ([0, 50, 100], [6.0, 4.0, 3.0]),
        "moe-mamba": ([0, 50, 100], [6.0, 3.5, 2.6]),
        "transformer": ([0, 50, 100], [6.0, 4.5, 3.4]),
    }
    table = steps_to_target_table(curves, "mamba", target=3.0)
    assert table["mamba"].steps == 100 and table["mamba"].pct == 100 and table["mamba"].speedup == 1
    # 3.0 between 3.5 (step 50) and 2.6 (step 100): 50 + 0.5/0.9 * 50
    moe = table["moe-mamba"]
    assert moe.steps == pytest.approx(50 + 50 * 0.5 / 0.9)
    assert moe.pct == pytest.approx(100 * moe.steps / 100)
    assert moe.speedup == pytest.approx(100 / moe.steps)
    tr = table["transformer"]
    assert tr.steps is None and tr.pct is None and tr.speedup is None and tr.pct_text == ">100%"
    assert moe.pct_text == f"{moe.pct:.0f}%"


def test_train_config_rejects_bad_values() -> None:
    ok = TrainConfig(steps=10, batch_size=4, seq_len=8)
    assert ok.warmup_steps == 0 and ok.with_overrides(steps=None, lr=2e-3).lr == 2e-3
    for bad in (dict(steps=0), dict(batch_size=-1), dict(seq_len=0), dict(lr=0.0), dict(schedule="linear"),
                dict(grad_accum=3), dict(eval_stride=0), dict(steps_metric="acc")):
        with pytest.raises(BadInput):
            TrainConfig(**{"steps": 10, "batch_size": 4, "seq_len": 8, **bad})
    assert TrainConfig.from_dict({**ok.to_dict(), "unknown": 1}) == ok
