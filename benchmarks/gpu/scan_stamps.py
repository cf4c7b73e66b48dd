"""Host time stamps inside one scan forward+backward, without a profiler (issue 12), on the GPU.

    PYTHONPATH=. python3 benchmarks/gpu/scan_stamps.py [--shape 8,2048,256,16] [--json PATH]

The kernel-profile fwd_bwd call (``torch.autograd.grad`` over the eight inputs, L2 flushed before
each call, CUDA events around it) of the Triton scan, of mamba_ssm's ``selective_scan_fn`` (when
importable), and of ``nop``: an autograd Function of the same eight inputs that launches nothing
(the autograd engine's own cost). ``time.perf_counter_ns`` stamps at the call's start, around each
kernel launch and around the backward; per segment the median, p20 and p80 in microseconds over
the calls, beside the event time of the call.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.scan_problems import NAMES, mamba_layer_inputs
from ssmbench.bench.timing import _flush_l2
from ssmbench.ops.scan import triton as T

STAMPS: list[tuple[str, int]] = []


def stamp(label: str) -> None:
    STAMPS.append((label, time.perf_counter_ns()))


class _Stamped:
    """Calls ``fn`` between two stamps."""

    def __init__(self, fn, label: str) -> None:
        self.fn, self.label = fn, label

    def __getattr__(self, name: str):
        return getattr(self.fn, name)

    def __call__(self, *a, **k):
        stamp(self.label)
        r = self.fn(*a, **k)
        stamp(self.label + " done")
        return r


def stamp_backward(fn_cls) -> None:
    orig = fn_cls.backward

    def backward(ctx, *grads):
        stamp("bwd enter")
        r = orig(ctx, *grads)
        stamp("bwd exit")
        return r

    fn_cls.backward = staticmethod(backward)


class Nop(torch.autograd.Function):
    """Eight inputs, no kernels: forward returns a fresh empty tensor, backward hands dout back."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        return torch.empty_like(u)

    @staticmethod
    def backward(ctx, dout):
        _ = ctx.saved_tensors
        return dout, dout, None, None, None, None, dout, None


def stamped_triton(mod):
    """The Triton scan of module ``mod`` with its launches and backward stamped."""
    mod.FWD = _Stamped(mod.FWD, "fwd launch")
    mod.BWD = _Stamped(mod.BWD, "bwd launch")
    stamp_backward(mod.SelectiveScanTriton)
    return lambda *a: mod.selective_scan_triton(*a, delta_softplus=True)


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def impls(before: Path | None = None) -> dict:
    stamp_backward(Nop)
    out = {"triton": stamped_triton(T), "nop": Nop.apply}
    if before is not None and before.exists():
        out["triton (before)"] = stamped_triton(load_module(before, "scan_before"))
    try:
        import mamba_ssm.ops.selective_scan_interface as si

        class Ext:
            fwd = _Stamped(si.selective_scan_cuda.fwd, "fwd launch")
            bwd = _Stamped(si.selective_scan_cuda.bwd, "bwd launch")

        si.selective_scan_cuda = Ext
        stamp_backward(si.SelectiveScanFn)
        out["mamba_ssm"] = lambda *a: si.selective_scan_fn(*a, delta_softplus=True)
    except ImportError as e:
        print(f"mamba_ssm unavailable: {e}")
    return out


def run(fn, shape, calls: int, device: str = "cuda") -> dict:
    x = mamba_layer_inputs(shape, device)
    leaves = [x[k].detach().clone().requires_grad_() for k in NAMES]
    dout = torch.randn_like(x["u"])
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(calls if cuda else 0)]
    per_call: list[list[tuple[str, int]]] = []
    for i in range(-50, calls):
        if cuda:
            _flush_l2(dev)
        if i >= 0 and cuda:
            events[i][0].record()
        STAMPS.clear()
        stamp("start")
        torch.autograd.grad(fn(*leaves), leaves, dout, allow_unused=True)
        stamp("end")
        if i >= 0:
            if cuda:
                events[i][1].record()
            per_call.append(list(STAMPS))
    if cuda:
        torch.cuda.synchronize()
    segs: dict[str, list[float]] = {}
    for st in per_call:
        for (a, ta), (b, tb) in zip(st, st[1:], strict=False):
            segs.setdefault(f"{a} -> {b}", []).append((tb - ta) / 1e3)
        segs.setdefault("whole call (host)", []).append((st[-1][1] - st[0][1]) / 1e3)
    if events:
        segs["event time"] = [s.elapsed_time(e) * 1e3 for s, e in events]
    return {k: [round(q, 1) for q in quantiles(v)] for k, v in segs.items()}


def quantiles(v: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(v, n=10)
    return statistics.median(v), q[1], q[7]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="8,2048,256,16")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run under TRITON_INTERPRET=1")
    ap.add_argument("--before", type=Path, default=None, help="an older ssmbench/ops/scan/triton.py")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    out = {}
    fns = impls(args.before)
    for r in range(args.rounds):  # the first round also warms the process up
        for base, fn in fns.items():
            name = f"{base} round {r + 1}"
            out[name] = run(fn, shape, args.calls, args.device)
            print(f"== {name} {shape}: us median [p20, p80]")
            for k, (m, lo, hi) in out[name].items():
                print(f"  {k:36s} {m:7.1f} [{lo:7.1f}, {hi:7.1f}]")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
