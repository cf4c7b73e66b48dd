"""The training data of one run: the rows and order of its seed.

A comparison opens its data once (tokenizer, corpus, validation set: the same for every
seed); ``for_seed`` gives the training rows and order of another seed without reading the
corpus or training the tokenizer again. (Batches made ahead by worker processes, each rank's
rows only: ``ssmbench.train.loop.sharded_batches``.)
"""

from __future__ import annotations

from dataclasses import replace

from ssmbench.data import SyntheticStream, TrainingData, WindowStream


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
