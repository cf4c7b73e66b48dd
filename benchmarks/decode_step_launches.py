"""Count the kernels one Mamba decode step launches, with torch.profiler on CPU (a proxy for GPU launches).

    python benchmarks/decode_step_launches.py [--d-model 64] [--batch 1] [--json]

A kernel is an aten op that computes or copies: views (t, slice, select, transpose ...) and
allocations (empty ...) launch nothing and are not counted; a composite op (linear, matmul, to,
contiguous ...) counts the kernels of the ops it calls (none when it returns its input). Each call
of a Triton function (the conv step, the selective-state update) counts as one kernel, whatever
the interpreter does inside it.
Counts are per call of ``Mamba.step`` (one layer) and per ``LM.step`` layer (with the block's norm
and residual add), for the ref path and the triton path, in float32 and bfloat16.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from unittest import mock

import torch
from torch.profiler import ProfilerActivity, profile, record_function

# without a GPU the Triton functions run (and are counted) under the interpreter; this must be
# set before a kernel module is imported, and never on a GPU machine, where it would turn every
# later Triton kernel of the process into the slow CPU interpreter
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

TRITON_LABEL = "triton::"
# ops that launch nothing: views, allocations, no-op conjugation
NO_KERNEL = frozenset(
    "aten::" + n
    for n in (
        "view", "_unsafe_view", "_reshape_alias", "as_strided", "t", "mT", "transpose", "permute",
        "select", "slice", "narrow", "unsqueeze", "squeeze", "expand", "split", "split_with_sizes",
        "chunk", "unbind", "alias", "detach", "lift_fresh", "empty", "empty_like", "empty_strided",
        "resolve_conj", "resolve_neg", "result_type",
    )
)  # fmt: skip
# composites that launch whatever their children launch (nothing when they return their input)
WRAPPERS = frozenset(
    "aten::" + n for n in ("linear", "matmul", "to", "_to_copy", "contiguous", "reshape", "einsum", "flatten")
)
# module attribute -> where the ops dispatcher imports each Triton function from
TRITON_FUNCTIONS = (
    ("ssmbench.ops.state_update.triton", "selective_state_update_triton"),
    ("ssmbench.ops.conv.triton_update", "causal_conv1d_update_triton"),
)


def _kernels(event: object) -> Counter[str]:
    """Kernels under one profiler event: a Triton label counts once, a view or allocation zero, a
    composite what its children launch, any other aten op once (the CPU helpers it calls inside,
    such as the fill_ of a sum, are one kernel on the GPU)."""
    name = event.name  # type: ignore[attr-defined]
    if name.startswith(TRITON_LABEL):
        return Counter({name: 1})
    if name in WRAPPERS or not name.startswith("aten::"):
        total: Counter[str] = Counter()
        for child in event.cpu_children:  # type: ignore[attr-defined]
            total += _kernels(child)
        return total
    return Counter() if name in NO_KERNEL else Counter({name: 1})


def _labelled(fn: Callable[..., object], name: str) -> Callable[..., object]:
    @functools.wraps(fn)
    def call(*args: object, **kwargs: object) -> object:
        with record_function(TRITON_LABEL + name):
            return fn(*args, **kwargs)

    return call


@contextlib.contextmanager
def labelled_triton() -> Iterator[None]:
    """Wrap every Triton function the dispatcher may call in a profiler label (missing ones skipped)."""
    import importlib

    with contextlib.ExitStack() as stack:
        for module_name, attr in TRITON_FUNCTIONS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            if hasattr(module, attr):
                stack.enter_context(mock.patch.object(module, attr, _labelled(getattr(module, attr), attr)))
        yield


def count_kernels(fn: Callable[[], object]) -> Counter[str]:
    """Kernel ops (name -> count) that one call of ``fn`` launches, counted as the module docstring says."""
    with labelled_triton(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    total: Counter[str] = Counter()
    for event in prof.events():
        if event.cpu_parent is None:
            total += _kernels(event)
    return total


def mamba_step_counts(
    d_model: int, backend: str, dtype: torch.dtype, batch: int = 1
) -> dict[str, Counter[str]]:
    """Kernels of one ``Mamba.step`` and of one layer of ``LM.step`` (norm + residual + step)."""
    from ssmbench.layers.mamba import Mamba
    from ssmbench.layers.norm import build_norm

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer = Mamba(d_model, scan_backend="ref", step_backend=backend).to(device, dtype)
    norm = build_norm(d_model, 1e-5).to(device, dtype)
    state = layer.allocate_inference_cache(batch, dtype=dtype)
    x = torch.randn(batch, d_model, dtype=dtype, device=device)
    with torch.inference_mode():
        layer.step(x, state)  # warm: caches, first Triton compile
        mixer = count_kernels(lambda: layer.step(x, state))
        block = count_kernels(lambda: x + layer.step(norm(x), state))
    return {"mamba_step": mixer, "lm_layer": block}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    rows = []
    for backend in ("ref", "triton"):
        for dtype in (torch.float32, torch.bfloat16):
            counts = mamba_step_counts(args.d_model, backend, dtype, args.batch)
            rows.append(
                {
                    "backend": backend,
                    "batch": args.batch,
                    "dtype": str(dtype).removeprefix("torch."),
                    **{f"{k}_kernels": sum(c.values()) for k, c in counts.items()},
                    "mamba_step_ops": dict(sorted(counts["mamba_step"].items())),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        print(f"{r['backend']:>6} {r['dtype']:>8}: Mamba.step {r['mamba_step_kernels']:>3} kernels, "
              f"LM layer {r['lm_layer_kernels']:>3}  {r['mamba_step_ops']}")  # fmt: skip


if __name__ == "__main__":
    main()
