"""Feed-forward sub-layer: Linear -> activation -> Linear (ReLU by default, as in MoE-Mamba)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}


class MLP(nn.Module):
    """x: (..., d_model) -> (..., d_model) through a hidden width ``d_ff``.

    No biases by default (2 * d_model * d_ff parameters). ``down`` is the residual output
    projection (``_residual_out`` marks it for the scaled init of the LM).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", bias: bool = False) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {tuple(ACTIVATIONS)}")
        self.activation = activation
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.down.weight._residual_out = True  # type: ignore[attr-defined]

    def forward(self, x: Tensor) -> Tensor:
        return self.down(ACTIVATIONS[self.activation](self.up(x)))

    def flops_per_token(self, seq_len: int = 1) -> int:
        """Forward matmul FLOPs for one token (2 per weight); independent of ``seq_len``."""
        return 2 * (self.up.weight.numel() + self.down.weight.numel())
