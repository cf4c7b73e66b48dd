"""The Mamba block against a plain re-implementation on the sequential scan (ref and Triton
backends); init; decoding; the copies its training step makes."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssmbench.bench.op_counts import count_ops
from ssmbench.layers.mamba import Mamba, OutProj
from ssmbench.ops import available_backends
from ssmbench.ops.scan.ref import selective_scan_ref
from tests.helpers import assert_close


def mamba_plain(m: Mamba, x: torch.Tensor) -> torch.Tensor:
    """x (B, T, D): explicit conv taps, softplus and bias outside the scan, gate by the scan."""
    T, K = x.shape[1], m.d_conv
    xi, z = (x @ m.in_proj.weight.T).chunk(2, dim=-1)  # (B, T, Di)
    xp = F.pad(xi.transpose(1, 2), (K - 1, 0))  # (B, Di, T + K - 1)
    w = m.conv1d.weight[:, 0, :]  # (Di, K)
    conv = sum(xp[..., k : k + T] * w[:, k : k + 1] for k in range(K)) + m.conv1d.bias[:, None]
    xc = F.silu(conv)  # (B, Di, T)
    dt, Bm, Cm = (xc.transpose(1, 2) @ m.x_proj.weight.T).split([m.dt_rank, m.d_state, m.d_state], dim=-1)
    delta = F.softplus(dt @ m.dt_proj.weight.T + m.dt_proj.bias)  # (B, T, Di)
    y = selective_scan_ref(
        xc, delta.transpose(1, 2), -torch.exp(m.A_log), Bm.transpose(1, 2), Cm.transpose(1, 2), m.D,
        z.transpose(1, 2),
    )  # fmt: skip
    return y.transpose(1, 2) @ m.out_proj.weight.T


def _check_against_plain(m: Mamba, x: torch.Tensor, tol: float) -> None:
    out = m(x)
    ref = mamba_plain(m, x)
    assert_close(out, ref, tol, "mamba vs plain")
    dout = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *m.parameters()], dout)
    ref_grads = torch.autograd.grad(ref, [x, *m.parameters()], dout)
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for name, g, r in zip(names, grads, ref_grads, strict=True):
        assert_close(g, r, 10 * tol, f"grad {name}")


def test_mamba_forward_and_grads_match_plain():
    m = Mamba(d_model=20, d_state=5, scan_backend="ref")
    _check_against_plain(m, torch.randn(2, 11, 20, requires_grad=True), 1e-5)
    assert m.last_scan_backend == "ref"
    assert m.last_conv_backend == "ref"


def _need_triton(device: torch.device) -> None:
    # on the device the tests run on: the interpreter on CPU, compiled kernels on a GPU
    if "triton" not in available_backends(device):
        pytest.skip(f"triton cannot run on {device.type} here")


def test_mamba_triton_path_matches_plain(device):
    """The fused conv (reading x as a view of in_proj's output) and the Triton scan, odd length."""
    _need_triton(device)
    m = Mamba(d_model=8, d_state=4, dt_rank=3, scan_backend="triton").to(device)
    _check_against_plain(m, torch.randn(2, 13, 8, device=device, requires_grad=True), 1e-5)
    assert (m.last_scan_backend, m.last_conv_backend) == ("triton", "triton")


def test_out_proj_matches_linear():
    y = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)  # (B, Di, T)
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)  # (d_model, Di)
    assert_close(OutProj.apply(y, w), y.transpose(1, 2) @ w.t(), 1e-12, "out_proj")
    assert torch.autograd.gradcheck(OutProj.apply, (y, w))


def test_training_step_copies_pinned(device):
    """Forward + backward of one layer under bf16 autocast, triton backends: the copies of
    activation-sized tensors (at least B T d_model elements) are the five the layout leaves
    (the autocast casts of the input and of its gradient, z for the scan, y for out_proj's weight
    gradient, dx and dz into in_proj's channel-major gradient), none of them transposing, and one
    large elementwise op (the sum of u's two gradients). A new copy fails this test."""
    _need_triton(device)
    B, T, D = 2, 128, 16
    m = Mamba(d_model=D, d_state=4, scan_backend="triton").to(device)
    x = torch.randn(B, T, D, device=device, requires_grad=True)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = m(x)
        out.backward(torch.ones_like(out))

    counts = count_ops(step, large=B * T * D)
    table = counts.table()
    assert table["large_copies"] == 5, counts.log
    assert table["large_transposing_copies"] == 0, counts.log
    assert table["large_elementwise"] == 1, counts.log
    assert [name for name, _, _ in counts.log].count("cat") == 1


def test_mamba_init_and_size():
    d = 64
    m = Mamba(d_model=d)
    assert m.d_inner == 2 * d and m.d_state == 16 and m.d_conv == 4 and m.dt_rank == math.ceil(d / 16)
    assert torch.allclose(-torch.exp(m.A_log), -torch.arange(1, 17.0).expand(2 * d, 16), rtol=1e-6)
    assert torch.equal(m.D, torch.ones(2 * d))
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    assert dt.max() / dt.min() > 10  # spread over the log-uniform range
    n = sum(p.numel() for p in Mamba(d_model=512).parameters())
    assert 6 * 512**2 < n < 6.6 * 512**2  # "a little over 6 d^2"


def test_mamba_prefill_then_steps_match_forward():
    m = Mamba(d_model=16, d_state=4, scan_backend="ref", step_backend="ref")
    x = torch.randn(3, 10, 16)
    full = m(x)
    for split in (2, 6):  # prompt shorter and longer than the conv width
        state = m.allocate_inference_cache(3)
        outs = [m.prefill(x[:, :split], state)] + [m.step(x[:, t], state)[:, None] for t in range(split, 10)]
        assert_close(torch.cat(outs, dim=1), full, 1e-5, f"prefill {split} + steps")
    assert m.last_step_backend == "ref"
    state = m.allocate_inference_cache(3)
    m.prefill(x[:, :4], state)
    assert_close(m.prefill(x[:, 4:], state, offset=4), full[:, 4:], 1e-5, "continued prefill")


@pytest.mark.skipif("chunked" not in available_backends("cpu"), reason="chunked scan not available")
def test_mamba_default_backend_matches_ref():
    pytest.importorskip("ssmbench.ops.scan.chunked")
    m = Mamba(d_model=16, d_state=4, scan_backend="auto")
    x = torch.randn(2, 9, 16)
    out = m(x)
    assert m.last_scan_backend == "chunked"
    m.scan_backend = "ref"
    assert_close(out, m(x), 1e-5, "auto (chunked) vs ref")
