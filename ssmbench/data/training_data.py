"""Everything a comparison trains and evaluates on: tokenizer, training stream, validation set.

``open_training_data(DataRequest(...))`` returns a ``TrainingData``:

- ``synthetic`` (default): the embedded grammar of ``data_seed``. Training rows are generated on
  the fly (unbounded, never repeated); with ``data_bytes`` it is instead a finite corpus of that
  many bytes (to study repetition on purpose).
- ``pystdlib``, ``enwik8``, a local path: the training split (cut to ``data_bytes`` when given)
  in disjoint windows, no window repeated before all were used.
- ``hf:c4``, ``hf:pg19``: ``data_bytes`` of streamed training text; without it, enough for one
  pass of ``tokens_needed`` trained tokens (bytes per token measured on the validation text),
  else DEFAULT_HF_BYTES.

The grammar, the tokenizer (and the text it is trained on) and the validation set depend on
the data (spec, data_seed, data_bytes) only, never on the run seed: seeds of one comparison
share them. The run seed (``seed``) picks the training rows and their order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssmbench.data.dataset import EvalSet, make_eval_set
from ssmbench.data.sources import grammar_for, load_source, synthetic_info
from ssmbench.data.streams import SyntheticStream, WindowStream
from ssmbench.data.synthetic import GrammarSampler
from ssmbench.data.tokenizers import BPE_TRAIN_BYTES, Tokenizer, TokenizerInfo, resolve_tokenizer
from ssmbench.errors import BadInput

SYNTHETIC_VAL_BYTES = 2_000_000
HF_VAL_BYTES = 4_000_000
DEFAULT_HF_BYTES = 64_000_000
PASS_MARGIN = 0.02  # extra text streamed for one pass: bytes per token varies along the corpus
# entropy tags of the synthetic texts drawn from the data seed (the training rows use the run seed)
VAL_TAG = 0x56414C
TOKENIZER_TAG = 0x544F4B
CORPUS_TAG = 0x434F52


@dataclass(frozen=True)
class DataRequest:
    """spec: synthetic, pystdlib, enwik8, hf:c4, hf:pg19 or a path; tokenizer: a
    ``resolve_tokenizer`` spec (bpe_vocab: its trained-BPE size); seq_len: tokens of context
    (windows hold seq_len + 1); seed: the training stream (rows and order); data_seed: the
    synthetic grammar; data_bytes: training text size (see module docstring); tokens_needed:
    tokens the run will train (steps x batch x seq_len), sizes hf sources when data_bytes is
    None; cache: enwik8's cache folder."""

    spec: str = "synthetic"
    tokenizer: str = "bytes"
    seq_len: int = 256
    seed: int = 0
    data_seed: int = 0
    data_bytes: int | None = None
    tokens_needed: int | None = None
    bpe_vocab: int = 4096
    cache: Path | None = None


