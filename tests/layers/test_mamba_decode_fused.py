"""The Mamba block's fused decode step: equal to the full forward (ref and triton paths), the cached
A, and the number of kernels one step launches."""

import pytest
import torch

from benchmarks.decode_step_launches import count_kernels
from ssmbench.layers.mamba import Mamba
from ssmbench.models.config import LMConfig
from ssmbench.models.lm import LM
from tests.helpers import assert_close


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


def decode(m: Mamba, x: torch.Tensor, split: int) -> torch.Tensor:
    """Prefill x[:, :split] in parallel, then one step per token: (B, T, D)."""
    state = m.allocate_inference_cache(x.shape[0])
    outs = [m.prefill(x[:, :split], state)]
    outs += [m.step(x[:, t], state)[:, None] for t in range(split, x.shape[1])]
    return torch.cat(outs, dim=1)


# (backend, d_conv, batch, prompt lengths): prompts shorter and longer than the conv width;
# the Triton interpreter runs each program in Python, so its cases are smaller
CASES = [("ref", 4, 3, (1, 5)), ("ref", 2, 3, (1, 5)), ("triton", 4, 2, (2,)), ("triton", 2, 2, (3,))]


@pytest.mark.parametrize("step_backend,d_conv,batch,splits", CASES)
def test_fused_decode_equals_forward(step_backend, d_conv, batch, splits, device):
    torch.manual_seed(d_conv)
    m = Mamba(d_model=9, d_state=5, d_conv=d_conv, scan_backend="ref", step_backend=step_backend).to(device)
    with torch.no_grad():
        m.conv1d.bias.normal_()  # zero-init bias would hide a missing bias add
        m.D.normal_()
    x = torch.randn(batch, 7, 9, device=device)
    with torch.no_grad():
        full = m(x)
        for split in splits:
            assert_close(decode(m, x, split), full, 1e-4, f"{step_backend}: prefill {split} + steps")
    assert (m.last_step_backend, m.last_conv_step_backend) == (step_backend, step_backend)


def test_triton_step_matches_ref_step_in_bf16(device):
    torch.manual_seed(1)
    m = Mamba(d_model=8, d_state=4, scan_backend="ref", step_backend="ref").to(device, torch.bfloat16)
    x = torch.randn(2, 6, 8, device=device, dtype=torch.bfloat16)
    states = {b: m.allocate_inference_cache(2) for b in ("ref", "triton")}
    with torch.no_grad():
        for b in states:
            m.prefill(x[:, :3], states[b])
        for t in range(3, 6):
            outs = {}
            for b, state in states.items():
                m.step_backend = b
                outs[b] = m.step(x[:, t], state)
            assert outs["triton"].dtype == torch.bfloat16
            assert_close(outs["triton"], outs["ref"], 2e-2, f"bf16 step {t}")
    assert_close(states["triton"].ssm, states["ref"].ssm, 2e-2, "fp32 SSM state")
    assert_close(states["triton"].conv, states["ref"].conv, 1e-2, "bf16 conv state")


def test_decode_A_is_cached_until_A_log_changes():
    m = Mamba(d_model=8, d_state=3, scan_backend="ref", step_backend="ref")
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        state = m.allocate_inference_cache(2)
        A = m.decode_A()
        assert m.decode_A() is A and not A.requires_grad
        assert_close(A, -torch.exp(m.A_log), 0.0, "A")
        m.A_log.add_(torch.rand_like(m.A_log))  # in place, as an optimizer step would
        assert m.decode_A() is not A
        assert_close(m.decode_A(), -torch.exp(m.A_log), 0.0, "A after the update")
        full = m(x)
        outs = [m.prefill(x[:, :2], state)] + [m.step(x[:, t], state)[:, None] for t in range(2, 6)]
    assert_close(torch.cat(outs, dim=1), full, 1e-5, "decode after the update")


@pytest.mark.parametrize("dtype,batch", [(torch.float32, 2), (torch.bfloat16, 1)])
def test_triton_step_launches_six_kernels(dtype, batch, device):
    m = Mamba(d_model=8, d_state=4, scan_backend="ref", step_backend="triton").to(device, dtype)
    state = m.allocate_inference_cache(batch)
    x = torch.randn(batch, 8, dtype=dtype, device=device)
    with torch.inference_mode():
        m.step(x, state)
        kernels = count_kernels(lambda: m.step(x, state))
    assert kernels == {
        "aten::mm": 4,  # in_proj, x_proj, dt_proj, out_proj
        "triton::causal_conv1d_update_triton": 1,
        "triton::selective_state_update_triton": 1,
    }


def test_lm_triton_decode_equals_forward_and_records_paths(device):
    cfg = LMConfig(
        vocab_size=32, d_model=8, pattern=("mamba", "mamba"), d_state=4, max_seq_len=16,
        scan_backend="ref", step_backend="triton",
    )  # fmt: skip
    model = LM(cfg).to(device).eval()
    idx = torch.randint(0, 32, (2, 6), device=device)
    with torch.no_grad():
        full = model(idx).logits
        cache = model.allocate_inference_cache(2, 6)
        logits = [model.prefill(idx[:, :3], cache)]
        logits += [model.step(idx[:, t], cache)[:, None] for t in range(3, 6)]
    assert_close(torch.cat(logits, dim=1), full, 1e-4, "LM prefill + triton steps")
    assert model.kernel_paths()["step_backend"] == "triton"
    assert model.kernel_paths()["conv_step_backend"] == "triton"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_step_replays_in_a_cuda_graph():
    m = Mamba(d_model=64, step_backend="triton").cuda()
    x = torch.randn(2, 64, device="cuda")
    with torch.no_grad():
        eager_state = m.allocate_inference_cache(2)
        graph_state = m.allocate_inference_cache(2)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            m.step(x, m.allocate_inference_cache(2))  # warm-up (compile) outside the capture
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = m.step(x, graph_state)
        graph_state.reset()
        for _ in range(3):
            graph.replay()
            ref = m.step(x, eager_state)
            assert_close(out, ref, 1e-6, "graph replay vs eager")
        assert_close(graph_state.ssm, eager_state.ssm, 1e-6, "SSM state")
