"""`ssmbench kernel-profile` with one implementation's output scaled by a factor: the gate check's
fast-but-wrong kernel, injected without editing the source.

In this process only, ``ssmbench.profile.scan.scan_impl`` and ``step_impl`` are wrapped so that the
chosen backend (default triton) returns its output times ``--factor`` (default 1.04); the float64
oracle the correctness check compares with is untouched, and the backward pass (fwd_bwd) scales
with the output. The gate must mark those rows 'incorrect' and exit 1.

    python benchmarks/gpu/gate_wrong_kernel.py [--factor 1.04] [--impl triton] -- --compare B.json --out DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import ssmbench.profile.scan as scan_mod
from ssmbench.cli import app


def scaled(real: Callable[[str], Callable[..., Any]], impl: str, factor: float) -> Callable[[str], Any]:
    """``real`` (scan_impl or step_impl) with backend ``impl``'s output multiplied by ``factor``."""

    def lookup(name: str) -> Callable[..., Any]:
        fn = real(name)
        if name != impl:
            return fn
        return lambda *args, **kwargs: fn(*args, **kwargs) * factor

    return lookup


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=1.04)
    parser.add_argument("--impl", default="triton")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="kernel-profile arguments, after --")
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    scan_mod.scan_impl = scaled(scan_mod.scan_impl, args.impl, args.factor)
    scan_mod.step_impl = scaled(scan_mod.step_impl, args.impl, args.factor)
    app(args=["kernel-profile", *rest], prog_name="ssmbench")


if __name__ == "__main__":
    main(sys.argv[1:])
