"""Byte-level BPE: a trainer, a rank-based encoder, and GPT-2 vocabulary files.

Tokens are byte strings; ``ranks`` maps each token's bytes to its id, and ids double as merge
priority (lower merges first), the convention of tiktoken and GPT-2's encoder.json. Every
single byte is a token, so any byte string encodes and ``decode(encode(x)) == x`` exactly.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from pathlib import Path

import numpy as np

from ssmbench.errors import BadInput

# GPT-2's pre-tokenisation on bytes: letters (and any non-ASCII byte), digits, other symbols,
# each with an optional leading space; runs of whitespace. Every byte falls in one class.
BYTE_PATTERN = re.compile(
    rb"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z\x80-\xff]+| ?[0-9]+| ?[^\sA-Za-z0-9\x80-\xff]+|\s+(?!\S)|\s+"
)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def split_bytes(data: bytes) -> list[bytes]:
    """Pre-tokenise raw bytes into chunks that BPE never merges across."""
    return BYTE_PATTERN.findall(data)


def _bpe_chunk(chunk: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Greedy lowest-rank merging of adjacent parts, as GPT-2 and tiktoken do."""
    parts = [chunk[i : i + 1] for i in range(len(chunk))]
    while len(parts) > 1:
        best, best_rank = -1, None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = i, r
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return [ranks[p] for p in parts]


class BPETokenizer:
    """Byte-level BPE over ``ranks`` (token bytes -> id); ids must be 0..vocab_size-1."""

    def __init__(
        self,
        ranks: dict[bytes, int],
        name: str = "bpe",
        splitter: Callable[[bytes], list[bytes]] = split_bytes,
        vocab_size: int | None = None,
    ) -> None:
        """vocab_size: embedding rows the model needs; more than len(ranks) when special
        tokens (GPT-2's <|endoftext|>) have ids but are never produced by encoding."""
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise BadInput(f"BPE vocabulary lacks {len(missing)} single-byte tokens")
        self.vocab_size = vocab_size if vocab_size is not None else len(ranks)
        if len(set(ranks.values())) != len(ranks) or max(ranks.values()) >= self.vocab_size:
            raise BadInput("BPE vocabulary ids are not unique and below the vocab size")
        self.name = name
        self.ranks = ranks
        self._splitter = splitter
        self._by_id: list[bytes] = [b""] * self.vocab_size
        for tok, i in ranks.items():
            self._by_id[i] = tok
        self._cache: dict[bytes, list[int]] = {}

    def encode(self, data: bytes) -> np.ndarray:
        """Token ids (uint16 when they fit, else int32) of ``data``."""
        get, miss = self._cache.get, self._encode_chunk
        # a chunk's ids are never empty, so ``or`` only calls miss on a cache miss
        parts = [get(chunk) or miss(chunk) for chunk in self._splitter(data)]
        dtype = np.uint16 if self.vocab_size <= 65536 else np.int32
        return np.fromiter(chain.from_iterable(parts), dtype=dtype)

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        ids = _bpe_chunk(chunk, self.ranks)
        if len(self._cache) < 1_000_000:
            self._cache[chunk] = ids
        return ids

    def decode(self, ids: Iterable[int]) -> bytes:
        by_id = self._by_id
        return b"".join(by_id[int(i)] for i in ids)

    def token_byte_lengths(self) -> np.ndarray:
        """(vocab_size,) number of raw bytes each token stands for."""
        return np.array([len(t) for t in self._by_id], dtype=np.int64)


def train_bpe(data: bytes, vocab_size: int, min_count: int = 2) -> dict[bytes, int]:
    """Learn merges on ``data`` until ``vocab_size`` tokens (or no pair occurs ``min_count`` times).

    Returns ranks (token bytes -> id): ids 0..255 are the bytes, then one id per merge in the
    order learned. Pair counts are updated incrementally and the most frequent pair is kept in
    a lazy heap; ties break towards the smaller (left id, right id) pair, so training is
    deterministic.
    """
    if vocab_size < 256:
        raise BadInput(f"BPE vocab size must be at least 256, got {vocab_size}")
    counts = Counter(split_bytes(data))
    words: list[list[int]] = [list(w) for w in counts]
    freqs: list[int] = list(counts.values())
    tokens: list[bytes] = [bytes([i]) for i in range(256)]
    ids_of: dict[bytes, int] = {t: i for i, t in enumerate(tokens)}
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        for pair in zip(w, w[1:], strict=False):
            pair_count[pair] += freqs[wi]
            where[pair].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    while len(tokens) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg:
            continue  # stale entry
        if -neg < min_count:
            break
        merged = tokens[pair[0]] + tokens[pair[1]]
        new_id = ids_of.get(merged)
        if new_id is None:
            new_id = len(tokens)
            tokens.append(merged)
            ids_of[merged] = new_id
        changed: set[tuple[int, int]] = set()
        for wi in where.pop(pair, ()):
            w, f = words[wi], freqs[wi]
            if len(w) < 2:
                continue
            for p in zip(w, w[1:], strict=False):
                pair_count[p] -= f
                changed.add(p)
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == pair[0] and w[i + 1] == pair[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for p in zip(out, out[1:], strict=False):
                pair_count[p] += f
                where[p].add(wi)
                changed.add(p)
        pair_count.pop(pair, None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
    return {t: i for i, t in enumerate(tokens)}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters used in its vocabulary files."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


class RegexSplitter:
    """GPT-2's pre-tokeniser on bytes (needs the ``regex`` package); picklable, so tokenizers
    that use it can go to worker processes. Undecodable bytes pass through as surrogate
    escapes, so the split covers every input byte."""

    def __init__(self, pattern: str = GPT2_PATTERN) -> None:
        import regex

        self.pattern = pattern
        self._re = regex.compile(pattern)

    def __call__(self, data: bytes) -> list[bytes]:
        text = data.decode("utf-8", "surrogateescape")
        return [p.encode("utf-8", "surrogateescape") for p in self._re.findall(text)]

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return RegexSplitter, (self.pattern,)


def gpt2_splitter() -> tuple[Callable[[bytes], list[bytes]], str]:
    """GPT-2's own pre-tokeniser when the ``regex`` package is there, else the byte pattern.

    Returns (splitter, note).
    """
    try:
        import regex  # noqa: F401
    except ImportError:
        return split_bytes, "regex package missing: ASCII approximation of GPT-2's pre-tokeniser"
    return RegexSplitter(), "GPT-2 pre-tokeniser (regex)"


def load_gpt2_files(folder: Path) -> tuple[dict[bytes, int], int]:
    """(ranks, vocab_size) from GPT-2 vocabulary files: encoder.json or vocab.json in ``folder``.

    GPT-2's ids are its merge order, so the encoder alone defines the BPE (tiktoken reads it
    the same way); special tokens such as <|endoftext|> keep their id but are never merged.
    """
    folder = Path(folder)
    for name in ("encoder.json", "vocab.json"):
        path = folder / name
        if path.is_file():
            break
    else:
        raise BadInput(f"no encoder.json or vocab.json in {folder}")
    dec = {c: b for b, c in bytes_to_unicode().items()}
    try:
        encoder = json.loads(path.read_text(encoding="utf-8"))
        ranks = {bytes(dec[c] for c in tok): int(i) for tok, i in encoder.items()
                 if not (tok.startswith("<|") and tok.endswith("|>"))}
        vocab_size = max(int(i) for i in encoder.values()) + 1
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise BadInput(f"{path} is not a GPT-2 byte-level vocabulary ({e})") from None
    return ranks, vocab_size
