"""Data sources (synthetic default, pystdlib, local files, enwik8, HF datasets), tokenizers,
and the training streams built on them (``open_training_data``)."""

from ssmbench.data.dataset import EVAL_MODES, EvalSet, TokenDataset, make_eval_set
from ssmbench.data.prefetch import default_workers, prefetch_batches
from ssmbench.data.sources import TextSource, load_source
from ssmbench.data.streams import SyntheticStream, TrainStream, WindowStream, data_passes, passes_warning
from ssmbench.data.tokenizers import ByteTokenizer, Tokenizer, TokenizerInfo, resolve_tokenizer
from ssmbench.data.training_data import (
    DataRequest,
    TrainingData,
    bytes_for_tokens,
    measure_bytes_per_token,
    open_training_data,
)

__all__ = [
    "EVAL_MODES",
    "ByteTokenizer",
    "DataRequest",
    "EvalSet",
    "SyntheticStream",
    "TextSource",
    "TokenDataset",
    "Tokenizer",
    "TokenizerInfo",
    "TrainStream",
    "TrainingData",
    "WindowStream",
    "bytes_for_tokens",
    "data_passes",
    "default_workers",
    "load_source",
    "make_eval_set",
    "measure_bytes_per_token",
    "open_training_data",
    "passes_warning",
    "prefetch_batches",
    "resolve_tokenizer",
]
