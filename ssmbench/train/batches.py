"""The training batches of one run: the data of its seed, and batches produced ahead on the GPU.

A comparison opens its data once (tokenizer, corpus, validation set: the same for every
seed); ``for_seed`` gives the training rows and order of another seed without reading the
corpus or training the tokenizer again. ``PrefetchedBatches`` hands the trainer batches that
worker processes made while the GPU ran the previous steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from ssmbench.data import SyntheticStream, TrainingData, TrainStream, WindowStream, prefetch_batches


def for_seed(data: TrainingData, seed: int) -> TrainingData:
    """``data`` with the training stream of ``seed`` (what ``open_training_data`` gives with that
    seed: its rows and order); tokenizer, corpus and validation tokens are shared."""
    stream = data.train
    if isinstance(stream, SyntheticStream):
        bpt = data.bytes_per_token
        train: SyntheticStream | WindowStream = SyntheticStream(stream.sampler, stream.tokenizer,
                                                                stream.seq_len, seed, bpt)
    elif isinstance(stream, WindowStream):
        train = WindowStream(stream.ids, stream.seq_len, seed, stream.name)
    else:
        raise TypeError(f"no seeded copy of a {type(stream).__name__}")
    return replace(data, train=train)


class PrefetchedBatches:
    """A training stream whose batches for consecutive steps (up to ``stop_step``) are made ahead
    by ``workers`` processes (``prefetch_batches``), page-locked when ``pin_memory``. A request out
    of that order (another step, other rows) restarts the production there; the rows are the
    stream's either way. Close it (or use it as a context manager) to stop the workers."""

    def __init__(self, stream: TrainStream, stop_step: int, workers: int, pin_memory: bool = False) -> None:
        self.stream, self.stop_step, self.workers, self.pin_memory = stream, stop_step, workers, pin_memory
        self.seq_len = stream.seq_len
        self.tokens_available = stream.tokens_available
        self._batches: Iterator[tuple[int, torch.Tensor]] | None = None
        self._key: tuple[int, int, int | None] | None = None
        self._next = -1

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(stop - start, seq_len + 1) int64: rows start..stop-1 of step ``step``'s batch."""
        if step >= self.stop_step:
            return self.stream.rows(step, batch_size, start, stop)
        key = (batch_size, start, stop)
        if self._batches is None or key != self._key or step != self._next:
            self.close()
            self._batches = prefetch_batches(self.stream, batch_size, step, self.stop_step, start=start,
                                             stop=stop, workers=self.workers, pin_memory=self.pin_memory)
            self._key = key
        got, rows = next(self._batches)
        if got != step:
            raise RuntimeError(f"prefetched step {got} where step {step} was asked for")
        self._next = step + 1
        return rows

    def train_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """(batch_size, seq_len + 1): the whole batch of step ``step``."""
        return self.rows(step, batch_size)

    def describe(self) -> dict[str, Any]:
        return self.stream.describe()

    def close(self) -> None:
        if self._batches is not None:
            self._batches.close()  # type: ignore[attr-defined]
            self._batches = None

    def __enter__(self) -> PrefetchedBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
