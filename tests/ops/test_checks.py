"""Shape checks and the compute-dtype rule the ops' backends share."""

import pytest
import torch

from ssmbench.errors import BadInput
from ssmbench.ops.checks import compute_dtype, conv_update_shapes, scan_shapes, state_update_shapes


def test_compute_dtype():
    x32, x64, xbf = torch.zeros(1), torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.bfloat16)
    assert compute_dtype(x32, xbf, None) == torch.float32
    assert compute_dtype(xbf, None, x64) == torch.float64


def test_scan_shapes():
    u, A, B = torch.zeros(2, 6, 5), torch.zeros(6, 4), torch.zeros(2, 3, 4, 5)
    assert scan_shapes(u, u, A, B, B) == (2, 6, 5, 4, 3)
    with pytest.raises(BadInput, match="divisible"):
        scan_shapes(u, u, A, torch.zeros(2, 4, 4, 5), torch.zeros(2, 4, 4, 5))
    with pytest.raises(BadInput, match="D must be"):
        scan_shapes(u, u, A, B, B, D=torch.zeros(5))


def test_state_update_shapes():
    state, x, A = torch.zeros(2, 6, 4), torch.zeros(2, 6), torch.zeros(6, 4)
    assert state_update_shapes(state, x, x, A, torch.zeros(2, 4), torch.zeros(2, 4)) == (2, 6, 4, 1)
    assert state_update_shapes(state, x, x, A, torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)) == (2, 6, 4, 3)
    with pytest.raises(BadInput, match="disagree"):
        state_update_shapes(state, torch.zeros(2, 5), x, A, torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(BadInput, match="G dividing"):
        state_update_shapes(state, x, x, A, torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))


def test_conv_update_shapes():
    x, state, w = torch.zeros(2, 3), torch.zeros(2, 3, 5), torch.zeros(3, 4)
    assert conv_update_shapes(x, state, w, None, "silu") == (2, 3, 5, 4)
    with pytest.raises(BadInput, match="activation"):
        conv_update_shapes(x, state, w, None, "relu")
