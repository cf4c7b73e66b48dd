"""The kernel-profile task on its own: what it writes and what it reports as it goes (the
rendering of summary.md and plots is the CLI's)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import ssmbench.profile.sweep as sweep_mod
from ssmbench.profile.kernels import KIND, run_kernel_profile
from ssmbench.profile.spec import ProfileConfig, TimingConfig, expand_rows
from ssmbench.profile.sweep import SweepInterrupted
from tests.progress_log import ProgressLog

TIMING = TimingConfig(warmup_ms=0, rep_ms=1, min_reps=2, max_reps=4, rounds=2)


def config(impls=("ref", "chunked"), modes=("fwd", "step")) -> ProfileConfig:
    rows = expand_rows(list(impls), list(modes), [(1, 8, 12, 4)], ["float32"], 8, explicit_impls=True)
    return ProfileConfig(preset=None, device="cpu", rows=rows, timing=TIMING, quick_ceilings=True)


@pytest.mark.usefixtures("one_thread")
def test_writes_measurements_not_renderings_and_reports_each_row(tmp_path) -> None:
    log = ProgressLog()
    result = run_kernel_profile(config(), tmp_path / "run", progress=log)
    names = {p.name for p in result.path.iterdir()}
    assert names == {"manifest.json", "metrics.csv", "samples.json", "summary.json"}
    assert json.loads((result.path / "manifest.json").read_text())["kind"] == KIND
    assert list(pd.read_csv(result.path / "metrics.csv")["status"]) == [
        "ok", "ok", "ok", "skipped: chunked has no step kernel"]
    # one bar over 4 rows x 2 rounds, counted up by one per row; the skipped row noted once
    assert log.entered == 1 and log.of("start") == [("start", KIND, 8, 0)]
    assert [c[2] for c in log.of("update")] == list(range(1, 9))
    assert log.of("update")[-1][3]["round"] == "2/2"
    assert log.of("note") == [("note", "chunked/step/1x8x12x4/float32: skipped: chunked has no step kernel")]


def test_ctrl_c_writes_the_rows_so_far_then_goes_on(tmp_path, monkeypatch) -> None:
    real, calls = sweep_mod.measure_row, []

    def stop_at_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "measure_row", stop_at_second)
    with pytest.raises(SweepInterrupted):
        run_kernel_profile(config(impls=("ref",)), tmp_path / "run")
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["row_id"]) == ["ref/fwd/1x8x12x4/float32"]
    assert not (tmp_path / "run" / "summary.md").exists()


def test_attention_rows_are_kept_once_per_state_size_sweep() -> None:
    """Shapes that differ only in N give one attention row (attention has no state) and one scan
    row per N."""
    shapes = [(1, 8, 12, 4), (1, 8, 12, 16), (1, 8, 24, 16)]
    rows = expand_rows(["chunked", "attention"], ["fwd"], shapes, ["float32"], 8, explicit_impls=False)
    assert [(r.impl, r.shape) for r in rows] == [
        ("chunked", (1, 8, 12, 4)), ("attention", (1, 8, 12, 4)),
        ("chunked", (1, 8, 12, 16)),
        ("chunked", (1, 8, 24, 16)), ("attention", (1, 8, 24, 16)),
    ]  # fmt: skip