@dataclass
class TrainingData:
    """train: the training stream (rows by step); val_ids: the validation tokens;
    bytes_per_token: raw bytes per token of the validation text; entropy_bpb: the source's
    entropy rate in bits per byte when known (synthetic); info: what describe() adds."""

    name: str
    tokenizer: Tokenizer
    tokenizer_info: TokenizerInfo
    train: SyntheticStream | WindowStream
    val_ids: np.ndarray
    seq_len: int
    bytes_per_token: float
    entropy_bpb: float | None
    info: dict[str, Any]

    @property
    def tokens_available(self) -> int | None:
        """Trained tokens one pass holds (None: unbounded); see ``streams.data_passes``."""
        return self.train.tokens_available

    def rows(self, step: int, batch_size: int, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """(stop - start, seq_len + 1) int64: rows start..stop-1 of step ``step``'s batch."""
        return self.train.rows(step, batch_size, start, stop)

    def train_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """(batch_size, seq_len + 1) int64: the batch of step ``step`` (as TokenDataset's)."""
        return self.train.rows(step, batch_size)

    def eval_set(self, max_windows: int, mode: str = "nonoverlap", stride: int | None = None) -> EvalSet:
        """The first ``max_windows`` windows of the validation tokens (see ``make_eval_set``)."""
        return make_eval_set(self.val_ids, self.seq_len, self.tokenizer.token_byte_lengths(), max_windows,
                             mode, stride)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the data (the tokenizer has its own record)."""
        floor = None
        if self.entropy_bpb is not None:
            floor = self.entropy_bpb * math.log(2) * self.bytes_per_token
        return {"name": self.name, **self.info, **self.train.describe(),
                "val_tokens": int(len(self.val_ids)), "bytes_per_token": self.bytes_per_token,
                "entropy_rate_bits_per_byte": self.entropy_bpb, "loss_floor_nats_per_token": floor}


def measure_bytes_per_token(tokenizer: Tokenizer, text: bytes) -> float:
    """Raw bytes per token of ``text`` under ``tokenizer``."""
    n = len(tokenizer.encode(text))
    if n == 0:
        raise BadInput("cannot measure bytes per token on empty text")
    return len(text) / n


def bytes_for_tokens(tokens: int, bytes_per_token: float, seq_len: int | None = None,
                     margin: float = PASS_MARGIN) -> int:
    """Bytes of text that hold one pass of ``tokens`` trained tokens.

    A window of seq_len + 1 tokens trains seq_len of them, and one window of slack is kept for
    the per-pass offset, so one pass needs tokens * (seq_len + 1) / seq_len + seq_len tokens;
    ``margin`` covers bytes per token varying along the corpus.
    """
    if tokens <= 0 or bytes_per_token <= 0:
        raise BadInput(f"need positive tokens and bytes per token, got {tokens}, {bytes_per_token}")
    raw = tokens * (seq_len + 1) / seq_len + seq_len if seq_len else tokens
    return int(math.ceil(raw * bytes_per_token * (1 + margin)))


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@lru_cache(maxsize=4)
def _sampler(data_seed: int) -> GrammarSampler:
    return GrammarSampler(grammar_for(data_seed))


def _synthetic(req: DataRequest) -> TrainingData:
    sampler = _sampler(req.data_seed)
    grammar = sampler.grammar

    def tokenizer_text() -> bytes:
        rng = np.random.default_rng([TOKENIZER_TAG, req.data_seed])
        return sampler.text(rng, BPE_TRAIN_BYTES)[:BPE_TRAIN_BYTES]

    tok, tok_info = resolve_tokenizer(req.tokenizer, tokenizer_text, req.bpe_vocab,
                                      f"the synthetic tokenizer sample (data seed {req.data_seed})")
    val_rng = np.random.default_rng([VAL_TAG, req.data_seed])
    val = sampler.text(val_rng, SYNTHETIC_VAL_BYTES)[:SYNTHETIC_VAL_BYTES]
    val_ids = tok.encode(val)
    bpt = len(val) / len(val_ids)
    info = {**synthetic_info(grammar, req.data_seed), "data_seed": req.data_seed, "val_bytes": len(val),
            "val_sha256": _sha256(val)}
    if req.data_bytes is None:
        train: SyntheticStream | WindowStream = SyntheticStream(sampler, tok, req.seq_len, req.seed, bpt)
    else:
        corpus_rng = np.random.default_rng([CORPUS_TAG, req.data_seed])
        corpus = sampler.text(corpus_rng, req.data_bytes)[: req.data_bytes]
        train = WindowStream(tok.encode(corpus), req.seq_len, req.seed, "synthetic")
        info.update(train_bytes=len(corpus), train_sha256=_sha256(corpus),
                    note=f"finite sample of {req.data_bytes} bytes (--data-bytes); without it the "
                         "training stream is unbounded")
    return TrainingData("synthetic", tok, tok_info, train, val_ids, req.seq_len, bpt,
                        grammar.entropy_rate_bits_per_byte, info)


def _hf(req: DataRequest) -> TrainingData:
    from ssmbench.data.hf import HFText

    hf = HFText(req.spec[3:])
    val = hf.val.take(HF_VAL_BYTES)
    head = hf.train.take(BPE_TRAIN_BYTES if req.data_bytes is None else min(BPE_TRAIN_BYTES, req.data_bytes))
    if not val or not head:
        raise BadInput(f"--data {req.spec}: {hf.repo} streamed no text")
    tok, tok_info = resolve_tokenizer(req.tokenizer, head, req.bpe_vocab)
    val_ids = tok.encode(val)
    bpt = len(val) / len(val_ids)
    if req.data_bytes is not None:
        n, sized = req.data_bytes, "--data-bytes"
    elif req.tokens_needed is not None:
        n = bytes_for_tokens(req.tokens_needed, bpt, req.seq_len)
        sized = f"one pass of {req.tokens_needed} tokens at {bpt:.3f} bytes/token (validation text)"
    else:
        n, sized = DEFAULT_HF_BYTES, "default size"
    train = head[:n] + hf.train.take(max(0, n - len(head)))
    stream = WindowStream(tok.encode(train), req.seq_len, req.seed, req.spec)
    info = {**hf.info(), "train_bytes": len(train), "val_bytes": len(val), "sized_by": sized,
            "train_sha256": _sha256(train), "val_sha256": _sha256(val)}
    if len(train) < n:
        info["short"] = f"the split ended after {len(train)} of the {n} bytes asked for"
    return TrainingData(req.spec, tok, tok_info, stream, val_ids, req.seq_len, bpt, None, info)


def _finite(req: DataRequest) -> TrainingData:
    src = load_source(req.spec, data_bytes=req.data_bytes, cache=req.cache)
    tok, tok_info = resolve_tokenizer(req.tokenizer, src.train, req.bpe_vocab)
    val_ids = tok.encode(src.val)
    if len(val_ids) == 0:
        raise BadInput(f"--data {req.spec}: the validation split is empty")
    stream = WindowStream(tok.encode(src.train), req.seq_len, req.seed, src.name)
    info = {**src.info, "train_bytes": len(src.train), "val_bytes": len(src.val)}
    info.setdefault("train_sha256", _sha256(src.train))
    info.setdefault("val_sha256", _sha256(src.val))
    return TrainingData(src.name, tok, tok_info, stream, val_ids, req.seq_len, len(src.val) / len(val_ids),
                        None, info)


def open_training_data(req: DataRequest) -> TrainingData:
    """The tokenizer, training stream and validation tokens of ``req``; BadInput (one line) on bad input."""
    if req.seq_len <= 0:
        raise BadInput(f"--seq-len must be positive, got {req.seq_len}")
    if req.data_bytes is not None and req.data_bytes <= 0:
        raise BadInput(f"--data-bytes must be positive, got {req.data_bytes}")
    if req.tokens_needed is not None and req.tokens_needed <= 0:
        raise BadInput(f"tokens needed must be positive, got {req.tokens_needed}")
    if req.spec == "synthetic":
        return _synthetic(req)
    if req.spec.startswith("hf:"):
        return _hf(req)
    return _finite(req)
