"""Rows of a kernel-profile sweep on tiny CPU shapes: checks, statuses, counts, summary."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import ssmbench.profile.scan as scan_mod
from ssmbench.bench.ceilings import Ceilings
from ssmbench.errors import BadInput
from ssmbench.ops.scan.ref import selective_scan_ref
from ssmbench.profile.attention import attention_bytes, attention_flops
from ssmbench.profile.spec import (
    RowSpec,
    TimingConfig,
    check_fits,
    expand_rows,
    parse_impls,
    parse_percent,
    parse_shape,
)
from ssmbench.profile.summary import build_summary
from ssmbench.profile.sweep import measure_row, metrics_row, run_sweep

CPU = torch.device("cpu")
FAST = TimingConfig(warmup_ms=0, rep_ms=1, min_reps=2, max_reps=4)
CEIL = Ceilings("cpu", copy_gbps=10.0, copy_bytes=1, matmul_tflops=0.1, matmul_n=1, matmul_dtype="float32")


def spec(impl: str, mode: str, shape=(2, 16, 23, 4), dtype="float32", head_dim=8) -> RowSpec:
    return RowSpec(impl, mode, *shape, dtype=dtype, head_dim=head_dim)


def test_parsing():
    assert parse_shape("8,1536,2048,16") == (8, 1536, 2048, 16)
    for bad in ("8,1536,2048", "a,b,c,d", "0,4,4,4", "1,-4,4,4", ""):
        with pytest.raises(BadInput):
            parse_shape(bad)
    assert parse_percent("10%") == pytest.approx(0.10) and parse_percent("300") == pytest.approx(3.0)
    for bad in ("fast", "-5%"):
        with pytest.raises(BadInput):
            parse_percent(bad)
    with pytest.raises(BadInput, match="unknown impl"):
        parse_impls(["ref", "cuda_magic"])


def test_expand_rows_and_memory_check():
    rows = expand_rows(["ref", "chunked"], ["fwd", "step"], [(1, 8, 8, 4)], ["float32"], 8, False)
    assert [r.row_id for r in rows] == ["ref/fwd/1x8x8x4/float32", "chunked/fwd/1x8x8x4/float32",
                                        "ref/step/1x8x8x4/float32"]
    explicit = expand_rows(["chunked"], ["step"], [(1, 8, 8, 4)], ["float32"], 8, True)
    assert len(explicit) == 1
    with pytest.raises(BadInput, match="needs at least"):
        huge = (1 << 16, 1 << 16, 1 << 16, 16)
        check_fits(expand_rows(["ref"], ["fwd"], [huge], ["float32"], 8, False), CPU)


@pytest.mark.parametrize("impl", ["ref", "chunked", "attention"])
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd", "step"])
def test_rows_run_and_match_their_oracle(impl, mode):
    s = spec(impl, mode)
    r = measure_row(s, CPU, FAST)
    if impl == "chunked" and mode == "step":
        assert r.status == "skipped: chunked has no step kernel" and not r.samples_ms
        return
    assert r.status == "ok", r.status
    assert len(r.samples_ms) >= 2 and all(x > 0 for x in r.samples_ms)
    assert r.rel_err <= 1e-5
    assert r.rel_err_on == "same shape"  # ref too: in the row's dtype against the float64 oracle
    want = {"attention": r.backend, "chunked": "chunked (eager)"}.get(impl, impl)  # CPU: chunked runs eager
    assert r.backend == want and r.backend


def test_triton_under_interpreter_is_checked_and_big_shapes_skip():
    r = measure_row(spec("triton", "fwd", shape=(1, 8, 13, 4)), CPU, FAST)
    if r.status.startswith("skipped: unavailable"):
        pytest.skip(r.status)
    assert r.status == "ok" and r.rel_err < 1e-4 and r.backend == "triton"
    big = measure_row(spec("triton", "fwd", shape=(1, 64, 256, 16)), CPU, FAST)
    assert big.status.startswith("skipped: too slow")


def test_skips_are_rows_with_reasons():
    assert measure_row(spec("ref", "fwd", shape=(4, 4096, 4096, 16)), CPU, FAST).status.startswith(
        "skipped: too slow")
    assert measure_row(spec("mamba_ssm", "fwd"), CPU, FAST).status.startswith("skipped: unavailable")
    assert measure_row(spec("attention", "fwd", head_dim=5), CPU, FAST).status == (
        "skipped: dim 16 is not a multiple of head_dim 5")


def test_ref_too_slow_for_full_shape_is_checked_on_a_smaller_one(monkeypatch):
    from ssmbench.profile.presets import SizeLimit

    monkeypatch.setitem(scan_mod.SIZE_LIMITS, ("ref", "cpu"), SizeLimit(max_elems=200))
    r = measure_row(spec("chunked", "fwd", shape=(3, 8, 40, 4)), CPU, FAST)
    assert r.status == "ok" and r.rel_err_on == "1x8x20x4" and r.rel_err < 1e-4


def test_failures_are_recorded_and_the_sweep_goes_on(monkeypatch):
    real = scan_mod.scan_impl

    def broken(name):
        if name != "chunked":
            return real(name)

        def fn(*args):
            raise RuntimeError("kernel exploded\nsecond line")

        return fn

    monkeypatch.setattr(scan_mod, "scan_impl", broken)
    rows = [spec("chunked", "fwd"), spec("ref", "fwd")]
    results = run_sweep(rows, CPU, FAST)
    assert results[0].status == "error: RuntimeError: kernel exploded" and not results[0].samples_ms
    assert results[1].status == "ok"

    def oom(name):
        def fn(*args):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

        return fn

    monkeypatch.setattr(scan_mod, "scan_impl", oom)
    assert measure_row(spec("chunked", "fwd"), CPU, FAST).status == "oom"


def test_wrong_output_is_incorrect_not_a_speedup(monkeypatch):
    real = scan_mod.scan_impl

    def wrong(name):
        return (lambda *args: selective_scan_ref(*args) * 1.5) if name == "chunked" else real(name)

    monkeypatch.setattr(scan_mod, "scan_impl", wrong)
    r = measure_row(spec("chunked", "fwd"), CPU, FAST)
    assert r.status == "incorrect" and r.rel_err == pytest.approx(0.5, rel=1e-3)
    ref = measure_row(spec("ref", "fwd"), CPU, FAST)
    metrics = pd.DataFrame([metrics_row(x, CEIL) for x in (r, ref)])
    summary = build_summary(metrics, {})
    assert summary["incorrect"] == [r.spec.row_id]
    assert summary["speedup_vs_ref"] == []


def test_counts_and_metrics_row():
    s = spec("attention", "fwd", shape=(2, 32, 64, 4), head_dim=8)
    heads, hd = 4, 8
    assert attention_flops(s) == 4 * 2 * heads * 64 * 64 * hd // 2
    fwd_bwd = spec("attention", "fwd_bwd", shape=(2, 32, 64, 4))
    assert attention_flops(fwd_bwd) == int(3.5 * attention_flops(s))
    assert attention_flops(spec("attention", "step", shape=(2, 32, 64, 4))) == 4 * 2 * 32 * 64
    assert attention_bytes(s) == 4 * 2 * 32 * 64 * 4
    r = measure_row(s, CPU, FAST)
    row = metrics_row(r, CEIL)
    assert row["tflops"] == pytest.approx(row["flops"] / (row["ms_median"] * 1e-3) / 1e12)
    assert row["frac_copy_bw"] == pytest.approx(row["gbps"] / 10.0)
    assert row["n_heads"] == 4 and row["status"] == "ok"
    skipped = metrics_row(measure_row(spec("mamba_ssm", "fwd"), CPU, FAST), CEIL)
    assert math.isnan(skipped["ms_median"]) and skipped["n_samples"] == 0 and skipped["flops"] > 0


def test_summary_crossover():
    rows = []
    for L, scan_ms, attn_ms in ((64, 1.0, 0.5), (128, 2.0, 1.5), (256, 4.0, 6.0), (512, 8.0, 20.0)):
        for impl, ms in (("chunked", scan_ms), ("ref", scan_ms * 10), ("attention", attn_ms)):
            rows.append({"row_id": f"{impl}{L}", "impl": impl, "mode": "fwd", "batch": 1, "dim": 64,
                         "seqlen": L, "dstate": 16, "dtype": "float32", "ms_median": ms, "status": "ok"})
    s = build_summary(pd.DataFrame(rows), {})
    assert s["crossover"][0]["scan_faster_from_seqlen"] == 256
    assert {v["best_scan"] for v in s["scan_vs_attention"]} == {"chunked"}
    assert [round(v["speedup_vs_ref"]) for v in s["speedup_vs_ref"]] == [10, 10, 10, 10]
