"""benchmarks/gpu/scan_variants.py --dry-run: every variant checked against the reference on CPU
(interpreter, tiny shapes), the JSON and the summary written; no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks/gpu/scan_variants.py"


def test_scan_variants_dry_run(tmp_path):
    # N = 32 only (the interpreter is slow); its candidates split the backward's states or use warps
    out = tmp_path / "variants.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(SCRIPT), "--dry-run", "--n", "32", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    times = [r for r in rows if r["kind"] == "time"]
    labels = {r["label"] for r in times}
    assert {"new default", "bwd d4l16w1n16", "bwd d4l16w2", "fwd d16l8w2"} <= labels
    assert {tuple(r["shape"]) for r in times} == {(8, 1536, 2048, 32)}
    failed = [(r["label"], r["shape"], r["check_worst_rel_err"]) for r in times if not r["check_ok"]]
    assert not failed
    assert all("fwd" not in r for r in times)  # no timing on CPU
    assert "=== summary" in proc.stdout and "best new" not in proc.stdout
