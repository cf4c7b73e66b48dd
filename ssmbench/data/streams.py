"""Training streams: the rows of every step's batch, each row a pure function of its address.

A stream answers ``rows(step, batch_size, start, stop)``: rows start..stop-1 of step ``step``'s
global batch of ``batch_size`` windows of seq_len + 1 tokens, as a (stop - start, T + 1) int64
tensor. Row i of step s depends only on (the data, the stream seed, s, i, batch_size), never
on what was asked before, so a resumed run, a prefetching worker and a data-parallel rank
taking rows [r*B/W, (r+1)*B/W) all see exactly the rows one process would.

- ``SyntheticStream``: the embedded grammar, generated on the fly; unbounded, never repeats.
- ``WindowStream``: a finite token stream cut into disjoint windows visited in a seeded
  permutation; a second pass (new permutation, new window offset) begins only after every
  window of the first was used.

``tokens_available`` is what one pass holds in the trainer's unit (windows x seq_len: a window
of T + 1 tokens trains T targets), or None for an unbounded stream; ``data_passes`` turns it and
the tokens trained into passes over the data.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ssmbench.data.permutation import permute, round_keys
from ssmbench.data.synthetic import GrammarSampler
from ssmbench.data.tokenizers import Tokenizer
from ssmbench.errors import BadInput

# entropy tags, so the generators of training rows, window orders and offsets never coincide
ROW_TAG = 0x524F57
ORDER_TAG = 0x4F5244
OFFSET_TAG = 0x4F4646
MAX_SKIP = 8  # a synthetic row starts 0..MAX_SKIP-1 tokens into its excerpt


class TrainStream(Protocol):
    """What the trainer reads: rows of a step's batch, how much one pass holds, a description."""

    seq_len: int
    tokens_available: int | None

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor: ...

    def train_batch(self, step: int, batch_size: int) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


def _row_range(step: int, batch_size: int, start: int, stop: int | None) -> tuple[int, int]:
    stop = batch_size if stop is None else stop
    if step < 0 or batch_size <= 0 or not 0 <= start <= stop <= batch_size:
        raise ValueError(f"rows {start}:{stop} of step {step} with batch size {batch_size}")
    return start, stop


