"""Decoding state of a whole model: per-layer states and the position offset.

Like mamba_ssm's ``InferenceParams``. Each stateful layer owns the type of its state
(``KVCache`` for attention, ``MambaState`` for Mamba; None for stateless sub-layers); this
object holds them in layer order and knows how many positions have been consumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ssmbench.layers.attention import KVCache
from ssmbench.layers.mamba import MambaState


@dataclass
class InferenceCache:
    """batch_size, max_seqlen: what was allocated. seqlen_offset: positions consumed so far.

    position: None for the ordinary path (layers see ``seqlen_offset`` as a Python int). After
    ``use_static_positions()`` it is a 0-dim long device tensor that ``step`` reads and
    increments in place, so a captured CUDA graph of one step replays correctly; attention then
    attends over the whole buffer under a mask (constant cost per step).
    """

    batch_size: int
    max_seqlen: int
    layer_states: list[Any] = field(default_factory=list)
    seqlen_offset: int = 0
    position: Tensor | None = None

    def room(self) -> int:
        """Positions left before the cache is full."""
        return self.max_seqlen - self.seqlen_offset

    def check_room(self, n: int) -> None:
        if n > self.room():
            raise ValueError(
                f"inference cache of {self.max_seqlen} positions has {self.room()} left, asked for {n}"
            )

    def current_position(self) -> int | Tensor:
        """What a layer's ``step`` gets as ``pos``: the device tensor when static, else the int."""
        return self.position if self.position is not None else self.seqlen_offset

    def advance(self, n: int) -> None:
        self.seqlen_offset += n
        if self.position is not None:
            self.position.add_(n)

    def use_static_positions(self, device: torch.device | str) -> None:
        """Switch ``step`` to the static (graph-capturable) path from the current offset on."""
        self.position = torch.tensor(self.seqlen_offset, dtype=torch.long, device=device)

    def reset(self) -> None:
        """Zero every layer state and go back to position 0 (reuse the buffers for a new prompt)."""
        for state in self.layer_states:
            if state is not None:
                state.reset()
        self.seqlen_offset = 0
        if self.position is not None:
            self.position.zero_()


__all__ = ["InferenceCache", "KVCache", "MambaState"]
