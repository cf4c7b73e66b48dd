"""Schedules, smoothed loss, BPB, steps-to-target on hand-made curves, intervals over seeds."""

from __future__ import annotations

import math
import random

import pytest

from ssmbench.errors import BadInput
from ssmbench.train.config import TrainConfig
from ssmbench.train.metrics import EMA, bits_per_byte, mean_curve, smoothed, steps_to_target
from ssmbench.train.schedule import lr_at
from ssmbench.train.stats import mean_ci95, t_cdf, t_quantile


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


def test_steps_to_target_interpolates_at_the_last_crossing() -> None:
    steps, losses = [0, 100, 200, 300], [6.0, 4.0, 3.0, 2.5]
    assert steps_to_target(steps, losses, 3.5) == pytest.approx(150.0)
    assert steps_to_target(steps, losses, 3.0) == pytest.approx(200.0)
    assert steps_to_target(steps, losses, 6.5) == 0.0  # at or below it from the first evaluation
    assert steps_to_target(steps, losses, 2.0) is None


def test_a_curve_that_crosses_and_comes_back_reaches_it_only_for_good() -> None:
    steps = [0, 10, 20, 30, 40, 50]
    losses = [5.0, 3.0, 4.5, 4.2, 3.4, 3.0]
    # the first crossing (between steps 0 and 10, at 7.5) is not reported: the curve comes back above
    got = steps_to_target(steps, losses, 3.5)
    assert got != pytest.approx(7.5)
    # it stays below after the crossing between step 30 (4.2) and step 40 (3.4): 30 + 0.7 / 0.8 * 10
    assert got == pytest.approx(30 + 10 * 0.7 / 0.8)
    # ending above the target after having been below: never reached
    assert steps_to_target([0, 10, 20], [5.0, 3.0, 3.6], 3.5) is None


def test_a_diverged_tail_never_reaches_the_target() -> None:
    nan = math.nan
    assert steps_to_target([0, 10, 20, 30], [5.0, 3.0, 2.0, nan], 3.5) is None
    assert steps_to_target([0, 10, 20, 30], [5.0, 3.0, 2.0, math.inf], 3.5) is None
    # a NaN before a stretch that stays below: reached at the first finite point after it
    assert steps_to_target([0, 10, 20, 30], [5.0, nan, 3.0, 2.0], 3.5) == pytest.approx(20.0)
    # smoothing carries a NaN to every window that holds it
    sm = smoothed([5.0, 4.0, 3.0, 2.0, 1.5, 1.2, nan])
    assert all(math.isfinite(v) for v in sm[:4]) and all(math.isnan(v) for v in sm[4:])
    assert steps_to_target([0, 10, 20, 30, 40, 50, 60], sm, 3.5) is None


def test_smoothing_is_a_centred_average_narrowing_at_the_ends() -> None:
    rng = random.Random(0)
    values = [rng.uniform(2.0, 4.0) for _ in range(11)]
    sm = smoothed(values)
    for i in range(2, 9):
        assert sm[i] == pytest.approx(sum(values[i - 2 : i + 3]) / 5)
    # one either side next to an end, the ends as measured: no lag behind a sloping curve
    assert sm[1] == pytest.approx(sum(values[:3]) / 3) and sm[-2] == pytest.approx(sum(values[-3:]) / 3)
    assert sm[0] == values[0] and sm[-1] == values[-1]
    line = [7.0 - 0.2 * i for i in range(11)]
    assert smoothed(line) == pytest.approx(line)
    assert smoothed([3.0]) == [3.0] and smoothed([]) == []
    with pytest.raises(ValueError):
        smoothed(values, points=4)


def test_noise_around_the_target_gives_the_step_where_the_trend_crosses_it() -> None:
    # trend 6 - 0.003 s crosses 3.0 at step 1000; +-0.4 alternating noise crosses it many times
    steps = list(range(0, 2001, 50))
    noisy = [6.0 - 0.003 * s + (0.4 if i % 2 else -0.4) for i, s in enumerate(steps)]
    raw_first = next(s for s, v in zip(steps, noisy, strict=True) if v <= 3.0)
    assert raw_first < 1000  # the raw curve dips below early ...
    assert steps_to_target(steps, noisy, 3.0) > 1000  # ... and bounces back above after the trend crossed
    got = steps_to_target(steps, smoothed(noisy), 3.0)
    assert got == pytest.approx(1000, abs=50)  # smoothed: within one evaluation of the trend's crossing
    # a curve whose trend stays just above the target, its noise dipping below it, never reaches it ...
    flat = [3.2 + (-0.25 if i % 2 else 0.25) for i in range(len(steps))]
    assert min(flat) < 3.0 and flat[-1] > 3.0
    assert steps_to_target(steps, smoothed(flat), 3.0) is None
    # ... unless its last evaluation, kept as measured, is below it: then only from the last interval
    dips = flat[:-1] + [2.9]
    assert steps_to_target(steps, smoothed(dips), 3.0) > steps[-2]


def test_mean_curve_over_seeds_uses_the_common_steps() -> None:
    a = ([0, 10, 20, 30], [4.0, 3.0, 2.0, 1.0])
    b = ([0, 10, 20], [6.0, 5.0, 4.0])
    assert mean_curve([a, b]) == ([0, 10, 20], [5.0, 4.0, 3.0])
    assert mean_curve([]) == ([], [])


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 9, 10, 19, 29, 30, 60, 120, 1000, 0.5, 2.5])
def test_t_quantile_matches_scipy(df: float) -> None:
    scipy_t = pytest.importorskip("scipy.stats").t
    for p in (0.6, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995, 0.025, 0.001):
        assert t_quantile(p, df) == pytest.approx(float(scipy_t.ppf(p, df)), rel=1e-9)
        assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, rel=1e-9)
    assert t_quantile(0.5, df) == 0.0
    with pytest.raises(ValueError):
        t_quantile(1.0, df)


def test_mean_ci95_is_the_student_t_interval() -> None:
    stats = pytest.importorskip("scipy.stats")
    values = [3.41, 3.47, 3.39, 3.52]
    mean, ci = mean_ci95(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    assert mean == pytest.approx(sum(values) / 4) and ci == pytest.approx([low, high], rel=1e-9)
    assert ci[0] < mean < ci[1]
    assert mean_ci95([2.5]) == (2.5, None) and mean_ci95([]) == (None, None)
    assert mean_ci95([1.0, 1.0]) == (1.0, [1.0, 1.0])


def test_train_config_rejects_bad_values() -> None:
    ok = TrainConfig(steps=10, batch_size=4, seq_len=8)
    assert ok.warmup_steps == 0 and ok.with_overrides(steps=None, lr=2e-3).lr == 2e-3
    for bad in (dict(steps=0), dict(batch_size=-1), dict(seq_len=0), dict(lr=0.0), dict(lr=math.nan),
                dict(schedule="linear"), dict(grad_accum=3), dict(eval_stride=0), dict(steps_metric="acc"),
                dict(data_bytes=0)):
        with pytest.raises(BadInput):
            TrainConfig(**{"steps": 10, "batch_size": 4, "seq_len": 8, **bad})
    assert TrainConfig.from_dict({**ok.to_dict(), "unknown": 1}) == ok
    assert ok.data_bytes is None and ok.with_overrides(data_bytes=5).data_bytes == 5
