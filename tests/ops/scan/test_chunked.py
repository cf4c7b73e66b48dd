"""The chunked PyTorch scan against the sequential reference: values, final state, gradients."""

import pytest
import torch

from ssmbench.errors import BadInput
from ssmbench.ops import selective_scan
from ssmbench.ops.scan import chunked
from ssmbench.ops.scan.chunked import default_chunk_size, selective_scan_chunked
from tests.helpers import assert_close
from tests.ops.scan_cases import Case, check_against_ref, make_inputs

CASES = [
    Case(2, 6, 70, 4),
    Case(2, 6, 63, 3, groups=3),
    Case(1, 4, 1, 5),
    Case(2, 4, 7, 2, groups=2, z=False, D=False, bias=False, softplus=False),
    Case(3, 5, 200, 8, z=False),
    Case(1, 3, 129, 16, bias=False, softplus=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_chunked_matches_ref_fp64(case):
    check_against_ref(selective_scan_chunked, case, seed=CASES.index(case), tol=1e-10)


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 500])
def test_chunk_size_does_not_change_the_result(chunk_size):
    check_against_ref(selective_scan_chunked, Case(2, 3, 41, 4, groups=1), seed=chunk_size, tol=1e-10,
                      chunk_size=chunk_size)


def test_chunked_fp32_and_bf16():
    check_against_ref(selective_scan_chunked, Case(2, 6, 70, 4, dtype=torch.float32), seed=3, tol=1e-4)
    check_against_ref(selective_scan_chunked, Case(2, 6, 70, 4, dtype=torch.bfloat16), seed=4, tol=1e-2)


def test_chunked_without_grad_and_through_dispatcher():
    x = make_inputs(Case(2, 4, 33, 4), seed=5)
    args = [x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    with torch.no_grad():
        out = selective_scan_chunked(*args, True)
    assert_close(out, selective_scan(*args, True, backend="ref"), 1e-10, "no-grad out")
    assert_close(selective_scan(*args, True, backend="chunked"), out, 0.0, "dispatcher")


def test_chunked_rejects_bad_shapes():
    x = make_inputs(Case(1, 4, 9, 3), seed=6)
    with pytest.raises(BadInput):
        selective_scan_chunked(x["u"], x["delta"][..., :5], x["A"], x["B"], x["C"])
    with pytest.raises(BadInput):
        selective_scan_chunked(x["u"], x["delta"], x["A"][:, :2], x["B"], x["C"])
    with pytest.raises(BadInput):
        selective_scan_chunked(x["u"], x["delta"], x["A"], x["B"], x["C"], chunk_size=0)


def test_default_chunk_size():
    assert default_chunk_size(1) == 1
    assert default_chunk_size(2048) == 64
    assert default_chunk_size(5) == 8
    assert all(1 <= default_chunk_size(L) <= 64 for L in (3, 70, 10**6))


def test_small_groups_and_halved_chunks(monkeypatch):
    # one chunk per group (many checkpointed groups), and a limit that forces smaller chunks
    monkeypatch.setattr(chunked, "GROUP_ELEMENTS", 1)
    check_against_ref(selective_scan_chunked, Case(2, 4, 45, 3, groups=2), seed=7, tol=1e-10, chunk_size=8)
    monkeypatch.setattr(chunked, "EXP_LIMIT", {torch.float32: 0.5, torch.float64: 0.5})
    check_against_ref(selective_scan_chunked, Case(2, 4, 45, 3), seed=8, tol=1e-10)


def test_strong_decay_stays_finite_fp32():
    # delta ~ 6 and A down to -4: up to e^-24 per step, far beyond fp32 over one 64-step chunk
    x = make_inputs(Case(2, 4, 150, 4, dtype=torch.float32), seed=9)
    dt = torch.rand(x["delta"].shape, generator=torch.Generator().manual_seed(1)) * 6
    assert chunked.safe_chunk_size(dt, x["A"].abs().amax(-1), 64) < 64
    args = (x["u"], dt, x["A"], x["B"], x["C"], x["D"], x["z"])
    out, last = selective_scan_chunked(*args, return_last_state=True)
    ref_out, ref_last = selective_scan(*args, return_last_state=True, backend="ref")
    assert_close(out, ref_out, 1e-5, "out")
    assert_close(last, ref_last, 1e-5, "last state")


def test_chunked_mode(monkeypatch):
    u = torch.zeros(1, 2, 3)
    assert chunked.chunked_mode(u, needs_grad=False) == "eager"  # CPU: eager unless asked
    assert chunked.chunked_mode(u, needs_grad=False, compile=True) == "compiled"
    with pytest.raises(BadInput):
        chunked.chunked_mode(u, needs_grad=True, compile=True)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert chunked.chunked_mode(u, needs_grad=False) == "compiled"
    assert chunked.chunked_mode(u, needs_grad=True) == "eager"
    monkeypatch.setenv("SSMBENCH_CHUNKED_COMPILE", "0")
    assert chunked.chunked_mode(u, needs_grad=False) == "eager"


@pytest.mark.compile
def test_compiled_chunks_match_ref_and_last_state():
    # the torch.compile path (the default on CUDA without autograd), here through inductor's CPU
    # code generation: one grouped case at an odd length with several chunk groups
    case = Case(2, 8, 70, 4, groups=2, dtype=torch.float32)
    x = make_inputs(case, seed=11)
    args = [x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    with torch.no_grad():
        out, last = selective_scan_chunked(*args, True, True, chunk_size=16, compile=True)
        eager_out = selective_scan_chunked(*args, True, chunk_size=16, compile=False)
    ref, ref_last = selective_scan(*[a.double() for a in args], True, True, backend="ref")
    assert_close(out, ref, 1e-5, "compiled out")
    assert_close(last, ref_last, 1e-5, "compiled last state")
    assert_close(out, eager_out, 1e-5, "compiled vs eager")
