"""The language-model loss, shared by every LM (ours and the official reference): cross-entropy in
fp32 over the real vocabulary of a possibly padded logits tensor.

An LM head whose rows are padded (to a multiple of 64: GEMMs with an unaligned dimension such as
GPT-2's 50257 run on slow kernels) writes logits (..., V_pad); the loss sees only the first V
columns, which is the same as setting the padded logits to -inf. ``RealLogits`` takes those
columns in fp32 without an extra pass over the logits: the fp32 copy that the loss needs anyway
reads the strided columns, and its backward writes the gradient straight into a padded buffer
(zeros in the padded columns) instead of going through a slice's zero-filled full-size gradient.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class RealLogits(torch.autograd.Function):
    """logits (N, V_pad) -> logits[:, :V] in fp32, contiguous (N, V)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, vocab_size: int) -> Tensor:
        ctx.shape, ctx.dtype, ctx.vocab_size = logits.shape, logits.dtype, vocab_size
        return logits[:, :vocab_size].float()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        V = ctx.vocab_size
        out = grad.new_empty(ctx.shape, dtype=ctx.dtype)
        out[:, :V] = grad
        out[:, V:] = 0
        return out, None


def lm_loss(logits: Tensor, targets: Tensor, vocab_size: int) -> Tensor:
    """Mean cross-entropy in nats per token. logits: (B, T, V_pad >= vocab_size), any dtype;
    targets: (B, T) ids below vocab_size. Computed in fp32 over the first vocab_size columns."""
    flat = logits.reshape(-1, logits.shape[-1])  # (B T, V_pad)
    if logits.shape[-1] == vocab_size:
        real = flat.float()
    else:
        real = RealLogits.apply(flat, vocab_size)
    return F.cross_entropy(real, targets.reshape(-1))
