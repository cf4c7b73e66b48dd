"""GPU check and timing of the chunked scan: correctness against ref (values, final state,
gradients) in fp32 and bf16 at odd lengths, with and without autograd; forward and
forward+backward times and peak memory at the issue-2 shapes; then a short sweep of the
no-grad path's knobs (N_BLOCK, GROUP_ELEMENTS, RECOMPUTE_GROWTH, exp instead of pow) at the
main shape, each checked against ref first. Run from the repo root:

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/time_chunked.py

Prints one line per case and writes $OUT/time_chunked.json when OUT is set."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ssmbench.bench.timing import benchmark
from ssmbench.ops.scan import chunked
from ssmbench.ops.scan.ref import selective_scan_ref

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
MAIN = (8, 1536, 2048, 16)


def inputs(batch: int, dim: int, L: int, N: int, dtype: torch.dtype, groups: int = 0, seed: int = 0):
    """Mamba-like inputs: A = -exp(0.5 randn), delta = softplus(0.5 randn - 1 + bias)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)  # noqa: E731
    bc = (batch, N, L) if groups == 0 else (batch, groups, N, L)
    x = {
        "u": r(batch, dim, L),
        "delta": r(batch, dim, L) * 0.5 - 1.0,
        "A": -torch.exp(r(dim, N) * 0.5),
        "B": r(*bc),
        "C": r(*bc),
        "D": r(dim),
        "z": r(batch, dim, L),
        "delta_bias": r(dim) * 0.1,
    }
    for k in ("u", "delta", "B", "C", "z"):
        x[k] = x[k].to(dtype)
    return x


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def check(fn, shape, dtype, groups=0, **kw) -> float:
    """Worst relative error of out, last state and every gradient against ref in fp64, and of
    out and last state without autograd."""
    x = inputs(*shape, dtype, groups, seed=sum(shape))
    xs = {k: v.clone().requires_grad_() for k, v in x.items()}
    x64 = {k: v.detach().double().requires_grad_() for k, v in x.items()}
    out, last = fn(*[xs[k] for k in NAMES], True, True, **kw)
    ref, ref_last = selective_scan_ref(*[x64[k] for k in NAMES], True, True)
    dout = torch.randn_like(ref).to(out.dtype)
    dlast = torch.randn_like(ref_last)
    loss = (out.double() * dout.double()).sum() + (last.double() * dlast).sum()
    gs = torch.autograd.grad(loss, [xs[k] for k in NAMES])
    ref_loss = (ref * dout.double()).sum() + (ref_last * dlast).sum()
    rgs = torch.autograd.grad(ref_loss, [x64[k] for k in NAMES])
    with torch.no_grad():
        out_ng, last_ng = fn(*[x[k] for k in NAMES], True, True, **kw)
    errs = {"out": rel(out, ref), "last": rel(last, ref_last), "out_nograd": rel(out_ng, ref)}
    errs["last_nograd"] = rel(last_ng, ref_last)
    errs.update({f"d{k}": rel(a, b) for k, a, b in zip(NAMES, gs, rgs, strict=True)})
    worst = max(errs.values())
    print(
        f"check chunked {shape} g={groups} {dtype} {kw}: worst {worst:.2e} "
        + " ".join(f"{k}={v:.1e}" for k, v in errs.items()),
        flush=True,
    )
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
    # host time: until the call returns; near the total, the launches set the pace
    host, total = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        host.append(time.perf_counter() - t0)
        torch.cuda.synchronize()
        total.append(time.perf_counter() - t0)
    t = benchmark(run, device="cuda", warmup_ms=100, rep_ms=400, min_reps=5)
    row = {
        "shape": shape,
        "dtype": str(dtype),
        "mode": mode,
        "kw": kw,
        "median_ms": t.median,
        "p20_ms": t.p20,
        "p80_ms": t.p80,
        "n": t.n,
        "peak_mib": peak,
        "host_ms": 1e3 * statistics.median(host),
        "wall_ms": 1e3 * statistics.median(total),
    }
    print(
        f"time chunked {shape} {mode} {kw}: median {t.median:.3f} ms (p20 {t.p20:.3f}, p80 {t.p80:.3f}, "
        f"n {t.n}), host {row['host_ms']:.2f} of {row['wall_ms']:.2f} ms, peak extra {peak:.0f} MiB",
        flush=True,
    )
    return row


