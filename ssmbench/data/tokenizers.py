"""Tokenizers: bytes (vocab 256), GPT-2 BPE (tiktoken cache or vocabulary files), trained BPE.

``resolve_tokenizer(spec, train_text)`` turns a command-line name into a tokenizer plus a
record of which one is used and why (written into the manifest):

- ``bytes``: one token per byte.
- ``gpt2``: GPT-2's BPE from tiktoken; BadInput (saying how to get it, or what to pick
  instead) when tiktoken or its vocabulary is not there.
- ``gpt2:DIR``: GPT-2 vocabulary files (encoder.json or vocab.json) in DIR.
- ``bpe`` / ``bpe:N``: a byte-level BPE with N tokens trained on the training split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ssmbench.data.bpe import BPETokenizer, gpt2_splitter, load_gpt2_files, train_bpe
from ssmbench.errors import BadInput

BPE_TRAIN_BYTES = 2_000_000


class Tokenizer(Protocol):
    """name; vocab_size (embedding rows); encode(bytes) -> ids; decode(ids) -> bytes;
    token_byte_lengths() -> (vocab_size,) raw bytes per token, for bits per byte."""

    name: str
    vocab_size: int

    def encode(self, data: bytes) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> bytes: ...

    def token_byte_lengths(self) -> np.ndarray: ...


class ByteTokenizer:
    """One token per byte, vocab 256."""

    name = "bytes"
    vocab_size = 256

    def encode(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).copy()

    def decode(self, ids: Iterable[int]) -> bytes:
        return bytes(int(i) for i in ids)

    def token_byte_lengths(self) -> np.ndarray:
        return np.ones(256, dtype=np.int64)


class TiktokenTokenizer:
    """A tiktoken encoding. Text is decoded as UTF-8 (invalid bytes become U+FFFD), so the bytes
    a token covers are those of the re-encoded text; BPB uses exactly those."""

    def __init__(self, encoding: Any, name: str) -> None:
        self._enc = encoding
        self.name = name
        self.vocab_size = int(encoding.n_vocab)

    def encode(self, data: bytes) -> np.ndarray:
        ids = self._enc.encode_ordinary(data.decode("utf-8", errors="replace"))
        return np.asarray(ids, dtype=np.uint16 if self.vocab_size <= 65536 else np.int32)

    def decode(self, ids: Iterable[int]) -> bytes:
        return self._enc.decode_bytes([int(i) for i in ids])

    def token_byte_lengths(self) -> np.ndarray:
        out = np.zeros(self.vocab_size, dtype=np.int64)
        for i in range(self.vocab_size):
            try:
                out[i] = len(self._enc.decode_single_token_bytes(i))
            except KeyError:
                out[i] = 0
        return out


@dataclass(frozen=True)
class TokenizerInfo:
    """What the manifest records: the spec asked for, what is used, and why."""

    requested: str
    used: str
    vocab_size: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "used": self.used, "vocab_size": self.vocab_size,
                "reason": self.reason}


def _tiktoken_gpt2() -> tuple[Any | None, str]:
    try:
        import tiktoken
    except ImportError:
        return None, "tiktoken is not installed"
    try:
        return tiktoken.get_encoding("gpt2"), ""
    except Exception as e:  # no cached vocabulary and no network: any error means "not here"
        return None, f"tiktoken could not load gpt2 ({type(e).__name__})"


def _trained_bpe(text: bytes | Callable[[], bytes], vocab: int, requested: str, why: str,
                 sample_name: str) -> tuple[Tokenizer, TokenizerInfo]:
    train_text = text() if callable(text) else text
    ranks = train_bpe(train_text[:BPE_TRAIN_BYTES], vocab)
    tok = BPETokenizer(ranks, name=f"bpe-{len(ranks)}")
    sample = min(len(train_text), BPE_TRAIN_BYTES)
    reason = f"{why}byte-level BPE trained on the first {sample} bytes of {sample_name}"
    if len(ranks) < vocab:
        reason += f" (stopped at {len(ranks)} tokens: no pair occurs twice more)"
    return tok, TokenizerInfo(requested, tok.name, tok.vocab_size, reason)


def resolve_tokenizer(
    spec: str, train_text: bytes | Callable[[], bytes], fallback_vocab: int = 4096,
    sample_name: str = "the training split",
) -> tuple[Tokenizer, TokenizerInfo]:
    """Tokenizer for ``spec`` (see module docstring) and the record of the choice.

    train_text: the training split, or a function returning it, called only when a BPE is trained;
    sample_name: what that text is, for the record.
    """
    kind, _, arg = spec.partition(":")
    if kind == "bytes" and not arg:
        return ByteTokenizer(), TokenizerInfo(spec, "bytes", 256, "one token per byte")
    if kind == "bpe":
        try:
            vocab = int(arg) if arg else fallback_vocab
        except ValueError:
            raise BadInput(f"tokenizer {spec!r}: expected bpe:N with N an integer") from None
        if not 256 < vocab <= 65536:
            raise BadInput(f"tokenizer {spec!r}: BPE vocab must be in 257..65536")
        return _trained_bpe(train_text, vocab, spec, "", sample_name)
    if kind == "gpt2" and arg:
        ranks, vocab_size = load_gpt2_files(Path(arg))
        splitter, note = gpt2_splitter()
        tok = BPETokenizer(ranks, name="gpt2", splitter=splitter, vocab_size=vocab_size)
        return tok, TokenizerInfo(spec, "gpt2", vocab_size, f"GPT-2 vocabulary from {arg}; {note}")
    if kind == "gpt2":
        enc, why_not = _tiktoken_gpt2()
        if enc is not None:
            tok = TiktokenTokenizer(enc, "gpt2")
            return tok, TokenizerInfo(spec, "gpt2", tok.vocab_size, "GPT-2 BPE from tiktoken")
        # no silent stand-in: a trained BPE would change every loss and the paper comparison with it
        raise BadInput(f"--tokenizer gpt2: {why_not}; install it (pip install tiktoken; it downloads the "
                       "GPT-2 vocabulary once), point at GPT-2's vocabulary files with --tokenizer gpt2:DIR, "
                       "or choose another tokenizer explicitly (--tokenizer bpe:N or bytes)")
    raise BadInput(f"unknown tokenizer {spec!r}; use bytes, gpt2, gpt2:DIR, bpe or bpe:N")
