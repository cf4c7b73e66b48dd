"""gen-speed's defaults per model set: bytes to generate and batch sizes, as data.

A set sized for CPU tests decodes a few dozen bytes at two batch sizes (seconds on two cores);
the GPU sets decode the long sequences their speed claims are about. Any other set (or models
named without a set) gets ``PAPER``, the MambaByte paper's 8192 bytes at batch 1, 8 and 64.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenDefaults:
    """gen_len: bytes generated per sequence; batch_sizes: sequences decoded together;
    cpu_threads: torch threads on a CPU device (None: PyTorch's default). The tiny models run one
    thread: their kernels are microseconds long, and several threads on a shared machine wait on
    each other at every op (20x slower on two busy cores)."""

    gen_len: int
    batch_sizes: tuple[int, ...]
    cpu_threads: int | None = None


SMOKE = GenDefaults(gen_len=64, batch_sizes=(1, 4), cpu_threads=1)
SMALL = GenDefaults(gen_len=2048, batch_sizes=(1, 8, 64))
PAPER = GenDefaults(gen_len=8192, batch_sizes=(1, 8, 64))

GEN_DEFAULTS: dict[str, GenDefaults] = {
    "gen-smoke": SMOKE,
    "bytes-smoke": SMOKE,
    "smoke": SMOKE,
    "gen-small": SMALL,
    "bytes-small": SMALL,
    "small": SMALL,
    "gen-paper": PAPER,
}


def gen_defaults(model_set: str | None) -> GenDefaults:
    """The defaults of ``model_set`` (PAPER for a set not listed, or None)."""
    return GEN_DEFAULTS.get(model_set or "", PAPER)


def describe_defaults() -> str:
    """'gen-smoke: 64 bytes at batch sizes 1,4; ...' for the CLI's help text."""
    parts = []
    for name in ("gen-smoke", "gen-small", "gen-paper"):
        d = GEN_DEFAULTS[name]
        parts.append(f"{name}: {d.gen_len} bytes at batch sizes {','.join(map(str, d.batch_sizes))}")
    return "; ".join(parts)
