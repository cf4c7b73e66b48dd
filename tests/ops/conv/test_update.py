"""The conv decode step (ref and Triton) against a plain causal conv1d over the whole window."""

import pytest
import torch
import torch.nn.functional as F

from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.ops import available_backends, causal_conv1d_update, resolve_backend
from ssmbench.ops.conv.ref import causal_conv1d_update_ref
from ssmbench.ops.conv.triton_update import causal_conv1d_update_triton
from tests.helpers import assert_close

IMPLS = {"ref": causal_conv1d_update_ref, "triton": causal_conv1d_update_triton}
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 1e-2}


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


def plain_conv_steps(state0, xs, weight, bias, silu):
    """Outputs of len(xs) steps from state0 (B, D, L) by one causal conv1d over state0 ++ xs, in fp64,
    on the inputs as the state stores them; and the final state (the last L inputs)."""
    L, width, T = state0.shape[-1], weight.shape[1], len(xs)
    seq = torch.cat([state0, *(x[:, :, None].to(state0.dtype) for x in xs)], dim=-1)  # (B, D, L + T)
    y = F.conv1d(seq.double(), weight.double()[:, None], None if bias is None else bias.double(),
                 groups=weight.shape[0])  # fmt: skip
    # output j sees seq[j : j + width]; step t's window ends at column L + t
    y = y[:, :, L + 1 - width : L + 1 - width + T]
    y = F.silu(y) if silu else y
    return [y[:, :, t] for t in range(T)], seq[:, :, -L:]


@pytest.mark.parametrize("impl", ["ref", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("width,state_len", [(4, 4), (4, 3), (2, 2), (2, 5)])
def test_conv_steps_match_plain_conv(impl, dtype, width, state_len, device):
    g = torch.Generator().manual_seed(width * 10 + state_len)
    batch, dim, T = 3, 7, 6  # odd channel count: a partial channel block

    def rnd(*shape, dt=dtype):
        return torch.randn(*shape, generator=g).to(dt).to(device)

    state = rnd(batch, dim, state_len)
    state0 = state.clone()
    weight, bias = rnd(dim, width, dt=torch.float32), rnd(dim, dt=torch.float32)
    # x as a strided view of an (in_proj-like) output holding x and z side by side
    xs = [rnd(batch, 2 * dim)[:, :dim] for _ in range(T)]
    outs = [IMPLS[impl](x, state, weight, bias, "silu") for x in xs]
    ref_outs, ref_state = plain_conv_steps(state0, xs, weight, bias, silu=True)
    for t, (out, ref) in enumerate(zip(outs, ref_outs, strict=True)):
        assert out.dtype == dtype and out.is_contiguous()
        assert_close(out, ref, TOL[dtype], f"step {t}")
    assert torch.equal(state, ref_state), "state holds the last inputs, oldest first"


@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_conv_step_fp64_no_bias_no_activation_on_a_cache_slice(impl, device):
    f64 = dict(dtype=torch.float64, device=device)
    cache = torch.randn(2, 5, 4, 3, **f64)  # (batch, dim, state_len, layers): one layer's slice is strided
    untouched = cache[..., [0, 2]].clone()
    state0 = cache[..., 1].clone()
    weight = torch.randn(5, 3, **f64)
    xs = [torch.randn(2, 5, **f64) for _ in range(3)]
    outs = [IMPLS[impl](x, cache[..., 1], weight) for x in xs]
    ref_outs, ref_state = plain_conv_steps(state0, xs, weight, None, silu=False)
    for t, (out, ref) in enumerate(zip(outs, ref_outs, strict=True)):
        assert_close(out, ref, 1e-12, f"step {t}")
    assert torch.equal(cache[..., 1], ref_state)
    assert torch.equal(cache[..., [0, 2]], untouched)


def test_conv_triton_matches_ref_bf16_state_fp32_weights(device):
    g = torch.Generator().manual_seed(3)
    state = torch.randn(2, 9, 4, generator=g).to(torch.bfloat16).to(device)
    x = torch.randn(2, 9, generator=g).to(torch.bfloat16).to(device)
    weight, bias = torch.randn(9, 4, generator=g).to(device), torch.randn(9, generator=g).to(device)
    ref_state = state.clone()
    y_ref = causal_conv1d_update_ref(x, ref_state, weight, bias, "swish")
    y = causal_conv1d_update_triton(x, state, weight, bias, "swish")
    assert torch.equal(state, ref_state)
    # both sum in fp32 over the same bf16 inputs: at most one bf16 rounding apart
    assert (y.float() - y_ref.float()).abs().max() <= 2 ** -7 * y_ref.float().abs().max()


def test_conv_dispatch_and_backends(device):
    assert available_backends("cpu", "conv_step")[0] == "ref"
    assert resolve_backend("auto", "cpu", "conv_step") == "ref"
    if torch.cuda.is_available():
        assert resolve_backend("auto", "cuda", "conv_step") == "triton"
    with pytest.raises(BadInput, match="unknown conv_step backend"):
        resolve_backend("chunked", "cpu", "conv_step")
    state = torch.randn(1, 3, 2, device=device)
    s_ref = state.clone()
    x, w = torch.randn(1, 3, device=device), torch.randn(3, 2, device=device)
    out = causal_conv1d_update(x, state, w, activation="silu", backend="auto")
    assert_close(out, causal_conv1d_update_ref(x, s_ref, w, activation="silu"), 1e-6, "auto")


def test_triton_conv_without_interpreter_needs_cuda(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, state, w = torch.randn(1, 3), torch.randn(1, 3, 4), torch.randn(3, 4)
    with pytest.raises(BackendUnavailable):
        causal_conv1d_update_triton(x, state, w)


@pytest.mark.parametrize("impl", ["ref", "triton"])
def test_conv_step_bad_input(impl):
    x, state, w = torch.randn(2, 3), torch.randn(2, 3, 4), torch.randn(3, 4)
    fn = IMPLS[impl]
    with pytest.raises(BadInput, match="activation"):
        fn(x, state, w, activation="gelu")
    with pytest.raises(BadInput, match="state_len"):
        fn(x, torch.randn(2, 3, 2), w)  # state_len 2 < width - 1
    with pytest.raises(BadInput):
        fn(torch.randn(2, 4), state, w)
    with pytest.raises(BadInput, match="bias"):
        fn(x, state, w, torch.randn(4))
