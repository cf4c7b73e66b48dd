"""Measure the regression gate's false-positive rate: unchanged code against a fresh baseline.

Saves a baseline of a preset, then reruns the gate against it ``--repeats`` times with the
same code. Every failing gate run is a false positive. Prints the rate and each run's
verdict counts; with ``--json`` one JSON object. ``--busy N`` starts N busy-looping
processes after the baseline is saved (other jobs arriving on the machine) and stops them
at the end.

    python benchmarks/gate_false_positive.py --preset smoke --repeats 10 [--busy 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ssmbench.profile.baseline import Baseline, load_baseline
from ssmbench.profile.kernels import GateOptions, run_kernel_profile
from ssmbench.profile.plan import plan, plan_from_baseline
from ssmbench.profile.regression import GateRule
from ssmbench.profile.spec import ProfileConfig, parse_percent


def rerun(baseline: Baseline, config: ProfileConfig, rule: GateRule, retries: int, out: Path) -> dict:
    """One gate run against ``baseline``: exit code, verdict counts, failing rows, timing."""
    t0 = time.perf_counter()
    result = run_kernel_profile(config, out, gate=GateOptions(baseline, rule, retries=retries))
    rows = result.gate or []
    verdicts: dict[str, int] = {}
    for g in rows:
        verdicts[g.verdict] = verdicts.get(g.verdict, 0) + 1
    return {
        "exit_code": result.exit_code,
        "verdicts": verdicts,
        "failing": [g.row_id for g in rows if g.failing],
        "retried": sum(1 for g in rows if g.attempts > 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-regression", default="10%")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--busy", type=int, default=0, help="Busy processes during the reruns.")
    ap.add_argument("--keep", type=Path, help="Keep the baseline and run folders here.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    rule = GateRule(max_regression=parse_percent(args.max_regression))
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        base_path = tmp / "baseline.json"
        run_kernel_profile(plan(device, preset=args.preset), tmp / "base", save_baseline_to=base_path)
        baseline = load_baseline(base_path)
        config = plan_from_baseline(baseline, device)
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            for i in range(args.repeats):
                runs.append(rerun(baseline, config, rule, args.retries, tmp / f"run{i}"))
                if not args.json:
                    r = runs[-1]
                    print(f"run {i}: exit {r['exit_code']} {r['verdicts']} retried rows {r['retried']}"
                          f" ({r['seconds']} s, load {r['load_average_1min']}) {r['failing']}")
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
    failing = sum(r["exit_code"] != 0 for r in runs)
    report = {
        "preset": args.preset,
        "device": str(device),
        "rows": len(baseline.rows),
        "max_regression": args.max_regression,
        "retries": args.retries,
        "busy_processes": args.busy,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "false_positive_runs": failing,
        "false_positive_rate": failing / max(args.repeats, 1),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"false-positive rate: {failing}/{args.repeats} gate runs ({report['rows']} rows each, "
              f"threshold {args.max_regression}, retries {args.retries}, {args.busy} busy processes)")


if __name__ == "__main__":
    main()
