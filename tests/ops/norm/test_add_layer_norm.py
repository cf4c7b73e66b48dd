"""Residual add + LayerNorm: the Triton kernels (the interpreter on CPU) against the PyTorch
reference in fp64: out, s and the gradients of x, residual, weight and bias, with the gradient
reaching s from later uses. Output buffers are NaN-poisoned, so an unwritten element fails."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmbench.errors import BadInput
from ssmbench.ops.norm import triton as norm_triton
from ssmbench.ops.norm.ref import add_layer_norm_ref
from ssmbench.ops.norm.triton import add_layer_norm_triton
from tests.helpers import assert_close

TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


def test_reference_is_add_then_layer_norm():
    x, r = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    w, b = torch.randn(7), torch.randn(7)
    out, s = add_layer_norm_ref(x, r, w, b, 1e-5)
    assert torch.equal(s, r + x)
    assert_close(out, F.layer_norm(r + x, (7,), w, b, 1e-5), 1e-6, "ref")
    with pytest.raises(BadInput):
        add_layer_norm_ref(x[..., :6], r, w, b)


CASES = [  # (x dtype or None, residual dtype, out dtype, bias, D)
    (torch.float32, torch.float32, torch.float32, True, 20),
    (torch.bfloat16, torch.float32, torch.bfloat16, True, 33),  # the LM under bf16 autocast
    (None, torch.float32, torch.bfloat16, True, 16),  # the first block: no sub-layer output yet
    (torch.float32, torch.float32, torch.float32, False, 9),
    (torch.float64, torch.float64, torch.float64, True, 12),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"x{str(c[0])[6:]}-r{str(c[1])[6:]}-o{str(c[2])[6:]}-"
                                                       f"{'bias' if c[3] else 'nobias'}-D{c[4]}")
def test_triton_matches_reference(case, device, monkeypatch):
    x_dtype, r_dtype, out_dtype, has_bias, D = case
    # 15 rows on 4 backward programs: 4 rows each, the last one partly past the end
    monkeypatch.setattr(norm_triton, "BWD_PROGRAMS", 4)
    g = torch.Generator().manual_seed(0)

    def leaf(*shape, dtype, scale=1.0):
        return (scale * torch.randn(*shape, generator=g) + 0.3).to(dtype).to(device).requires_grad_()

    x = leaf(3, 5, D, dtype=x_dtype) if x_dtype is not None else None
    r = leaf(3, 5, D, dtype=r_dtype, scale=2.0)
    w, b = leaf(D, dtype=torch.float32), (leaf(D, dtype=torch.float32) if has_bias else None)
    dout = torch.randn(3, 5, D, generator=g).to(device)
    ds = torch.randn(3, 5, D, generator=g).to(device)
    leaves = [t for t in (x, r, w, b) if t is not None]

    def grads(fn, cast):
        xs = [t.detach().to(cast).requires_grad_() for t in leaves]
        it = iter(xs)
        args = [next(it) if t is not None else None for t in (x, r, w, b)]
        out, s = fn(args[0], args[1], args[2], args[3], 1e-5, out_dtype if cast is None else None)
        loss = (out.double() * dout.double()).sum()
        if x is not None:
            loss = loss + (s.double() * ds.double()).sum()  # s's later uses
        return out, s, torch.autograd.grad(loss, xs)

    out, s, got = grads(add_layer_norm_triton, None)
    ref_out, ref_s, want = grads(add_layer_norm_ref, torch.float64)
    assert out.dtype == out_dtype and s.dtype == r_dtype
    assert_close(out, ref_out, TOL[out_dtype], "out")
    assert_close(s, ref_s, TOL[r_dtype], "s")
    # a bf16 output receives its gradient in bf16: every input gradient is then that coarse
    coarsest = max(TOL[out_dtype], *(TOL[t.dtype] for t in leaves))
    for t, a, e in zip(leaves, got, want, strict=True):
        assert a.dtype == t.dtype
        assert_close(a, e, 10 * coarsest, "gradient")
