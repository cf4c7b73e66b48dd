"""The sequence causal conv1d: the PyTorch reference against nn.Conv1d's causal form, and the
Triton kernels (the interpreter on CPU) against the fp64 reference: y and the gradients of x,
weight and bias. Output buffers are NaN-poisoned, so an element the kernels never write fails.
Shapes stay small and tiles are sized per case: the interpreter pays per program."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.ops.conv.ref import causal_conv1d_ref
from ssmbench.ops.conv.triton import ConvConfig, ConvLaunch, causal_conv1d_triton, default_config
from tests.helpers import assert_close

# per output dtype: y and dx have x's dtype, dweight and dbias their parameter's
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


@dataclass(frozen=True)
class Case:
    batch: int
    dim: int
    L: int
    width: int
    bias: bool = True
    silu: bool = True
    dtype: torch.dtype = torch.float32
    wdtype: torch.dtype | None = None  # weight and bias dtype; None: x's
    block: tuple[int, int] = (8, 32)  # (block_d, block_l) of both kernels

    def __str__(self) -> str:
        w = "" if self.wdtype is None else f"-w{str(self.wdtype)[6:]}"
        flags = ("bias-" if self.bias else "") + ("silu-" if self.silu else "")
        return f"{self.batch}x{self.dim}x{self.L}-W{self.width}-{flags}{str(self.dtype)[6:]}{w}"

    def config(self) -> ConvConfig:
        launch = ConvLaunch(*self.block, 1)
        return ConvConfig(launch, launch)


def make_inputs(
    case: Case, seed: int, device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """x (batch, dim, L), weight (dim, width), bias (dim,) or None, dy (batch, dim, L); leaves."""
    g = torch.Generator().manual_seed(seed)
    wdtype = case.wdtype or case.dtype

    def rnd(*shape, dtype, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(dtype).to(device).requires_grad_()

    x = rnd(case.batch, case.dim, case.L, dtype=case.dtype)
    weight = rnd(case.dim, case.width, dtype=wdtype, scale=case.width**-0.5)
    bias = rnd(case.dim, dtype=wdtype) if case.bias else None
    dy = torch.randn(case.batch, case.dim, case.L, generator=g).to(case.dtype).to(device)
    return x, weight, bias, dy


def leaves(x, weight, bias):
    return [t for t in (x, weight, bias) if t is not None]


def check_against_ref(case: Case, seed: int, device, x=None, weight=None, bias=None, dy=None) -> None:
    """Triton y, dx, dweight, dbias against the fp64 reference on the same (upcast) inputs;
    tolerance by each result's dtype. Inputs default to make_inputs(case, seed)."""
    if x is None:
        x, weight, bias, dy = make_inputs(case, seed, device)
    act = "silu" if case.silu else None
    y = causal_conv1d_triton(x, weight, bias, act, config=case.config())
    grads = torch.autograd.grad(y, leaves(x, weight, bias), dy)
    up = [None if t is None else t.detach().double().requires_grad_() for t in (x, weight, bias)]
    y_ref = causal_conv1d_ref(*up, act)
    grads_ref = torch.autograd.grad(y_ref, leaves(*up), dy.double())
    assert y.dtype == x.dtype and y.shape == x.shape and y.is_contiguous()
    assert_close(y, y_ref, TOL[y.dtype], f"{case} y")
    for name, leaf, got, ref in zip(
        ("dx", "dweight", "dbias"), leaves(x, weight, bias), grads, grads_ref, strict=False
    ):
        assert got.dtype == leaf.dtype, f"{case} {name} dtype"
        assert_close(got, ref, TOL[got.dtype], f"{case} {name}")


f32, bf16, f16, f64 = torch.float32, torch.bfloat16, torch.float16, torch.float64
CASES = [
    Case(2, 6, 63, 4),  # two time tiles, a partial channel block
    Case(1, 5, 1, 3, bias=False),  # L = 1: the neighbour chunks are all outside [0, L)
    Case(1, 9, 3, 4, block=(8, 8)),  # two channel blocks, one partial chunk
    Case(2, 3, 3, 2, silu=False),
    Case(1, 4, 1000, 4, block=(8, 256)),
    Case(2, 7, 63, 3, bias=False, silu=False),
    Case(1, 6, 63, 2),
    Case(1, 6, 40, 4, block=(4, 16)),  # 3 x 2 tiles: chunks across tile and channel-block edges
    Case(1, 6, 24, 3, block=(4, 8)),  # one chunk per tile row
    Case(2, 5, 17, 1, dtype=f64),  # width 1: no taps before t
    Case(1, 4, 63, 3, silu=False, dtype=f64),
    Case(2, 6, 63, 4, dtype=bf16, wdtype=f32),  # as under autocast: bf16 x, fp32 parameters
    Case(2, 6, 33, 3, bias=False, dtype=bf16),
    Case(1, 4, 1000, 2, dtype=bf16, block=(8, 256)),
    Case(1, 5, 50, 4, dtype=f16),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_triton_matches_ref(case, device):
    check_against_ref(case, seed=CASES.index(case), device=device)


def test_triton_reads_strided_views(device):
    """x as the first half of an in_proj-like (batch, 2 dim, L) output, dy channels-last, weight
    the (dim, width) view of an nn.Conv1d's (dim, 1, width) weight."""
    case = Case(2, 6, 45, 4, block=(4, 16))
    g = torch.Generator().manual_seed(7)
    xz = torch.randn(case.batch, 2 * case.dim, case.L, generator=g).to(device).requires_grad_()
    x = xz[:, : case.dim]
    w3 = (0.5 * torch.randn(case.dim, 1, case.width, generator=g)).to(device).requires_grad_()
    bias = torch.randn(case.dim, generator=g).to(device).requires_grad_()
    dy = torch.randn(case.batch, case.L, case.dim, generator=g).to(device).transpose(1, 2)
    assert not x.is_contiguous() and not dy.is_contiguous()
    y = causal_conv1d_triton(x, w3[:, 0], bias, "silu", config=case.config())
    dxz, dw3, dbias = torch.autograd.grad(y, (xz, w3, bias), dy)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w3[:, 0], bias))
    y_ref = causal_conv1d_ref(x64, w64, b64, "silu")
    dx_ref, dw_ref, db_ref = torch.autograd.grad(y_ref, (x64, w64, b64), dy.double())
    assert_close(y, y_ref, 1e-5, "y")
    assert_close(dxz[:, : case.dim], dx_ref, 1e-5, "dx")
    assert torch.equal(dxz[:, case.dim :], torch.zeros_like(dxz[:, case.dim :])), "z's half gets no gradient"
    assert_close(dw3[:, 0], dw_ref, 1e-5, "dweight")
    assert_close(dbias, db_ref, 1e-5, "dbias")