def growth_exp(rate: torch.Tensor, base: torch.Tensor, expo: torch.Tensor, out=None) -> torch.Tensor:
    """The CPU's growth (a product and an exp) in place of the GPU's pow."""
    return torch.mul(rate, expo, out=out).exp_()


# (name, module attributes to set) for the sweep; the first is the default
SWEEP: list[tuple[str, dict[str, object]]] = [
    ("default", {}),
    ("groups 2^25", {"GROUP_ELEMENTS": 2**25}),
    ("groups 2^27", {"GROUP_ELEMENTS": 2**27}),
    ("n_block 2", {"N_BLOCK": 2}),
    ("n_block 4", {"N_BLOCK": 4}),
    ("n_block 16", {"N_BLOCK": 16}),
    ("n_block 16, groups 2^27", {"N_BLOCK": 16, "GROUP_ELEMENTS": 2**27}),
    ("recompute growth", {"RECOMPUTE_GROWTH": ("cuda",)}),
    ("exp growth", {"_growth": growth_exp}),
]


def with_settings(settings: dict[str, object], fn: Callable[[], object]) -> object:
    old = {k: getattr(chunked, k) for k in settings}
    try:
        for k, v in settings.items():
            setattr(chunked, k, v)
        return fn()
    finally:
        for k, v in old.items():
            setattr(chunked, k, v)


def sweep() -> list[dict]:
    """No-grad forward at the main shape for each SWEEP setting, after a check against ref."""
    x = inputs(2, 64, 1000, 16, torch.bfloat16, seed=7)
    args = [x[k] for k in NAMES]
    with torch.no_grad():
        ref = selective_scan_ref(*[v.double() for v in args], True)
    rows = []
    for name, settings in SWEEP:
        with torch.no_grad():
            err = rel(with_settings(settings, lambda: chunked.selective_scan_chunked(*args, True)), ref)
        print(f"sweep {name}: error against ref {err:.1e}", flush=True)
        if err > 1e-2:
            rows.append({"name": name, "error": err})
            continue
        timed = lambda: time_case(chunked.selective_scan_chunked, MAIN, torch.bfloat16, "fwd")  # noqa: E731
        rows.append({"name": name, "error": err, **with_settings(settings, timed)})
    return rows


def main() -> None:
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    new = chunked.selective_scan_chunked
    checks = []
    for shape, groups in (
        ((2, 64, 1000, 16), 0),
        ((4, 256, 333, 16), 0),
        ((2, 96, 777, 8), 2),
        ((1, 128, 2048, 16), 0),
    ):
        for dtype in (torch.float32, torch.bfloat16):
            checks.append({"shape": shape, "dtype": str(dtype), "worst": check(new, shape, dtype, groups)})
    checks.append(
        {
            "shape": (2, 64, 1000, 16),
            "chunk": 16,
            "worst": check(new, (2, 64, 1000, 16), torch.float32, chunk_size=16),
        }
    )
    x = inputs(*MAIN, torch.bfloat16)
    dt = F.softplus(x["delta"].float() + x["delta_bias"][:, None])
    chunk = chunked.safe_chunk_size(dt, x["A"].abs().amax(-1), 64)
    print("chunk chosen at", MAIN, chunk, flush=True)
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        new(*[x[k] for k in NAMES], True)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=50))
    del x, dt
    rows = [
        time_case(new, shape, torch.bfloat16, mode)
        for shape in (MAIN, (1, 5120, 8192, 16))
        for mode in ("fwd", "fwd_bwd")
    ]
    sweep_rows = sweep()
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "time_chunked.json"), "w") as f:
            result = {
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "chunk_at_main_shape": chunk,
                "checks": checks,
                "rows": rows,
                "sweep": sweep_rows,
            }
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
