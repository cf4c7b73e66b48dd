"""Tokenizers: exact roundtrips, BPE training, GPT-2 vocabulary files, gpt2 without tiktoken."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from ssmbench.data import bpe
from ssmbench.data.bpe import BPETokenizer, bytes_to_unicode, load_gpt2_files, split_bytes, train_bpe
from ssmbench.data.synthetic import SyntheticGrammar
from ssmbench.data.tokenizers import ByteTokenizer, resolve_tokenizer
from ssmbench.errors import BadInput


@pytest.fixture(scope="module")
def text() -> bytes:
    return SyntheticGrammar.build(0, n_words=128, n_successors=12).sample(60_000, seed=1)


def _random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def test_split_covers_every_byte() -> None:
    data = _random_bytes(5000, 0) + b"it's  a test\n\n  of 123 words!!"
    assert b"".join(split_bytes(data)) == data


def test_bpe_roundtrip_on_random_and_text(text: bytes) -> None:
    tok = BPETokenizer(train_bpe(text, 400))
    assert tok.vocab_size == 400
    for data in (text[:5000], _random_bytes(3001, 1), "naïve café — ünïcode".encode(), b""):
        ids = tok.encode(data)
        assert tok.decode(ids) == data
        assert ids.dtype == np.uint16 and (ids < tok.vocab_size).all()
    ids = tok.encode(text[:20_000])
    assert len(ids) < 20_000 / 2  # merges compress this text
    assert tok.token_byte_lengths()[ids].sum() == 20_000


def test_bpe_first_merge_is_most_frequent_pair() -> None:
    data = b"abab abab xyxy ab ab ab"
    ranks = train_bpe(data, 257)
    pairs = Counter(p for w in split_bytes(data) for p in zip(w, w[1:], strict=False))
    top = max(pairs.values())
    best = min(p for p, c in pairs.items() if c == top)  # ties: smallest pair
    assert ranks[bytes(best)] == 256


def test_bpe_training_is_deterministic_and_stops_early(text: bytes) -> None:
    assert train_bpe(text, 300) == train_bpe(text, 300)
    assert len(train_bpe(b"abcdef", 1000)) == 256  # no pair occurs twice
    with pytest.raises(BadInput):
        train_bpe(text, 100)


def test_gpt2_files_roundtrip(tmp_path, text: bytes) -> None:
    ranks = train_bpe(text, 320)
    enc = bytes_to_unicode()
    encoder = {"".join(enc[b] for b in tok): i for tok, i in ranks.items()}
    encoder["<|endoftext|>"] = len(ranks)
    (tmp_path / "encoder.json").write_text(json.dumps(encoder))
    loaded, vocab = load_gpt2_files(tmp_path)
    assert loaded == ranks and vocab == len(ranks) + 1
    tok, info = resolve_tokenizer(f"gpt2:{tmp_path}", b"")
    assert info.used == "gpt2" and tok.vocab_size == len(ranks) + 1
    ascii_text = text[:4000]
    # on ASCII text GPT-2's pre-tokeniser and ours split alike, so the ids agree
    assert list(tok.encode(ascii_text)) == list(BPETokenizer(ranks).encode(ascii_text))
    weird = _random_bytes(2000, 3)
    assert tok.decode(tok.encode(weird)) == weird
    with pytest.raises(BadInput):
        load_gpt2_files(tmp_path / "nowhere")


def test_resolve_names(text: bytes, monkeypatch) -> None:
    tok, info = resolve_tokenizer("bytes", text)
    assert isinstance(tok, ByteTokenizer) and info.vocab_size == 256
    assert tok.decode(tok.encode(b"\x00\xffab")) == b"\x00\xffab"
    tok, info = resolve_tokenizer("bpe:300", text)
    assert tok.vocab_size == 300 and "trained" in info.reason
    for bad in ("bpe:abc", "bpe:10", "sentencepiece", "bytes:3"):
        with pytest.raises(BadInput):
            resolve_tokenizer(bad, text)


def test_gpt2_without_tiktoken_is_bad_input_not_a_trained_bpe(text: bytes, monkeypatch) -> None:
    from ssmbench.data import tokenizers

    monkeypatch.setattr(tokenizers, "_tiktoken_gpt2", lambda: (None, "tiktoken is not installed"))
    expected = "tiktoken is not installed.*pip install tiktoken.*gpt2:DIR.*bpe:N"
    with pytest.raises(BadInput, match=expected) as e:
        resolve_tokenizer("gpt2", text, fallback_vocab=300)
    assert "\n" not in str(e.value)


def test_gpt2_splitter_without_regex(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "regex", None)
    split, note = bpe.gpt2_splitter()
    assert split is split_bytes and "regex" in note
