"""The Mamba layer's causal depthwise conv1d + SiLU on the GPU: PyTorch, the Triton kernels under
several launch shapes, and causal-conv1d's CUDA kernel when it is importable.

    PYTHONPATH=. python3 benchmarks/gpu/conv_variants.py [--json PATH] [--dry-run]

At the Mamba layer's shapes (batch, d_inner, L), width 4: x bf16, read as the first half of an
in_proj-like (batch, 2 d_inner, L) output as the layer slices it; weight (d_inner, 4) and bias
fp32, as under bf16 autocast. Passes: the forward under no_grad, and forward + backward
(autograd.grad of x, weight and bias). Providers: ``torch`` (F.conv1d depthwise with padding 3,
cut to L, then SiLU, as the layer runs nn.Conv1d under autocast), ``triton`` (forward rows: each
forward launch shape; forward+backward rows: the default forward and each backward launch
shape), ``causal_conv1d`` (``causal_conv1d_fn``), and ``copy`` (x into a fresh tensor: the
forward's bandwidth floor). Every provider is first checked at the timed shape against the fp32
reference (relative errors of y, dx, dweight, dbias); a wrong one is marked and not timed, so it
never shows a speed-up; one that raises is marked ERROR with its message in the JSON.
``triton.testing.do_bench`` (L2 flushed between runs): median, p20, p80 in ms, and GB/s of the
minimum traffic (bf16 x read and y written; backward: x and dy read, dx written).
``--dry-run``: tiny shapes on the CPU under the Triton interpreter, checks only.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from triton.testing import do_bench

from ssmbench.bench.environment import collect_environment
from ssmbench.ops.conv.ref import causal_conv1d_ref
from ssmbench.profile.problem import rel_err

# (batch, d_inner, L): paper-v1 training (batch 64, d_model 512), smaller and larger layers
SHAPES = [(64, 1024, 256), (32, 512, 256), (8, 2048, 1024), (8, 3072, 2048)]
DRY_SHAPES = [(1, 20, 150)]
WIDTH = 4
TOL = 2e-2  # bf16 outputs; fp32 sums of the parameter gradients are far tighter
# (block_d, block_l, num_warps)
FWD_LAUNCHES = [(16, 128, 4), (8, 128, 4), (32, 128, 4), (16, 256, 8), (64, 64, 4)]
BWD_LAUNCHES = [(16, 128, 4), (8, 128, 4), (8, 256, 4), (32, 64, 4), (16, 64, 2)]

Fn = Callable[[Tensor, Tensor, Tensor], Tensor]


def torch_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """What the layer runs: nn.Conv1d (padding width - 1) under autocast, cut to L, then SiLU."""
    dim, width = weight.shape
    w, b = weight.to(x.dtype)[:, None], bias.to(x.dtype)
    return F.silu(F.conv1d(x, w, b, padding=width - 1, groups=dim)[..., : x.shape[-1]])


def providers() -> tuple[list[tuple[str, str, str, Fn]], dict[str, str]]:
    """(provider, pass, variant, fn) for every timed row, and why causal-conv1d is absent (if so).
    Imports the kernels here, after main has set TRITON_INTERPRET for a dry run."""
    from ssmbench.ops.conv.triton import ConvConfig, ConvLaunch, causal_conv1d_triton

    def triton_fn(cfg: ConvConfig) -> Fn:
        return lambda x, w, b: causal_conv1d_triton(x, w, b, "silu", config=cfg)

    base = ConvConfig()
    jobs: list[tuple[str, str, str, Fn]] = [
        ("torch", p, "F.conv1d + silu", torch_conv) for p in ("fwd", "fwd+bwd")
    ]
    for bd, bl, nw in FWD_LAUNCHES:
        cfg = ConvConfig(ConvLaunch(bd, bl, nw), base.bwd)
        jobs.append(("triton", "fwd", f"fwd {bd}x{bl}/{nw}w", triton_fn(cfg)))
    for bd, bl, nw in BWD_LAUNCHES:
        cfg = ConvConfig(base.fwd, ConvLaunch(bd, bl, nw))
        jobs.append(("triton", "fwd+bwd", f"bwd {bd}x{bl}/{nw}w", triton_fn(cfg)))
    missing: dict[str, str] = {}
    try:
        import causal_conv1d
        from causal_conv1d import causal_conv1d_fn

        # a build carried onto the device has no package metadata: its own version string then
        version = getattr(causal_conv1d, "__version__", None) or importlib.metadata.version("causal-conv1d")
        cc: Fn = lambda x, w, b: causal_conv1d_fn(x, w, b, activation="silu")
        jobs += [("causal_conv1d", p, version, cc) for p in ("fwd", "fwd+bwd")]
    except (ImportError, importlib.metadata.PackageNotFoundError) as e:
        missing["causal_conv1d"] = f"not importable: {e}"
    return jobs, missing


def inputs(shape: tuple[int, int, int], device: torch.device) -> dict[str, Tensor]:
    """x (a view of an in_proj-like (batch, 2 dim, L) bf16 output), weight, bias fp32, dy bf16."""
    batch, dim, L = shape
    g = torch.Generator(device=device).manual_seed(0)
    xz = torch.randn(batch, 2 * dim, L, generator=g, device=device).to(torch.bfloat16).requires_grad_()
    weight = (0.5 * torch.randn(dim, WIDTH, generator=g, device=device)).requires_grad_()
    bias = (0.1 * torch.randn(dim, generator=g, device=device)).requires_grad_()
    dy = torch.randn(batch, dim, L, generator=g, device=device).to(torch.bfloat16)
    return {"x": xz[:, :dim], "weight": weight, "bias": bias, "dy": dy}


def reference(t: dict[str, Tensor]) -> dict[str, Tensor]:
    """y, dx, dweight, dbias of the fp32 reference on the same inputs."""
    x, w, b = (t[k].detach().float().requires_grad_() for k in ("x", "weight", "bias"))
    y = causal_conv1d_ref(x, w, b, "silu")
    dx, dw, db = torch.autograd.grad(y, (x, w, b), t["dy"].float())
    return {"y": y.detach(), "dx": dx, "dweight": dw, "dbias": db}


def check(fn: Fn, pass_: str, t: dict[str, Tensor], ref: dict[str, Tensor]) -> dict[str, float]:
    """Relative errors against the reference: y, and for fwd+bwd the three gradients."""
    args = (t["x"], t["weight"], t["bias"])
    if pass_ == "fwd":
        with torch.no_grad():
            return {"y": rel_err(fn(*args), ref["y"])}
    y = fn(*args)
    grads = torch.autograd.grad(y, args, t["dy"])
    return {"y": rel_err(y, ref["y"])} | {
        k: rel_err(g, ref[k]) for k, g in zip(("dx", "dweight", "dbias"), grads, strict=True)
    }


def timed(fn: Fn, pass_: str, t: dict[str, Tensor]) -> Callable[[], object]:
    args = (t["x"], t["weight"], t["bias"])
    if pass_ == "fwd":

        def run() -> object:
            with torch.no_grad():
                return fn(*args)

        return run
    return lambda: torch.autograd.grad(fn(*args), args, t["dy"])


def min_bytes(shape: tuple[int, int, int], pass_: str) -> int:
    """bf16 x read and y written; the backward adds x and dy read and dx written."""
    n = shape[0] * shape[1] * shape[2]
    return 2 * n * (2 if pass_ == "fwd" else 5)


def mark_speedups(rows: list[dict]) -> None:
    """speedup = torch's median / the row's, per (shape, pass); None for a row that failed its
    check or was not timed, or when torch itself failed or was not timed."""
    base = {
        (tuple(r["shape"]), r["pass"]): r["ms"]
        for r in rows
        if r["provider"] == "torch" and r["ok"] and r["ms"] is not None
    }
    for r in rows:
        ref_ms = base.get((tuple(r["shape"]), r["pass"]))
        ok = r["ok"] and r["ms"] is not None and ref_ms is not None
        r["speedup"] = ref_ms / r["ms"] if ok else None


def table(rows: list[dict]) -> str:
    lines = [f"{'shape':>16} {'pass':8} {'provider':14} {'variant':32} {'ms':>8} {'p20-p80':>15} "
             f"{'GB/s':>6} {'x torch':>7} {'max err':>8}"]  # fmt: skip
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        err = f"{max(r['err'].values()):8.1e}" if r["err"] else f"{'-':>8}"
        if r["ms"] is None:
            timing = f"{'-':>8} {'-':>15} {'-':>6}"
        else:
            timing = f"{r['ms']:8.4f} {r['p20']:7.4f}-{r['p80']:<7.4f} {r['gbps']:6.0f}"
        if r.get("error"):
            speed = "ERROR"
        elif not r["ok"]:
            speed = "WRONG"
        else:
            speed = "-" if r["speedup"] is None else f"{r['speedup']:.2f}"
        lines.append(f"{shape:>16} {r['pass']:8} {r['provider']:14} {r['variant']:32} {timing} "
                     f"{speed:>7} {err}")  # fmt: skip
    return "\n".join(lines)


def run(dry_run: bool) -> dict:
    device = torch.device("cpu" if dry_run else "cuda")
    jobs, missing = providers()
    for name, why in missing.items():
        print(f"{name}: {why}")
    rows: list[dict] = []
    for shape in DRY_SHAPES if dry_run else SHAPES:
        t = inputs(shape, device)
        ref = reference(t)
        all_jobs = [*jobs, ("copy", "fwd", "x -> fresh tensor", lambda x, w, b: x.contiguous())]
        for provider, pass_, variant, fn in all_jobs:
            row = {"shape": list(shape), "pass": pass_, "provider": provider, "variant": variant,
                   "err": {}, "ok": False, "error": None,
                   "ms": None, "p20": None, "p80": None, "gbps": None}  # fmt: skip
            try:
                row["err"] = {} if provider == "copy" else check(fn, pass_, t, ref)
                row["ok"] = all(e <= TOL for e in row["err"].values())
                if row["ok"] and not dry_run:
                    ms, p20, p80 = do_bench(timed(fn, pass_, t), quantiles=[0.5, 0.2, 0.8])
                    row |= {"ms": ms, "p20": p20, "p80": p80, "gbps": min_bytes(shape, pass_) / ms / 1e6}
            except Exception as e:
                # one failing provider (an unsupported argument, a compile error) must not cost
                # the other rows of the same run: its row says why
                row["error"] = f"{type(e).__name__}: {e}"[:500]
            print(json.dumps(row), flush=True)
            rows.append(row)
        del t, ref
    mark_speedups(rows)
    from ssmbench.ops.conv.triton import default_config

    return {
        "rows": rows,
        "missing": missing,
        "default_config": asdict(default_config()),
        "candidates": {"fwd": FWD_LAUNCHES, "bwd": BWD_LAUNCHES},
        "environment": collect_environment(device),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="", help="write the rows, the default config and the environment here")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU, interpreter, no timing")
    args = ap.parse_args(argv)
    if args.dry_run:
        # before any kernel module is imported: triton.jit reads it when it decorates
        os.environ["TRITON_INTERPRET"] = "1"
    result = run(args.dry_run)
    print(table(result["rows"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
