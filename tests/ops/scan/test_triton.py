"""The fused Triton scan (run by the interpreter on CPU) against the sequential reference:
values, final state and every gradient. Output buffers are NaN-poisoned, so an element the
kernels never write fails. Interpreter shapes stay tiny: it runs every op in numpy."""

import pytest
import torch

from ssmbench.errors import BadInput
from ssmbench.ops import selective_scan
from ssmbench.ops.scan.triton import LaunchShape, TritonScanConfig, default_config, selective_scan_triton
from tests.helpers import assert_close
from tests.ops.scan_cases import NAMES, Case, check_against_ref, make_inputs


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setenv("SSMBENCH_POISON_OUTPUTS", "1")


CASES = [
    Case(2, 6, 70, 4),  # a partial last L block, a partial channel block
    Case(2, 6, 63, 3, groups=3),  # grouped B/C, N not a power of two
    Case(1, 4, 1, 5),  # L = 1
    Case(2, 8, 17, 8, groups=2, z=False, D=False, bias=False, softplus=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_triton_matches_ref_fp64(case, device):
    check_against_ref(selective_scan_triton, case, seed=CASES.index(case), tol=1e-10, device=device)


def test_triton_fp32_without_last_state_gradient(device):
    case = Case(2, 5, 33, 4, D=False, bias=False, dtype=torch.float32)
    check_against_ref(selective_scan_triton, case, seed=11, tol=1e-4, use_last=False, device=device)


def test_triton_bf16(device):
    check_against_ref(selective_scan_triton, Case(2, 6, 40, 4, dtype=torch.bfloat16), seed=12, tol=1e-2,
                      device=device)


def test_triton_other_block_shapes(device):
    # one state saved per forward block (STATE_EVERY = 1), wider channel blocks, no prefetch
    fwd = LaunchShape(block_d=8, block_l=4, prefetch=False)
    cfg = TritonScanConfig(fwd, LaunchShape(block_d=2, block_l=4, prefetch=False))
    check_against_ref(selective_scan_triton, Case(1, 10, 21, 4), seed=13, tol=1e-10, device=device,
                      config=cfg)


def test_triton_no_grad_path_and_dispatcher(device):
    x = make_inputs(Case(2, 4, 19, 4), seed=14, device=device)
    args = [x[k] for k in NAMES]
    with torch.no_grad():
        out = selective_scan_triton(*args, True)
        assert_close(out, selective_scan(*args, True, backend="ref"), 1e-10, "no-grad out")
        assert_close(selective_scan(*args, True, backend="triton"), out, 0.0, "dispatcher")


def test_triton_config_checks():
    with pytest.raises(BadInput):
        TritonScanConfig(LaunchShape(block_l=16), LaunchShape(block_l=8))
    with pytest.raises(BadInput):
        LaunchShape(block_d=6)


def test_default_config(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    cfg = default_config()
    assert (cfg.fwd.block_d, cfg.fwd.block_l, cfg.bwd.block_d, cfg.bwd.block_l) == (16, 8, 4, 16)
    assert cfg.bwd.block_l % cfg.fwd.block_l == 0
