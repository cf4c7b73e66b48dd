"""benchmarks/gpu/conv_variants.py: its dry run (tiny shapes, interpreter, no timing) checks every
provider and launch candidate, and a row that failed its check never gets a speed-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu import conv_variants as cv

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_checks_every_candidate(tmp_path):
    out = tmp_path / "conv.json"
    env = os.environ | {"PYTHONPATH": str(ROOT), "SSMBENCH_POISON_OUTPUTS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu/conv_variants.py"), "--dry-run", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    variants = {(r["provider"], r["pass"], r["variant"]) for r in rows}
    for bd, bl, nw in cv.FWD_LAUNCHES:
        assert ("triton", "fwd", f"fwd {bd}x{bl}/{nw}w") in variants
    for bd, bl, nw in cv.BWD_LAUNCHES:
        assert ("triton", "fwd+bwd", f"bwd {bd}x{bl}/{nw}w") in variants
    for r in rows:
        assert r["ms"] is None and r["speedup"] is None, "a dry run times nothing"
        assert r["error"] is None, r
        if r["provider"] in ("torch", "triton"):
            want = {"y"} if r["pass"] == "fwd" else {"y", "dx", "dweight", "dbias"}
            assert set(r["err"]) == want and r["ok"], r
    assert "causal_conv1d" in result["missing"] or any(r["provider"] == "causal_conv1d" for r in rows)
    assert "max err" in proc.stdout  # the table


def test_wrong_rows_get_no_speedup():
    def row(provider, ok, ms, pass_="fwd"):
        return {"shape": [1, 2, 3], "pass": pass_, "provider": provider, "variant": "v", "ok": ok,
                "err": {"y": 0.0 if ok else 1.0}, "error": None, "ms": ms, "p20": ms, "p80": ms,
                "gbps": 1.0}  # fmt: skip

    rows = [row("torch", True, 2.0), row("triton", False, 0.5), row("triton", True, 1.0),
            row("triton", True, 1.0, "fwd+bwd")]  # fmt: skip
    cv.mark_speedups(rows)
    assert [r["speedup"] for r in rows] == [1.0, None, 2.0, None]
    text = cv.table(rows).splitlines()
    assert "WRONG" in text[2] and "2.00" in text[3]
    rows = [row("torch", False, 1.0), row("triton", True, 0.5) | {"error": "RuntimeError: no"}]
    cv.mark_speedups(rows)
    assert [r["speedup"] for r in rows] == [None, None], "no baseline when torch itself is wrong"
    assert "ERROR" in cv.table(rows).splitlines()[2]
