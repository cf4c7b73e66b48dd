"""Random selective-scan problems shared by the GPU scripts under benchmarks/ and the scan tests
(tests/ops/scan_cases.py): one case type and one input builder, so both see the same inputs; and
the Mamba layer's own inputs at a timed shape (``mamba_layer_inputs``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@dataclass(frozen=True)
class Case:
    """One scan problem. groups 0: B/C of shape (batch, N, L); G > 0: (batch, G, N, L)."""

    batch: int
    dim: int
    L: int
    N: int
    groups: int = 0
    z: bool = True
    D: bool = True
    bias: bool = True
    softplus: bool = True
    dtype: torch.dtype = torch.float64


def make_inputs(case: Case, seed: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor | None]:
    """Fresh random inputs: activations and B/C in case.dtype, A/D/delta_bias in fp32 (fp64
    when case.dtype is fp64), as Mamba layers pass them. A < 0; delta centred for softplus."""
    g = torch.Generator().manual_seed(seed)
    act, par = case.dtype, torch.float64 if case.dtype == torch.float64 else torch.float32
    b, d, L, n = case.batch, case.dim, case.L, case.N

    def rnd(*shape, dtype, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype).to(device)

    bc = (b, n, L) if case.groups == 0 else (b, case.groups, n, L)
    delta = rnd(b, d, L, dtype=act, scale=0.5, shift=-1.0) if case.softplus else (
        torch.rand(b, d, L, generator=g, dtype=torch.float64) * 0.5).to(act).to(device)
    return {
        "u": rnd(b, d, L, dtype=act),
        "delta": delta,
        "A": (-torch.rand(d, n, generator=g, dtype=torch.float64) * 4 - 0.1).to(par).to(device),
        "B": rnd(*bc, dtype=act),
        "C": rnd(*bc, dtype=act),
        "D": rnd(d, dtype=par) if case.D else None,
        "z": rnd(b, d, L, dtype=act) if case.z else None,
        "delta_bias": rnd(d, dtype=par, scale=0.3) if case.bias else None,
    }


def mamba_layer_inputs(shape: tuple[int, int, int, int], device: torch.device | str, seed: int = 0,
                       grad: bool = False) -> dict[str, torch.Tensor]:
    """The inputs a Mamba layer passes at (batch, dim, L, N), for timing: bf16 u/delta/z/B/C; fp32
    A = -(1..N) per channel (S4D-real), D, and delta_bias = softplus^-1 of dt in [0.001, 0.1]
    (Mamba's dt init); every tensor requires grad when ``grad``."""
    b, d, L, n = shape
    g = torch.Generator(device=device).manual_seed(seed)
    bf = dict(device=device, dtype=torch.bfloat16)
    x = {
        "u": torch.randn(b, d, L, generator=g, **bf),
        "delta": torch.randn(b, d, L, generator=g, **bf) * 0.5,
        "A": -torch.arange(1, n + 1, device=device, dtype=torch.float32).repeat(d, 1),
        "B": torch.randn(b, n, L, generator=g, **bf),
        "C": torch.randn(b, n, L, generator=g, **bf),
        "D": torch.randn(d, generator=g, device=device),
        "z": torch.randn(b, d, L, generator=g, **bf),
        "delta_bias": torch.expm1(torch.rand(d, generator=g, device=device) * 0.099 + 0.001).log(),
    }
    return {k: t.requires_grad_(grad) for k, t in x.items()}


def capture_graph(f) -> tuple[torch.cuda.CUDAGraph, object]:
    """f captured in a CUDA graph after three warm-up calls on a side stream: (graph, the
    output tensors the replays write)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            f()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static = f()
    return g, static
