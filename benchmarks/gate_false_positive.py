"""Measure the regression gate's false-positive rate: unchanged code against a fresh baseline.

Saves a baseline of a preset, then reruns the gate against it ``--repeats`` times with the
same code. Every failing gate run is a false positive. Prints the rate and each run's
verdict counts; with ``--json`` one JSON object.

    python benchmarks/gate_false_positive.py --preset smoke --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from ssmbench.profile.baseline import load_baseline
from ssmbench.profile.kernels import GateOptions, run_kernel_profile
from ssmbench.profile.plan import plan, plan_from_baseline
from ssmbench.profile.regression import GateRule
from ssmbench.profile.spec import parse_percent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-regression", default="10%")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--keep", type=Path, help="Keep the baseline and run folders here.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    rule = GateRule(max_regression=parse_percent(args.max_regression))
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        base_path = Path(tmp) / "baseline.json"
        run_kernel_profile(plan(device, preset=args.preset), Path(tmp) / "base", save_baseline_to=base_path)
        baseline = load_baseline(base_path)
        config = plan_from_baseline(baseline, device)
        for i in range(args.repeats):
            t0 = time.perf_counter()
            gate = GateOptions(baseline, rule, retries=args.retries)
            result = run_kernel_profile(config, Path(tmp) / f"run{i}", gate=gate)
            verdicts: dict[str, int] = {}
            for g in result.gate or []:
                verdicts[g.verdict] = verdicts.get(g.verdict, 0) + 1
            runs.append({
                "exit_code": result.exit_code,
                "verdicts": verdicts,
                "failing": [g.row_id for g in result.gate or [] if g.failing],
                "retried": sum(1 for g in result.gate or [] if g.attempts > 1),
                "seconds": round(time.perf_counter() - t0, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
            })
            if not args.json:
                r = runs[-1]
                print(f"run {i}: exit {result.exit_code} {verdicts} retried rows {r['retried']}"
                      f" ({r['seconds']} s, load {r['load_average_1min']}) {r['failing']}")
    report = {
        "preset": args.preset,
        "device": str(device),
        "rows": len(baseline.rows),
        "max_regression": args.max_regression,
        "retries": args.retries,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "false_positive_runs": sum(r["exit_code"] != 0 for r in runs),
        "false_positive_rate": sum(r["exit_code"] != 0 for r in runs) / max(args.repeats, 1),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"false-positive rate: {report['false_positive_runs']}/{args.repeats} gate runs "
              f"({report['rows']} rows each, threshold {args.max_regression}, retries {args.retries})")


if __name__ == "__main__":
    main()
