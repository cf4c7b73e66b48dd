"""Where the chunked scan's time goes on the GPU: a kernel table and variants side by side.

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/chunked_variants.py [--json PATH]

At (8, 1536, 2048, 16) bf16 with z, D, delta_bias, softplus (kernel-profile's first standard shape): first the
torch.profiler kernel tables of one no-grad forward of ``ssmbench.ops.scan.chunked``, eager
and compiled, then the forward (no grad) eager and through torch.compile with other values of
its module constants (``GROUP_ELEMENTS``, the state elements one group of chunks works on;
``MAX_CHUNK``), each checked against ref on a small shape first. Median / p20 / p80 of
CUDA-event samples with L2 flushed (ssmbench.bench.timing).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.gpu import bwd_variants
from benchmarks.scan_problems import NAMES, Case, make_inputs
from ssmbench.bench.timing import benchmark
from ssmbench.ops.scan import chunked
from ssmbench.ops.scan.ref import selective_scan_ref
from ssmbench.profile.problem import rel_err

DEV = bwd_variants.DEV
# (label, module constants, compile)
VARIANTS = [
    ("eager", {}, False),
    ("compiled", {}, True),
    ("compiled group 2^26", {"COMPILED_GROUP_ELEMENTS": 2**26}, True),
]


def inputs() -> list[torch.Tensor]:
    """bwd_variants' inputs (bf16, S4D-real A = -(1..16), dt in about [0.001, 0.1]), no grad."""
    x = bwd_variants.inputs()
    return [x[k].detach() for k in NAMES]


def with_constants(consts: dict):
    """Set module constants; returns the old ones."""
    old = {k: getattr(chunked, k) for k in consts}
    for k, v in consts.items():
        setattr(chunked, k, v)
    return old


def check(compile: bool) -> float:
    x = make_inputs(Case(2, 64, 333, 16, dtype=torch.float32), 3, DEV)
    with torch.no_grad():
        out = chunked.selective_scan_chunked(*[x[k] for k in NAMES], True, compile=compile)
    ref = selective_scan_ref(*[x[k].double() for k in NAMES], True)
    return rel_err(out, ref)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rows: list[dict] = []
    x = inputs()
    for compile in (False, True):
        with torch.no_grad():
            chunked.selective_scan_chunked(*x, True, compile=compile)
            torch.cuda.synchronize()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                chunked.selective_scan_chunked(*x, True, compile=compile)
                torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=70)
        print("compiled" if compile else "eager", table, sep="\n")
        rows.append({"kind": "profile", "compile": compile, "table": table})
    for name, consts, compile in VARIANTS:
        old = with_constants(consts)
        try:
            err = check(compile)
            with torch.no_grad():
                t = benchmark(lambda c=compile: chunked.selective_scan_chunked(*x, True, compile=c),
                              device=DEV)
        except Exception as e:  # noqa: BLE001 - one failing variant must not cost the run
            print(f"chunked fwd {name:14s} ERROR {type(e).__name__}: {e}"[:400])
            continue
        finally:
            with_constants(old)
        rows.append({"kind": "time", "label": name, "rel_err": err, "median_ms": t.median, "p20_ms": t.p20,
                     "p80_ms": t.p80, "n": t.n})
        print(f"chunked fwd {name:14s} {t.median:8.3f} ms [{t.p20:.3f}, {t.p80:.3f}] n={t.n} err {err:.1e}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
