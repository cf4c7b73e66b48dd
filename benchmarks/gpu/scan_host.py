"""Where the scan's host time goes at short L (issue 12): ours beside mamba_ssm, on the GPU.

    PYTHONPATH=. python3 benchmarks/gpu/scan_host.py [--json PATH]

For the Triton scan and (when importable) mamba_ssm's ``selective_scan_fn``, with the Mamba layer's
inputs (bf16 u, delta, z, B, C; fp32 A, D, delta_bias; softplus): host microseconds per call
(wall time of n calls without synchronising, at a tiny shape where the GPU never holds the host
back), ``do_bench`` milliseconds at (8, 2048, L, 16) for L = 256, 512, and the same call captured
in a CUDA graph and replayed (GPU time alone). Then the host cost of single torch calls the
backward makes, and a cProfile of the Triton forward + backward at the tiny shape.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

import torch

from benchmarks.scan_problems import NAMES, capture_graph, mamba_layer_inputs
from ssmbench.ops.scan.triton import selective_scan_triton

TINY = (1, 64, 64, 16)
SHAPES = [(8, 2048, 256, 16), (8, 2048, 512, 16)]


def impls() -> dict:
    out = {"triton": lambda *a: selective_scan_triton(*a, delta_softplus=True)}
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        out["mamba_ssm"] = lambda *a: selective_scan_fn(*a, delta_softplus=True)
    except ImportError as e:
        print(f"mamba_ssm unavailable: {e}")
    return out


def calls(fn, shape):
    x = mamba_layer_inputs(shape, "cuda")
    leaves = [x[k].detach().clone().requires_grad_() for k in NAMES]
    dout = torch.randn_like(x["u"])

    def fwd():
        with torch.no_grad():
            return fn(*[x[k] for k in NAMES])

    def fwd_bwd():
        return torch.autograd.grad(fn(*leaves), leaves, dout)

    return fwd, fwd_bwd


def host_us(f, n: int = 300) -> float:
    for _ in range(10):
        f()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
        torch.cuda.synchronize()
    return best


def bench(f) -> list[float]:
    import triton.testing

    return triton.testing.do_bench(f, quantiles=[0.5, 0.2, 0.8])


def graph_ms(f) -> list[float]:
    g, _ = capture_graph(f)
    return bench(g.replay)


def op_costs() -> dict[str, float]:
    """Host microseconds of single torch calls like those around the kernels."""
    u = torch.randn(8, 64, 64, device="cuda", dtype=torch.bfloat16)
    acc = torch.zeros(100000, device="cuda")
    bc = torch.zeros(2, 4, 8, 64, 16, device="cuda")
    ops = {
        "torch.empty": lambda: torch.empty((8, 64, 64), device="cuda", dtype=torch.bfloat16),
        "torch.empty_like": lambda: torch.empty_like(u),
        "torch.zeros": lambda: torch.zeros(100000, device="cuda"),
        "slice acc[a:b]": lambda: acc[10:2000],
        "split_with_sizes (4 parts)": lambda: acc.split([10, 20, 30, 100000 - 60]),
        "view": lambda: bc.view(-1),
        "sum(1)": lambda: bc.sum(1),
        "to(bf16)": lambda: bc.to(torch.bfloat16),
        "transpose": lambda: bc.transpose(3, 4),
        "contiguous (no-op)": lambda: u.contiguous(),
        "is_contiguous": lambda: u.is_contiguous(),
        "data_ptr": lambda: u.data_ptr(),
        "is_grad_enabled": lambda: torch.is_grad_enabled(),
    }
    return {k: host_us(f, 2000) for k, f in ops.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out: dict = {"host_us": {}, "bench_ms": {}, "graph_ms": {}}
    fns = impls()
    for name, fn in fns.items():
        fwd, fwd_bwd = calls(fn, TINY)
        out["host_us"][name] = {"fwd": host_us(fwd), "fwd_bwd": host_us(fwd_bwd)}
        print(f"host {name:10s} fwd {out['host_us'][name]['fwd']:7.1f} us  "
              f"fwd+bwd {out['host_us'][name]['fwd_bwd']:7.1f} us", flush=True)
    for shape in SHAPES:
        for name, fn in fns.items():
            fwd, fwd_bwd = calls(fn, shape)
            for mode, f in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
                key = f"{name} {mode} {shape}"
                out["bench_ms"][key] = bench(f)
                try:
                    out["graph_ms"][key] = graph_ms(f)
                except Exception as e:  # noqa: BLE001
                    out["graph_ms"][key] = f"{type(e).__name__}: {e}"[:200]
                g, b = out["graph_ms"][key], out["bench_ms"][key]
                gtext = f"{g[0]:.4f}" if isinstance(g, list) else g
                print(f"{key:40s} eager {b[0]:.4f} ms [{b[1]:.4f}, {b[2]:.4f}]  graph {gtext}", flush=True)
    out["op_us"] = op_costs()
    print("  ".join(f"{k} {v:.1f}" for k, v in out["op_us"].items()))
    _, fwd_bwd = calls(fns["triton"], TINY)
    host_us(fwd_bwd, 50)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(500):
        fwd_bwd()
    prof.disable()
    torch.cuda.synchronize()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(22)
    out["cprofile"] = s.getvalue()
    print(out["cprofile"][-6000:])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
