"""Data sources (synthetic default, local files, enwik8, HF datasets) and tokenizers."""

from ssmbench.data.dataset import EVAL_MODES, EvalSet, TokenDataset
from ssmbench.data.sources import TextSource, load_source
from ssmbench.data.tokenizers import ByteTokenizer, Tokenizer, TokenizerInfo, resolve_tokenizer

__all__ = [
    "EVAL_MODES",
    "ByteTokenizer",
    "EvalSet",
    "TextSource",
    "TokenDataset",
    "Tokenizer",
    "TokenizerInfo",
    "load_source",
    "resolve_tokenizer",
]
