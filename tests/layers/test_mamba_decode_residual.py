"""Mamba.step_residual's fused kernels (ssmbench.ops.decode) against the unfused step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssmbench.layers.mamba import Mamba
from ssmbench.ops.decode.common import MAX_BATCH, fused_decode_reason
from tests.helpers import assert_close


def _pair(dtype: torch.dtype, batch: int, device: torch.device, d_conv: int = 4
          ) -> tuple[Mamba, nn.LayerNorm, list, list]:
    torch.manual_seed(1)
    m = Mamba(24, d_state=4, d_conv=d_conv, expand=2, dt_rank=5, step_backend="triton").to(device, dtype)
    norm = nn.LayerNorm(24).to(device, dtype)
    with torch.no_grad():
        m.conv1d.bias.normal_()
        m.D.normal_()
        norm.weight.normal_()
        norm.bias.normal_()
    states = [m.allocate_inference_cache(batch, dtype=dtype) for _ in range(2)]
    states[0].ssm.normal_()
    states[0].conv.normal_()
    states[1].ssm.copy_(states[0].ssm)
    states[1].conv.copy_(states[0].conv)
    return m, norm, states[0], states[1]


@pytest.mark.parametrize("gemv", ["cublas", "triton"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_fused_step_matches_unfused(gemv: str, dtype: torch.dtype, tol: float, device: torch.device) -> None:
    batch = 3
    m, norm, s_fused, s_ref = _pair(dtype, batch, device, d_conv=3)
    m.decode_gemv = gemv
    for _ in range(3):
        x = torch.randn(batch, 24, dtype=dtype, device=device)
        m.fused_decode = True
        got = m.step_residual(x, norm, s_fused)
        assert m.last_decode_path == f"fused-{gemv}-gemv"
        m.fused_decode = False
        want = m.step_residual(x, norm, s_ref)
        assert m.last_decode_path == "unfused"
        assert_close(got.float(), want.float(), tol, f"{gemv} {dtype} output")
        assert_close(s_fused.ssm, s_ref.ssm, tol, "ssm state")
        assert_close(s_fused.conv.float(), s_ref.conv.float(), tol, "conv state")


def test_fused_step_falls_back(device: torch.device) -> None:
    m, norm, s, _ = _pair(torch.float32, MAX_BATCH + 1, device)
    assert fused_decode_reason(torch.zeros(MAX_BATCH + 1, 24, device=device)) is not None
    m.step_residual(torch.randn(MAX_BATCH + 1, 24, device=device), norm, s)
    assert m.last_decode_path == "unfused"
    m2, _, s2, _ = _pair(torch.float32, 2, device)
    m2.step_residual(torch.randn(2, 24, device=device), nn.RMSNorm(24).to(device), s2)  # not a LayerNorm
    assert m2.last_decode_path == "unfused"
    m2.step_backend = "ref"
    m2.step_residual(torch.randn(2, 24, device=device), norm, s2)
    assert m2.last_decode_path == "unfused"
