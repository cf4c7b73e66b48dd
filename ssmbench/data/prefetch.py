"""Batches produced ahead of the training step, in worker processes, in step order.

Generating a synthetic batch (text and tokenization) costs milliseconds of Python, about a
small model's GPU step; worker processes make it overlap with training. Every item is a pure
function of its step (see ssmbench.data.streams), so the batches are the same whatever the
number of workers, and 0 workers (the main process) gives them too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ssmbench.data.streams import TrainStream


class StepBatches(Dataset):
    """Item k < stop_step - first_step: (step, rows start..stop-1 of its batch), step = first_step + k."""

    def __init__(self, stream: TrainStream, batch_size: int, first_step: int, stop_step: int,
                 start: int = 0, stop: int | None = None) -> None:
        if not 0 <= first_step <= stop_step:
            raise ValueError(f"steps {first_step}..{stop_step} are not a range")
        self.stream, self.batch_size = stream, batch_size
        self.first_step, self.stop_step = first_step, stop_step
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop_step - self.first_step

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        step = self.first_step + k
        return step, self.stream.rows(step, self.batch_size, self.start, self.stop)


def default_workers(stream: TrainStream) -> int:
    """Worker processes worth using: none for a finite stream (a batch is an index lookup),
    up to 2 for a generated one, leaving a core for the training process."""
    if stream.tokens_available is not None:
        return 0
    return min(2, max(0, (os.cpu_count() or 1) - 1))


def prefetch_batches(stream: TrainStream, batch_size: int, first_step: int, stop_step: int, *,
                     start: int = 0, stop: int | None = None, workers: int | None = None,
                     prefetch: int = 4, pin_memory: bool = False) -> Iterator[tuple[int, torch.Tensor]]:
    """(step, (rows, seq_len + 1) int64) for steps first_step..stop_step-1, in order.

    workers: processes producing batches (None: ``default_workers``; 0: the calling process,
    nothing ahead); each keeps ``prefetch`` batches ready. pin_memory: page-locked batches for
    asynchronous copies to the GPU.
    """
    items = StepBatches(stream, batch_size, first_step, stop_step, start, stop)
    workers = default_workers(stream) if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    loader = DataLoader(items, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                        prefetch_factor=prefetch if workers else None)
    yield from loader
