"""When each kernel of one scan forward+backward is launched and runs (issue 12), on the GPU.

    PYTHONPATH=. python3 benchmarks/gpu/scan_timeline.py [--shape 8,2048,256,16] [--json PATH]

Runs the kernel-profile fwd_bwd call (``torch.autograd.grad`` of the scan over its eight inputs)
as ``ssmbench.bench.timing.benchmark`` does (L2 flushed before each call), under
``torch.profiler``, for the Triton scan and (when importable) mamba_ssm's ``selective_scan_fn``.
Per call and kernel: host time of its launch, GPU start and end, all in microseconds from the
call's start on the host; medians over the calls. The profiler adds host time of its own, so
read the order and the gaps, not the totals.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks.gpu import scan_host
from ssmbench.bench.timing import _flush_l2

LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC",
            "cudaMemsetAsync")


def trace(fn, shape, calls: int) -> dict:
    _, fwd_bwd = scan_host.calls(fn, shape)
    dev = torch.device("cuda")
    for _ in range(20):
        _flush_l2(dev)
        fwd_bwd()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            _flush_l2(dev)
            with record_function("call"):
                fwd_bwd()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    return per_call(events)


def per_call(events: list[dict]) -> dict:
    """Median (launch, start, end) in us from each call's host start, per kernel in call order."""
    spans = sorted((e for e in events if e.get("name") == "call" and e.get("cat") == "user_annotation"),
                   key=lambda e: e["ts"])
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("name") in LAUNCHES and "correlation" in e.get("args", {})}
    kernels = [e for e in events if e.get("cat") in ("kernel", "gpu_memset")]
    rows: dict[str, list[tuple[float, float, float]]] = {}
    host: list[float] = []
    flush_end: list[float] = []
    for s in spans:
        t0, t1 = s["ts"], s["ts"] + s["dur"]
        host.append(s["dur"])
        mine, before = [], []
        for k in kernels:
            launch = launches.get(k.get("args", {}).get("correlation"))
            if launch is not None and t0 - 200 <= launch["ts"] < t0:
                before.append(k["ts"] + k["dur"] - t0)  # the L2 flush: the GPU is free after it
            if launch is not None and t0 <= launch["ts"] <= t1:
                mine.append((launch["ts"] - t0, k["ts"] - t0, k["ts"] + k["dur"] - t0, k["name"][:60]))
        if before:
            flush_end.append(max(before))
        for i, (lt, ks, ke, name) in enumerate(sorted(mine)):
            rows.setdefault(f"{i}:{name}", []).append((lt, ks, ke))
    med = {k: [round(statistics.median(v[j] for v in vs), 1) for j in range(3)] for k, vs in rows.items()}
    return {"host_call_us": round(statistics.median(host), 1), "calls": len(spans),
            "flush_end_us": round(statistics.median(flush_end), 1) if flush_end else None,
            "kernels [launch, gpu start, gpu end] us": med}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="8,2048,256,16")
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    out = {}
    for name, fn in scan_host.impls().items():
        out[name] = trace(fn, shape, args.calls)
        print(f"== {name} {shape}: host per call {out[name]['host_call_us']} us (profiled), "
              f"L2 flush ends at {out[name]['flush_end_us']} us")
        for k, (lt, ks, ke) in out[name]["kernels [launch, gpu start, gpu end] us"].items():
            print(f"  {k:64s} launch {lt:7.1f}  gpu {ks:7.1f} -> {ke:7.1f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