class SyntheticStream:
    """Unbounded training rows from the embedded grammar, generated when asked for.

    Row i of step s is an excerpt of the grammar's stationary stream drawn from the generator
    seeded by (stream seed, s, i), tokenized, less its first 0..7 tokens (so rows do not all
    start at a word), cut to seq_len + 1 tokens. It does not depend on batch_size: every row is
    fresh text, so no token is trained on twice (``data_passes`` is 1.0 by construction).
    ``bytes_per_token`` sizes the text generated for a row; a row that comes out short is
    generated again, longer, so it affects speed only.
    """

    tokens_available: int | None = None

    def __init__(self, sampler: GrammarSampler, tokenizer: Tokenizer, seq_len: int, seed: int,
                 bytes_per_token: float) -> None:
        if seq_len <= 0:
            raise BadInput(f"--seq-len must be positive, got {seq_len}")
        self.sampler, self.tokenizer, self.seq_len, self.seed = sampler, tokenizer, seq_len, seed
        self._bytes_per_row = int((seq_len + MAX_SKIP + 1) * max(1.0, bytes_per_token) * 1.15) + 16

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(stop - start, seq_len + 1) int64 rows start..stop-1 of step ``step``."""
        start, stop = _row_range(step, batch_size, start, stop)
        width = self.seq_len + 1
        out = np.empty((stop - start, width), dtype=np.int64)
        pending = list(range(start, stop))
        n_bytes = self._bytes_per_row
        while pending:
            rngs = [np.random.default_rng([ROW_TAG, self.seed, step, i]) for i in pending]
            skips = [int(g.integers(0, MAX_SKIP)) for g in rngs]
            short = []
            for i, skip, text in zip(pending, skips, self.sampler.texts(rngs, n_bytes), strict=True):
                ids = self.tokenizer.encode(text)
                if len(ids) < skip + width:
                    short.append(i)
                else:
                    out[i - start] = ids[skip : skip + width]
            pending, n_bytes = short, 2 * n_bytes
        return torch.from_numpy(out)

    def train_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """(batch_size, seq_len + 1): the whole batch of step ``step``."""
        return self.rows(step, batch_size)

    def describe(self) -> dict[str, Any]:
        return {"train": "unbounded stream generated on the fly, row i of step s from (stream seed, s, i)",
                "stream_seed": self.seed, "tokens_per_pass": None,
                "data_passes_note": "every row is fresh text: data_passes is 1.0 by construction"}


class WindowStream:
    """A finite token stream in disjoint windows of seq_len + 1 tokens, seeded order, no repeats.

    Pass p starts its windows at offset o_p (0..seq_len, seeded) and visits the n_windows
    windows in a seeded permutation; global row g = step * batch_size + i is window
    perm_p(g mod n_windows) of pass p = g // n_windows. Within a pass no token is seen twice.
    """

    def __init__(self, ids: np.ndarray, seq_len: int, seed: int, name: str = "corpus") -> None:
        if seq_len <= 0:
            raise BadInput(f"--seq-len must be positive, got {seq_len}")
        width = seq_len + 1
        if len(ids) < width:
            raise BadInput(f"context {seq_len} is longer than the training split of {name} "
                           f"({len(ids)} tokens); use a shorter --seq-len or more data")
        self.ids, self.seq_len, self.seed, self.name = ids, seq_len, seed, name
        # keep a full window of slack for the per-pass offset when the data allows it
        n = (len(ids) - seq_len) // width
        self.n_windows = n if n >= 1 else len(ids) // width
        self._max_offset = min(seq_len, len(ids) - self.n_windows * width)

    @property
    def tokens_available(self) -> int:
        """Targets one pass trains: n_windows * seq_len (the trainer counts seq_len per row)."""
        return self.n_windows * self.seq_len

    def window_starts(self, step: int, batch_size: int, start: int = 0,
                      stop: int | None = None) -> np.ndarray:
        """(stop - start,) token offsets of the windows of rows start..stop-1 of step ``step``."""
        start, stop = _row_range(step, batch_size, start, stop)
        g = step * batch_size + np.arange(start, stop, dtype=np.int64)
        passes, k = np.divmod(g, self.n_windows)
        out = np.empty(len(g), dtype=np.int64)
        width = self.seq_len + 1
        for p in np.unique(passes).tolist():
            sel = passes == p
            offset = int(round_keys(OFFSET_TAG, self.seed, p)[0] % np.uint64(self._max_offset + 1))
            out[sel] = offset + width * permute(k[sel], self.n_windows, round_keys(ORDER_TAG, self.seed, p))
        return out

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(stop - start, seq_len + 1) int64 rows start..stop-1 of step ``step``."""
        starts = self.window_starts(step, batch_size, start, stop)
        return torch.from_numpy(self.ids[starts[:, None] + np.arange(self.seq_len + 1)].astype(np.int64))

    def train_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """(batch_size, seq_len + 1): the whole batch of step ``step``."""
        return self.rows(step, batch_size)

    def describe(self) -> dict[str, Any]:
        return {"train": "disjoint windows in a seeded order; a new pass only after every window was used",
                "stream_seed": self.seed, "train_tokens": int(len(self.ids)), "windows": self.n_windows,
                "tokens_per_pass": self.tokens_available}


def data_passes(tokens_trained: int, tokens_available: int | None) -> float:
    """Passes over the training data: tokens trained / tokens one pass holds.

    At most 1.0 means no token was trained on twice. An unbounded stream (None) never repeats:
    1.0 by construction once anything was trained (0.0 before).
    """
    if tokens_available is None:
        return 1.0 if tokens_trained > 0 else 0.0
    return tokens_trained / tokens_available


def passes_warning(tokens_trained: int, tokens_available: int | None, name: str = "the data") -> str | None:
    """One line for the user when training repeats data (more than one pass), else None."""
    passes = data_passes(tokens_trained, tokens_available)
    if passes <= 1.0:
        return None
    return (f"{name}: {passes:.2f} passes ({tokens_trained:,} tokens trained, {tokens_available:,} a pass): "
            "tokens are trained on more than once, so losses partly measure memorisation; "
            "give more data (--data-bytes) or fewer steps")