def test_triton_channels_last_x(device):
    """x whose steps are not adjacent in memory (copied by the wrapper), no bias, no activation."""
    case = Case(1, 5, 20, 3, bias=False, silu=False, dtype=f64, block=(8, 16))
    x0, weight, _, dy = make_inputs(case, seed=9, device=device)
    x = x0.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert x.stride(2) != 1
    check_against_ref(case, 9, device, x, weight, None, dy)


def test_triton_is_deterministic_and_tile_shapes_agree(device):
    case = Case(1, 6, 40, 4, block=(4, 16))
    x, weight, bias, dy = make_inputs(case, seed=3, device=device)
    runs = []
    for block in ((4, 16), (4, 16), (8, 8)):
        y = causal_conv1d_triton(x, weight, bias, "silu", config=replace(case, block=block).config())
        runs.append((y, *torch.autograd.grad(y, (x, weight, bias), dy)))
    for a, b in zip(runs[0], runs[1], strict=True):
        assert torch.equal(a, b), "two runs differ bit for bit"
    for a, b in zip(runs[0], runs[2], strict=True):
        assert_close(a, b, 1e-6, "other tiles")


def test_triton_no_grad_and_swish(device):
    x, weight, bias, _ = make_inputs(Case(2, 5, 20, 3), seed=4, device=device)
    with torch.no_grad():
        y = causal_conv1d_triton(x, weight, bias, "swish")
    assert not y.requires_grad
    assert_close(y, causal_conv1d_ref(x.double(), weight.double(), bias.double(), "silu"), 1e-5, "no-grad y")


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_ref_matches_causal_nn_conv1d(width, bias):
    """The reference (a sum of shifted products) is nn.Conv1d with padding width - 1, cut to L."""
    batch, dim, L = 2, 5, 37
    conv = nn.Conv1d(dim, dim, width, groups=dim, padding=width - 1, bias=bias).double()
    x = torch.randn(batch, dim, L, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(batch, dim, L, dtype=torch.float64)
    want = F.silu(conv(x)[..., :L])
    got = causal_conv1d_ref(x, conv.weight[:, 0], conv.bias, "silu")
    assert_close(got, want, 1e-14, "y")
    params = [x, conv.weight] + ([conv.bias] if bias else [])
    for a, b in zip(torch.autograd.grad(got, params, dy), torch.autograd.grad(want, params, dy), strict=True):
        assert_close(a, b, 1e-14, "gradient")
    # causal: y at t does not depend on x after t
    x2 = x.detach().clone()
    x2[..., 20:] += 1.0
    same = causal_conv1d_ref(x2, conv.weight[:, 0], conv.bias)[..., :20]
    assert torch.equal(same, causal_conv1d_ref(x.detach(), conv.weight[:, 0], conv.bias)[..., :20])


def test_ref_computes_in_fp32_and_returns_x_dtype():
    x = torch.randn(1, 3, 10).to(torch.bfloat16)
    w = torch.randn(3, 4)
    y = causal_conv1d_ref(x, w, None, "silu")
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, causal_conv1d_ref(x.float(), w, None, "silu").to(torch.bfloat16))


def test_bad_inputs(monkeypatch):
    x, w, b = torch.randn(2, 4, 9), torch.randn(4, 3), torch.randn(4)
    for args in [
        (x, w, b, "relu"),  # unknown activation
        (x[0], w, b, None),  # x not (batch, dim, L)
        (x, torch.randn(5, 3), None, None),  # dim mismatch
        (x, w, torch.randn(5), None),  # bias shape
        (x[..., :0], w, b, None),  # L = 0
    ]:
        for fn in (causal_conv1d_ref, causal_conv1d_triton):
            with pytest.raises(BadInput):
                fn(*args)
    with pytest.raises(BadInput, match="widths 1..4"):
        causal_conv1d_triton(x, torch.randn(4, 5))
    with pytest.raises(BadInput):
        ConvLaunch(block_d=6)
    with pytest.raises(BadInput):
        ConvLaunch(block_l=4)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailable):
        causal_conv1d_triton(x, w, b)
    assert default_config() == ConvConfig()
