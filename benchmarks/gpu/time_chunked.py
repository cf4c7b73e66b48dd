"""GPU check and timing of the chunked scan: correctness against ref (values, final state,
gradients) in fp32 and bf16 at odd lengths, then forward and forward+backward times and peak
memory at (8, 1536, 2048, 16) and (1, 5120, 8192, 16). Run from the repo root:

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/time_chunked.py

Prints one line per case and writes $OUT/time_chunked.json when OUT is set."""

from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F

from ssmbench.bench.timing import benchmark
from ssmbench.ops.scan import chunked
from ssmbench.ops.scan.ref import selective_scan_ref

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def inputs(batch: int, dim: int, L: int, N: int, dtype: torch.dtype, groups: int = 0, seed: int = 0):
    """Mamba-like inputs: A = -exp(0.5 randn), delta = softplus(0.5 randn - 1 + bias)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)  # noqa: E731
    bc = (batch, N, L) if groups == 0 else (batch, groups, N, L)
    x = {"u": r(batch, dim, L), "delta": r(batch, dim, L) * 0.5 - 1.0, "A": -torch.exp(r(dim, N) * 0.5),
         "B": r(*bc), "C": r(*bc), "D": r(dim), "z": r(batch, dim, L), "delta_bias": r(dim) * 0.1}
    for k in ("u", "delta", "B", "C", "z"):
        x[k] = x[k].to(dtype)
    return x


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def check(fn, shape, dtype, groups=0, **kw) -> float:
    """Worst relative error of out, last state and every gradient against ref in fp64."""
    x = inputs(*shape, dtype, groups, seed=sum(shape))
    xs = {k: v.clone().requires_grad_() for k, v in x.items()}
    x64 = {k: v.detach().double().requires_grad_() for k, v in x.items()}
    out, last = fn(*[xs[k] for k in NAMES], True, True, **kw)
    ref, ref_last = selective_scan_ref(*[x64[k] for k in NAMES], True, True)
    dout = torch.randn_like(ref).to(out.dtype)
    dlast = torch.randn_like(ref_last)
    gs = torch.autograd.grad((out.double() * dout.double()).sum() + (last.double() * dlast).sum(),
                             [xs[k] for k in NAMES])
    rgs = torch.autograd.grad((ref * dout.double()).sum() + (ref_last * dlast).sum(), [x64[k] for k in NAMES])
    errs = {"out": rel(out, ref), "last": rel(last, ref_last)}
    errs.update({f"d{k}": rel(a, b) for k, a, b in zip(NAMES, gs, rgs, strict=True)})
    worst = max(errs.values())
    print(f"check {fn.__module__.split('.')[-1]} {shape} g={groups} {dtype} {kw}: worst {worst:.2e} "
          + " ".join(f"{k}={v:.1e}" for k, v in errs.items()), flush=True)
    return worst


def time_case(fn, shape, dtype, mode: str, **kw) -> dict:
    x = inputs(*shape, dtype)
    args = [x[k] for k in NAMES]
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return fn(*args, True, **kw)
    else:
        leaves = [a.requires_grad_() for a in args]
        dout = torch.randn(shape[:3], device="cuda", dtype=dtype)

        def run():
            out = fn(*leaves, True, **kw)
            return torch.autograd.grad(out, leaves, dout)
    run()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    t = benchmark(run, device="cuda", warmup_ms=100, rep_ms=400, min_reps=5)
    row = {"impl": fn.__module__.split(".")[-1], "shape": shape, "dtype": str(dtype), "mode": mode,
           "kw": kw, "median_ms": t.median, "p20_ms": t.p20, "p80_ms": t.p80, "n": t.n, "peak_mib": peak}
    print(f"time {row['impl']} {shape} {mode} {kw}: median {t.median:.3f} ms (p20 {t.p20:.3f}, "
          f"p80 {t.p80:.3f}, n {t.n}), peak extra {peak:.0f} MiB", flush=True)
    return row


def main() -> None:
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    new = chunked.selective_scan_chunked
    checks = []
    for shape, groups in (((2, 64, 1000, 16), 0), ((4, 256, 333, 16), 0), ((2, 96, 777, 8), 2),
                          ((1, 128, 2048, 16), 0)):
        for dtype in (torch.float32, torch.bfloat16):
            checks.append({"shape": shape, "dtype": str(dtype), "worst": check(new, shape, dtype, groups)})
    checks.append({"shape": (2, 64, 1000, 16), "chunk": 16,
                   "worst": check(new, (2, 64, 1000, 16), torch.float32, chunk_size=16)})
    main_shape = (8, 1536, 2048, 16)
    x = inputs(*main_shape, torch.bfloat16)
    dt = F.softplus(x["delta"].float() + x["delta_bias"][:, None])
    print("chunk chosen at", main_shape, chunked.safe_chunk_size(dt, x["A"].abs().amax(-1), 64))
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        new(*[x[k] for k in NAMES], True)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=50))
    rows = [time_case(new, shape, torch.bfloat16, mode)
            for shape in (main_shape, (1, 5120, 8192, 16)) for mode in ("fwd", "fwd_bwd")]
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "time_chunked.json"), "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "checks": checks, "rows": rows}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
