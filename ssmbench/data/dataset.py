"""Token windows for training (seeded random) and evaluation (a fixed set), with BPB bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssmbench.errors import BadInput

EVAL_MODES = ("nonoverlap", "sliding")


@dataclass(frozen=True)
class EvalSet:
    """inputs, targets: (N, T) int64; mask: (N, T) bool, True where a target is scored;
    n_bytes: raw bytes covered by the scored targets (the BPB denominator)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    n_tokens: int
    n_bytes: int
    mode: str
    stride: int


class TokenDataset:
    """Train and validation token streams of one tokenizer, cut into windows of seq_len + 1.

    The training batch of step s depends only on (seed, s), so every model of a comparison
    sees the same batches and a resumed run picks up where it stopped.
    """

    def __init__(self, train_ids: np.ndarray, val_ids: np.ndarray, seq_len: int,
                 token_bytes: np.ndarray, seed: int = 0) -> None:
        if seq_len <= 0:
            raise BadInput(f"--seq-len must be positive, got {seq_len}")
        for split, ids in (("training", train_ids), ("validation", val_ids)):
            if len(ids) < seq_len + 1:
                raise BadInput(f"context {seq_len} is longer than the {split} split "
                               f"({len(ids)} tokens); use a shorter --seq-len or more data")
        self.train_ids = torch.from_numpy(train_ids.astype(np.int32))  # int32 halves the memory of int64
        self.val_ids = torch.from_numpy(val_ids.astype(np.int32))
        self.seq_len = seq_len
        self.token_bytes = torch.from_numpy(token_bytes.astype(np.int64))
        self.seed = seed

    def train_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """(batch_size, seq_len + 1) windows at random offsets, the same for a given (seed, step)."""
        rng = np.random.default_rng([self.seed, step])
        starts = torch.from_numpy(rng.integers(0, len(self.train_ids) - self.seq_len, size=batch_size))
        offsets = torch.arange(self.seq_len + 1)
        return self.train_ids[starts[:, None] + offsets[None, :]].long()  # (B, T+1)

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(stop - start, seq_len + 1): rows start..stop-1 of ``train_batch(step, batch_size)``."""
        return self.train_batch(step, batch_size)[start:stop]

    def eval_set(self, max_windows: int, mode: str = "nonoverlap", stride: int | None = None) -> EvalSet:
        """The first ``max_windows`` windows of the validation split (see ``make_eval_set``)."""
        return make_eval_set(self.val_ids, self.seq_len, self.token_bytes, max_windows, mode, stride)


def _int64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x).astype(np.int64))


def make_eval_set(val_ids: np.ndarray | torch.Tensor, seq_len: int, token_bytes: np.ndarray | torch.Tensor,
                  max_windows: int, mode: str = "nonoverlap", stride: int | None = None) -> EvalSet:
    """The first ``max_windows`` windows of seq_len + 1 tokens of ``val_ids``.

    nonoverlap: windows start every seq_len tokens, every target scored once.
    sliding: windows start every ``stride`` tokens; a window scores only its last ``stride``
    targets (the first window scores all), so each target is predicted with at least
    seq_len - stride tokens of context. token_bytes: (vocab,) raw bytes per token, for n_bytes.
    """
    if mode not in EVAL_MODES:
        raise BadInput(f"unknown eval mode {mode!r}; choose from {', '.join(EVAL_MODES)}")
    if max_windows <= 0:
        raise BadInput(f"eval windows must be positive, got {max_windows}")
    t = seq_len
    step = t if mode == "nonoverlap" else (stride or t // 2)
    if not 0 < step <= t:
        raise BadInput(f"--eval-stride must be in 1..{t} (the context), got {step}")
    val = _int64(val_ids)
    if len(val) < t + 1:
        raise BadInput(f"context {t} is longer than the validation split ({len(val)} tokens); "
                       "use a shorter --seq-len or more data")
    starts = torch.arange(0, len(val) - t, step)[:max_windows]
    windows = val[starts[:, None] + torch.arange(t + 1)[None, :]].long()  # (N, T+1)
    mask = torch.ones(len(starts), t, dtype=torch.bool)
    if mode == "sliding":
        mask[1:, : t - step] = False
    targets = windows[:, 1:]
    n_bytes = int(_int64(token_bytes)[targets[mask]].sum())
    return EvalSet(windows[:, :-1].contiguous(), targets.contiguous(), mask, int(mask.sum()), n_bytes, mode,
                   step)
