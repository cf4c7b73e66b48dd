"""Feed-forward and norm layers: the formulas they claim."""

import pytest
import torch

from ssmbench.layers.mlp import MLP
from ssmbench.layers.norm import build_norm
from tests.helpers import assert_close


def test_mlp_is_relu_feed_forward():
    m = MLP(12, 40)
    x = torch.randn(3, 5, 12)
    ref = torch.relu(x @ m.up.weight.T) @ m.down.weight.T
    assert_close(m(x), ref, 1e-6, "mlp")
    assert sum(p.numel() for p in m.parameters()) == 2 * 12 * 40
    assert m.flops_per_token() == 4 * 12 * 40


def test_mlp_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        MLP(4, 8, activation="tanh")


def test_norms():
    x = torch.randn(4, 7) * 3 + 1
    ln = build_norm(7)
    centred = x - x.mean(-1, keepdim=True)
    assert_close(ln(x), centred / (centred.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt(), 1e-5, "layernorm")
    rms = build_norm(7, kind="rmsnorm")
    assert_close(rms(x), x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt(), 1e-5, "rmsnorm")
    with pytest.raises(ValueError):
        build_norm(7, kind="batchnorm")
