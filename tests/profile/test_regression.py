"""Gate verdicts on synthetic samples (no timing) and baseline files: save, load, reject."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ssmbench.errors import BadInput, ResultsError
from ssmbench.profile.baseline import BASELINE_SCHEMA_VERSION, load_baseline, save_baseline
from ssmbench.profile.regression import GateRule, compare, compare_row, exit_code, normalize_scale
from ssmbench.profile.spec import RowSpec, TimingConfig
from ssmbench.profile.sweep import RowResult

SPEC = RowSpec("chunked", "fwd", 2, 32, 37, 8, "float32", 16)
RULE = GateRule()


def _samples(center: float, n: int = 30, seed: int = 0, spread: float = 0.03) -> tuple[float, ...]:
    rng = np.random.default_rng(seed)
    return tuple(float(v) for v in center * (1 + spread * rng.standard_normal(n)))


def _baseline(tmp_path, rows, name="b.json", kind="cpu-test"):
    path = save_baseline(
        tmp_path / name, rows, environment={"device_name": "test device"}, device_kind=kind,
        ceilings={"copy_gbps": 10.0, "matmul_tflops": 1.0}, timing=TimingConfig(5, 10, 5, 100, 1, 3),
        seed=0, preset="smoke",
    )
    return load_baseline(path)


def _row(spec=SPEC, samples=(), status="ok", rel_err=1e-7):
    return RowResult(spec, status=status, backend=spec.impl, samples_ms=samples, rel_err=rel_err,
                     round_sizes=(len(samples),) if samples else ())


def test_verdicts(tmp_path):
    base = _baseline(tmp_path, [_row(samples=_samples(1.0, seed=1))]).rows[0]
    same = compare_row(base, _row(samples=_samples(1.0, seed=2)), RULE)
    assert same.verdict == "ok" and same.ratio == pytest.approx(1.0, abs=0.05)
    slow = compare_row(base, _row(samples=_samples(2.0, seed=3)), RULE)
    assert slow.verdict == "REGRESSED" and slow.failing and slow.p_slower < 0.002
    assert slow.ratio == pytest.approx(2.0, rel=0.05)
    assert compare_row(base, _row(samples=_samples(0.5, seed=4)), RULE).verdict == "faster"
    # over the threshold but too few, too noisy samples for the U test: noise, not a failure
    noisy = compare_row(base, _row(samples=(1.5, 0.6, 1.4)), RULE)
    assert noisy.verdict == "slower-noise" and not noisy.failing
    # 5% slower: real perhaps, but under the 10% threshold
    assert compare_row(base, _row(samples=_samples(1.05, seed=5, spread=0.001)), RULE).verdict == "ok"


def test_load_that_spares_some_samples_is_noise(tmp_path):
    base = _baseline(tmp_path, [_row(samples=_samples(1.0, seed=1, spread=0.01))]).rows[0]
    # a few samples as fast as before, the rest 3x slower (load on a shared machine)
    bursty = _samples(1.0, n=4, seed=2, spread=0.01) + _samples(3.0, n=26, seed=3, spread=0.01)
    g = compare_row(base, _row(samples=bursty), RULE)
    assert g.ratio > 2 and g.p_slower < 0.002
    assert g.verdict == "slower-noise" and "fastest-sample" in g.note
    assert compare_row(base, _row(samples=bursty[4:]), RULE).verdict == "REGRESSED"


def test_incorrect_failed_and_missing(tmp_path):
    base = _baseline(tmp_path, [_row(samples=_samples(1.0)), _row(spec=RowSpec("ref", "fwd", 1, 8, 8, 4,
                                                                               "float32", 16),
                                                                  status="error: boom")])
    good, broken = base.rows
    fast_but_wrong = _row(samples=_samples(0.1), status="incorrect", rel_err=0.5)
    assert compare_row(good, fast_but_wrong, RULE).verdict == "incorrect"
    assert compare_row(good, _row(status="oom"), RULE).verdict == "FAILED"
    gone = compare_row(good, _row(status="skipped: unavailable (x)"), RULE)
    assert gone.verdict == "missing" and gone.note == "skipped: unavailable (x)"
    # a row the baseline did not measure either: nothing to compare, nothing lost
    assert compare_row(broken, _row(spec=broken.spec, samples=_samples(1.0)), RULE).verdict == "new"
    assert compare_row(broken, _row(spec=broken.spec, status="error: boom"), RULE).verdict == "skipped"
    rows = compare(base, [_row(samples=_samples(1.0, seed=9))], RULE)
    assert [r.verdict for r in rows] == ["ok", "missing"] and rows[1].note == "not rerun"
    # a baseline row that can no longer be compared fails the gate unless missing rows are allowed
    assert exit_code(rows) == 1 and exit_code(rows, allow_missing=True) == 0
    assert exit_code([gone], allow_missing=True) == 0 and not gone.failing and gone.fails()
    assert exit_code(compare(base, [fast_but_wrong], RULE), allow_missing=True) == 1
    rerun = [_row(samples=_samples(1.0, seed=9)), _row(spec=broken.spec, status="error: boom")]
    assert exit_code(compare(base, rerun, RULE)) == 0


def test_threshold_and_normalize(tmp_path):
    base = _baseline(tmp_path, [_row(samples=_samples(1.0, seed=1, spread=0.005))]).rows[0]
    now = _row(samples=_samples(1.3, seed=2, spread=0.005))
    assert compare_row(base, now, RULE).verdict == "REGRESSED"
    assert compare_row(base, now, GateRule(max_regression=0.5)).verdict == "ok"
    # this machine's copy bandwidth is 0.7x the baseline's: 1.3 ms now reads as 0.91 ms
    scale = normalize_scale(GateRule(normalize="ceilings"), {"copy_gbps": 10.0}, {"copy_gbps": 7.0})
    assert scale == pytest.approx(0.7)
    assert compare_row(base, now, RULE, scale).verdict == "ok"
    with pytest.raises(BadInput):
        normalize_scale(GateRule(normalize="ceilings"), {}, {"copy_gbps": 7.0})
    for bad in ({"max_regression": -0.1}, {"p_threshold": 0.0}, {"normalize": "magic"}):
        with pytest.raises(BadInput):
            GateRule(**bad)


def test_baseline_roundtrip(tmp_path):
    samples = _samples(1.0, n=7)
    b = _baseline(tmp_path, [_row(samples=samples), _row(spec=RowSpec("attention", "step", 1, 32, 64, 8,
                                                                       "bfloat16", 16), status="oom")])
    assert b.device_kind == "cpu-test" and b.device_name == "test device"
    assert b.timing == TimingConfig(5, 10, 5, 100, 1, 3)
    assert b.rows[0].samples_ms == pytest.approx(samples, rel=1e-5) and b.rows[0].ok
    assert b.rows[1].spec.row_id == "attention/step/1x32x64x8/bfloat16/hd16" and not b.rows[1].ok
    assert math.isclose(b.rows[0].rel_err, 1e-7)


def _write_variant(tmp_path, mutate):
    good = tmp_path / "good.json"
    _baseline(tmp_path, [_row(samples=_samples(1.0, n=5))], name="good.json")
    doc = json.loads(good.read_text())
    bad = tmp_path / "bad.json"
    text = mutate(doc, good.read_text())
    bad.write_text(text)
    return bad


@pytest.mark.parametrize("mutate, message", [
    (lambda d, t: t[: len(t) // 2], "not valid JSON"),
    (lambda d, t: "", "not valid JSON"),
    (lambda d, t: json.dumps({**d, "schema_version": BASELINE_SCHEMA_VERSION + 1}), "schema version"),
    (lambda d, t: json.dumps({**d, "format": "something else"}), "not an ssmbench kernel baseline"),
    (lambda d, t: json.dumps({k: v for k, v in d.items() if k != "rows"}), "no field 'rows'"),
    (lambda d, t: json.dumps({**d, "rows": []}), "no rows"),
    (lambda d, t: json.dumps({**d, "rows": [{**d["rows"][0], "samples_ms": ["x"]}]}), "samples_ms"),
    (lambda d, t: json.dumps({**d, "rows": [{**d["rows"][0], "impl": "nope"}]}), "unknown impl"),
    (lambda d, t: json.dumps({**d, "rows": d["rows"] * 2}), "twice"),
    (lambda d, t: json.dumps([1, 2]), "not an ssmbench kernel baseline"),
])
def test_bad_baselines_are_one_line_errors(tmp_path, mutate, message):
    bad = _write_variant(tmp_path, mutate)
    with pytest.raises(ResultsError, match=message) as e:
        load_baseline(bad)
    assert "\n" not in str(e.value)


def test_missing_baseline(tmp_path):
    with pytest.raises(ResultsError, match="no baseline file"):
        load_baseline(tmp_path / "nope.json")
