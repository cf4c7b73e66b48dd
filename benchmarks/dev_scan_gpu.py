"""GPU check and timing of the scan backends, in one call on the device machine.

    PYTHONUNBUFFERED=1 PYTHONPATH=. python benchmarks/dev_scan_gpu.py [--json PATH] [--quick]

1. correctness on CUDA against the sequential reference in float64: the triton scan
   (values, final state, every gradient; fp32/bf16/fp64, grouped B/C, without options),
   the chunked scan, the triton step; the bf16 forward at (8, 1536, 2048, 16);
2. device ceilings (copy bandwidth, bf16 matmul) measured in the same run;
3. timing (median, p20, p80 of CUDA-event samples, L2 flushed) of forward and
   forward+backward at kernel-profile's five standard shapes, bf16 inputs, fp32 A/D/delta_bias, with z and
   delta_softplus; a block-shape sweep of both triton kernels at (8, 1536, 2048, 16);
   the decode step;
4. a compact table at the end (the device tool returns only the output's tail).

Triton compiles the sweep's kernels in parallel worker processes (--warm) that share
Triton's on-disk cache, while the main process runs the checks; no timing runs until the
workers are done.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from benchmarks.scan_problems import NAMES, Case, make_inputs, mamba_layer_inputs
from ssmbench.bench.ceilings import measure_ceilings
from ssmbench.bench.timing import benchmark
from ssmbench.ops.scan.chunked import selective_scan_chunked
from ssmbench.ops.scan.cost import ScanShape, scan_bytes, scan_flops
from ssmbench.ops.scan.ref import selective_scan_ref
from ssmbench.ops.scan.triton import LaunchShape, TritonScanConfig, default_config, selective_scan_triton
from ssmbench.ops.state_update.ref import selective_state_update_ref
from ssmbench.ops.state_update.triton import selective_state_update_triton
from ssmbench.profile.problem import rel_err

DEV = torch.device("cuda")
MAIN = (8, 1536, 2048, 16)
SHAPES = [MAIN, (8, 2048, 4096, 16), (1, 5120, 8192, 16), (16, 1536, 1024, 16), (4, 4096, 16384, 16)]
LS = LaunchShape
# launch shapes of the forward alone (inference)
FWD_SWEEP = [LS(16, 8), LS(8, 8), LS(8, 8, prefetch=False, stages=3), LS(16, 8, prefetch=False, stages=3),
             LS(4, 8)]
# launch shapes of the backward; the forward runs with LS(8, min(8, block_l)) and saves states
BWD_SWEEP = [LS(4, 8), LS(8, 4), LS(16, 4, num_warps=2), LS(8, 8, num_warps=2), LS(16, 8, num_warps=4)]
# the forward's channel block where batch * dim is small
SMALL = (1, 5120, 8192, 16)
SMALL_FWD = [LS(4, 8), LS(8, 8), LS(16, 8)]
CHUNK_SIZES = [32, 64]
ROWS: list[dict] = []


def fwd_cfg(ls: LaunchShape) -> TritonScanConfig:
    return TritonScanConfig(fwd=ls, bwd=LS(8, max(ls.block_l, 8)))


def bwd_cfg(ls: LaunchShape) -> TritonScanConfig:
    return TritonScanConfig(fwd=LS(8, min(8, ls.block_l)), bwd=ls)


def short(ls: LaunchShape) -> str:
    extra = ("" if ls.prefetch else " nopf") + (f" st{ls.stages}" if ls.stages > 1 else "")
    return f"d{ls.block_d} l{ls.block_l} w{ls.num_warps}{extra}" + (f" r{ls.maxnreg}" if ls.maxnreg else "")


def bench_inputs(shape, requires_grad: bool, seed: int = 0) -> dict:
    return mamba_layer_inputs(shape, DEV, seed, requires_grad)


def call(fn, x, **kw):
    return fn(*[x[k] for k in NAMES], True, False, **kw)


F32, BF16 = torch.float32, torch.bfloat16


# ---------------------------------------------------------------- correctness


def errors(fn, case: Case, seed: int, **kw) -> dict[str, float]:
    """Relative errors of out, last state and every gradient against the fp64 reference."""
    x = make_inputs(case, seed, DEV)
    xs = {k: (v.clone().requires_grad_() if v is not None else None) for k, v in x.items()}
    x64 = {k: (v.detach().double().requires_grad_() if v is not None else None) for k, v in x.items()}
    out, last = fn(*[xs[k] for k in NAMES], case.softplus, True, **kw)
    ref_out, ref_last = selective_scan_ref(*[x64[k] for k in NAMES], case.softplus, True)
    g = torch.Generator(device=DEV).manual_seed(seed + 1)
    dout = torch.randn(out.shape, generator=g, device=DEV, dtype=torch.float64).to(out.dtype)
    dlast = torch.randn(last.shape, generator=g, device=DEV, dtype=torch.float64)
    present = [k for k in NAMES if x[k] is not None]
    grads = torch.autograd.grad((out.double() * dout).sum() + (last.double() * dlast).sum(),
                                [xs[k] for k in present])
    ref_grads = torch.autograd.grad((ref_out * dout.double()).sum() + (ref_last * dlast).sum(),
                                    [x64[k] for k in present])
    errs = {"out": rel_err(out, ref_out), "last": rel_err(last, ref_last)}
    errs.update({f"d{k}": rel_err(a, r) for k, a, r in zip(present, grads, ref_grads, strict=True)})
    return errs


def guarded(fn):
    """Report an exception as one line and go on: one broken config must not cost the run."""
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            where = tuple(str(a)[:40] for a in args[:2])
            print(f"ERROR in {fn.__name__}{where}: {type(e).__name__}: {e}"[:2000])
            ROWS.append({"kind": "error", "where": fn.__name__, "args": [str(a)[:80] for a in args[:3]],
                         "error": f"{type(e).__name__}: {e}"[:2000]})
            return False
    return wrapper


@guarded
def check(name: str, fn, case: Case, tol: float, **kw) -> bool:
    errs = errors(fn, case, seed=len(ROWS) + 7, **kw)
    worst = max(errs.values())
    ok = worst <= tol
    print(f"check {name:28s} {str(case.__dict__)[:90]:90s} worst {worst:.2e} (tol {tol:.0e}) "
          f"{'ok' if ok else 'FAIL'} " + " ".join(f"{k}={v:.1e}" for k, v in errs.items()))
    ROWS.append({"kind": "check", "name": name, "case": str(case), "errors": errs, "ok": ok})
    return ok


@guarded
def check_step(groups: int) -> bool:
    b, d, n = 64, 1536, 16
    g = torch.Generator(device=DEV).manual_seed(groups)
    state = torch.randn(b, d, n, generator=g, device=DEV)
    x, dt, z = (torch.randn(b, d, generator=g, device=DEV).bfloat16() for _ in range(3))
    A = -torch.rand(d, n, generator=g, device=DEV)
    shape_bc = (b, n) if groups == 0 else (b, groups, n)
    B, C = (torch.randn(*shape_bc, generator=g, device=DEV).bfloat16() for _ in range(2))
    D, bias = torch.randn(d, generator=g, device=DEV), torch.randn(d, generator=g, device=DEV)
    ref_state = state.double()
    y_ref = selective_state_update_ref(ref_state, x.double(), dt.double(), A.double(), B.double(), C.double(),
                                       D.double(), z.double(), bias.double(), True)
    y = selective_state_update_triton(state, x, dt, A, B, C, D, z, bias, True)
    errs = {"out": rel_err(y, y_ref), "state": rel_err(state, ref_state)}
    ok = errs["out"] <= 1e-2 and errs["state"] <= 1e-5
    shown = " ".join(f"{k}={v:.1e}" for k, v in errs.items())
    print(f"check step groups={groups} {shown} {'ok' if ok else 'FAIL'}")
    ROWS.append({"kind": "check", "name": f"step G={groups}", "errors": errs, "ok": ok})
    return ok


def run_checks() -> dict[str, bool]:
    tri, chk = selective_scan_triton, selective_scan_chunked
    bare = Case(2, 40, 129, 4, z=False, D=False, bias=False, softplus=False, dtype=F32)
    ok = {
        "triton fp32": check("triton fp32", tri, Case(2, 64, 333, 16, dtype=F32), 1e-4),
        "triton bf16": check("triton bf16", tri, Case(2, 256, 1000, 16, dtype=BF16), 1e-2),
        "triton fp32 grouped": check("triton fp32 grouped, no z", tri,
                                     Case(2, 64, 257, 16, groups=4, z=False, dtype=F32), 1e-4),
        "triton fp32 bare": check("triton fp32 N=4 no options", tri, bare, 1e-4),
        "triton fp64": check("triton fp64", tri, Case(1, 32, 100, 8), 1e-10),
        "chunked fp32": check("chunked fp32", chk, Case(2, 64, 333, 16, dtype=F32), 1e-4),
        "chunked bf16": check("chunked bf16", chk, Case(2, 256, 1000, 16, dtype=BF16), 1e-2),
    }
    small32, small16 = Case(2, 48, 150, 16, dtype=F32), Case(2, 48, 150, 16, dtype=BF16)
    for ls in BWD_SWEEP:
        ok[f"bwd {short(ls)}"] = check(f"triton fp32 bwd {short(ls)}", tri, small32, 1e-4, config=bwd_cfg(ls))
    for ls in FWD_SWEEP:
        ok[f"fwd {short(ls)}"] = check(f"triton bf16 fwd {short(ls)}", tri, small16, 1e-2, config=fwd_cfg(ls))
    ok["step"] = check_step(0) and check_step(4)
    ok.update(check_main_forward() or {"main forward": False})
    return ok


@guarded
def check_main_forward() -> dict[str, bool]:
    """The bf16 forward at the main shape against fp64 (mamba_ssm's error at this shape is in
    results/kernel-profile-standard-h100)."""
    ok = {}
    x = bench_inputs(MAIN, False)
    with torch.no_grad():
        ref = call(selective_scan_ref, {k: v.double() for k, v in x.items()})
        for name, fn in (("triton", selective_scan_triton), ("chunked", selective_scan_chunked)):
            err = rel_err(call(fn, x), ref)
            print(f"check {name} bf16 forward at {MAIN}: rel err {err:.2e}")
            ROWS.append({"kind": "check", "name": f"{name} bf16 fwd main", "errors": {"out": err},
                         "ok": err < 1e-2})
            ok[f"{name} main"] = err < 1e-2
    return ok


# ---------------------------------------------------------------- timing


@guarded
def timed(name: str, shape, mode: str, fn, x, label: str = "", fn_kw: dict | None = None, **bench_kw) -> dict:
    """Time fn on inputs x: mode 'fwd' under no_grad, 'fwd_bwd' forward + autograd.grad of all inputs."""
    fn_kw = fn_kw or {}
    if mode == "fwd":
        def run():
            with torch.no_grad():
                call(fn, x, **fn_kw)
    else:
        inputs = [x[k] for k in NAMES]
        dout = torch.randn(shape[:3], device=DEV, dtype=torch.bfloat16)

        def run():
            torch.autograd.grad(call(fn, x, **fn_kw), inputs, dout)
    t = benchmark(run, device=DEV, **bench_kw)
    s = ScanShape(*shape)
    row = {
        "kind": "time", "name": name, "shape": list(shape), "mode": mode, "config": label,
        "median_ms": t.median, "p20_ms": t.p20, "p80_ms": t.p80, "n": t.n,
        "gbps": scan_bytes(s, mode) / (t.median * 1e-3) / 1e9,
        "tflops": scan_flops(s, mode) / (t.median * 1e-3) / 1e12,
    }
    ROWS.append(row)
    print(f"time {name:8s} {str(shape):22s} {mode:7s} {label:22s} {t.median:9.3f} ms "
          f"[{t.p20:.3f}, {t.p80:.3f}] n={t.n}")
    return row


def sweep_jobs() -> list[tuple[str, tuple]]:
    return [("fwd", c) for c in FWD_SWEEP] + [("bwd", c) for c in BWD_SWEEP]


def warm(index: int, workers: int) -> None:
    """Worker: compile (by running once) every sweep job with index % workers == index."""
    for i, (kind, c) in enumerate(sweep_jobs()):
        if i % workers != index:
            continue
        x = bench_inputs(MAIN, kind == "bwd")
        if kind == "fwd":
            with torch.no_grad():
                call(selective_scan_triton, x, config=fwd_cfg(c))
        else:
            out = call(selective_scan_triton, x, config=bwd_cfg(c))
            torch.autograd.grad(out, [x[k] for k in NAMES], torch.randn_like(out))
        torch.cuda.synchronize()


def run_timing(quick: bool) -> None:
    x = bench_inputs(MAIN, False)
    tri = selective_scan_triton
    for c in FWD_SWEEP:
        timed("triton", MAIN, "fwd", tri, x, f"fwd {short(c)}", {"config": fwd_cfg(c)})
    xg = bench_inputs(MAIN, True)
    for c in BWD_SWEEP:
        timed("triton", MAIN, "fwd_bwd", tri, xg, f"bwd {short(c)}", {"config": bwd_cfg(c)})
    for T in CHUNK_SIZES:
        timed("chunked", MAIN, "fwd", selective_scan_chunked, x, f"T={T}", {"chunk_size": T}, rep_ms=300)
    timed("chunked", MAIN, "fwd_bwd", selective_scan_chunked, xg, "default", rep_ms=300)
    xs = bench_inputs(SMALL, False)
    for c in SMALL_FWD:
        timed("triton", SMALL, "fwd", tri, xs, f"fwd {short(c)}", {"config": fwd_cfg(c)})
    del xs
    timed("ref", MAIN, "fwd", selective_scan_ref, x, warmup_ms=1, rep_ms=1, min_reps=3)
    del x, xg
    for shape in SHAPES if not quick else SHAPES[:2]:
        x = bench_inputs(shape, True)
        dc = default_config()
        timed("triton", shape, "fwd", selective_scan_triton, x, f"default {short(dc.fwd)}")
        timed("triton", shape, "fwd_bwd", selective_scan_triton, x, f"default b:{short(dc.bwd)}")
        if shape == (1, 5120, 8192, 16):
            timed("chunked", shape, "fwd", selective_scan_chunked, x, rep_ms=300)
        del x
        torch.cuda.empty_cache()
    for b, d in ((1, 5120), (64, 2048)):
        n = 16
        state = torch.randn(b, d, n, device=DEV)
        xs, dt, z = (torch.randn(b, d, device=DEV).bfloat16() for _ in range(3))
        A = -torch.rand(d, n, device=DEV)
        B, C = (torch.randn(b, n, device=DEV).bfloat16() for _ in range(2))
        D, bias = torch.randn(d, device=DEV), torch.randn(d, device=DEV)
        s = ScanShape(b, d, 1, n)
        step_args = (state, xs, dt, A, B, C, D, z, bias, True)
        for name, fn in (("triton", selective_state_update_triton), ("ref", selective_state_update_ref)):
            for how in ("eager", "graph"):
                t = time_step(fn, step_args, how)
                gbps = scan_bytes(s, "step") / (t.median * 1e-3) / 1e9
                ROWS.append({"kind": "time", "name": f"step {name}", "shape": [b, d, 1, n], "mode": "step",
                             "config": how, "median_ms": t.median, "p20_ms": t.p20, "p80_ms": t.p80, "n": t.n,
                             "gbps": gbps, "tflops": scan_flops(s, "step") / (t.median * 1e-3) / 1e12})
                print(f"time step {name} {how} ({b}, {d}, {n}) {t.median * 1e3:.1f} us")


@guarded
def time_step(fn, args, how: str):
    """One decode step: eager (launch cost included), or per step of a 32-step CUDA graph replay."""
    if how == "eager":
        return benchmark(lambda: fn(*args), device=DEV)
    steps = 32
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(*args)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(steps):
            fn(*args)
    t = benchmark(graph.replay, device=DEV)
    return type(t)(tuple(v / steps for v in t.samples_ms))


def profile_once() -> None:
    """For Nsight Compute: one forward (no grad), then one forward+backward, default configs."""
    x = bench_inputs(MAIN, True)
    with torch.no_grad():
        call(selective_scan_triton, x)
    out = call(selective_scan_triton, x)
    torch.autograd.grad(out, [x[k] for k in NAMES], torch.randn_like(out))
    torch.cuda.synchronize()


def table(ceil, checks: dict[str, bool]) -> None:
    print("\n==== summary: device", torch.cuda.get_device_name(), "| torch", torch.__version__,
          "| triton", __import__("triton").__version__)
    print(f"ceilings: copy {ceil.copy_gbps:.0f} GB/s, bf16 matmul {ceil.matmul_tflops:.0f} TFLOP/s")
    print("checks:", " ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in checks.items()))
    print(f"{'backend':14s} {'shape':22s} {'mode':7s} {'config':20s} {'median ms':>10s} {'p20':>8s} "
          f"{'p80':>8s} {'GB/s':>7s} {'%copy':>6s} {'TFLOP/s':>8s}")
    for r in ROWS:
        if r["kind"] != "time":
            continue
        print(f"{r['name']:14s} {str(tuple(r['shape'])):22s} {r['mode']:7s} {r['config']:20s} "
              f"{r['median_ms']:10.4f} {r['p20_ms']:8.4f} {r['p80_ms']:8.4f} {r['gbps']:7.0f} "
              f"{100 * r['gbps'] / ceil.copy_gbps:6.1f} {r['tflops']:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=str, default="", help="worker mode: INDEX/WORKERS")
    ap.add_argument("--json", type=str, default="", help="write every row here")
    ap.add_argument("--quick", action="store_true", help="one extra shape only")
    ap.add_argument("--profile", action="store_true", help="one fwd and one fwd+bwd, for ncu")
    args = ap.parse_args()
    if args.profile:
        profile_once()
        return
    if args.warm:
        i, n = map(int, args.warm.split("/"))
        warm(i, n)
        return
    t0 = time.time()
    n_workers = min(8, len(sweep_jobs()))
    workers = [subprocess.Popen([sys.executable, __file__, "--warm", f"{i}/{n_workers}"], env=os.environ)
               for i in range(n_workers)]
    checks = run_checks()
    print(f"checks done at {time.time() - t0:.0f} s; waiting for {n_workers} compile workers")
    codes = [w.wait() for w in workers]
    print(f"workers done at {time.time() - t0:.0f} s, exit codes {codes}")
    ceil = measure_ceilings(DEV)
    ROWS.append({"kind": "ceilings", **ceil.to_dict()})
    run_timing(args.quick)
    print(f"all done at {time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(ROWS, f, indent=1)
    table(ceil, checks)


if __name__ == "__main__":
    main()
