"""The pytest-benchmark suites run when named explicitly, and save GPU/library facts per run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_suites_run_and_record_machine_info(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pytest", str(BENCHMARKS), "-q", "-p", "no:cacheprovider",
           "-k", "ref-fwd-1x or (train_step and transformer)", "--benchmark-json", str(out),
           "--benchmark-min-rounds=2", "--benchmark-max-time=0.001", "--benchmark-warmup=off"]
    # this checkout's ssmbench, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCHMARKS.parent),
                                                                     os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    info = data["machine_info"]["ssmbench"]
    assert info["device_kind"] and info["torch"] and "driver" in info and "device_name" in info
    by_name = {b["name"]: b for b in data["benchmarks"]}
    kernel = by_name["test_kernel[ref-fwd-1x64x128x16]"]
    assert kernel["extra_info"]["backend"] == "ref" and kernel["extra_info"]["flops"] > 0
    assert kernel["stats"]["rounds"] >= 2 and kernel["stats"]["median"] > 0
    step = by_name.get("test_train_step[transformer]")
    assert step is not None and step["extra_info"]["params"] > 0
