"""open_training_data: what depends on the run seed (only the training rows), finite synthetic
corpora, hf sizing on a fake stream (no network), local truncation, bytes_for_tokens."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from ssmbench.data import tokenizers, training_data
from ssmbench.data.hf import HFText
from ssmbench.data.streams import SyntheticStream, WindowStream
from ssmbench.data.synthetic import GrammarSampler, SyntheticGrammar
from ssmbench.data.tokenizers import ByteTokenizer, resolve_tokenizer
from ssmbench.data.training_data import (
    DataRequest,
    bytes_for_tokens,
    measure_bytes_per_token,
    open_training_data,
)
from ssmbench.errors import BadInput

SAMPLE = 40_000  # tokenizer sample and validation text, small for speed


@pytest.fixture(scope="module")
def small_sizes():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training_data, "SYNTHETIC_VAL_BYTES", SAMPLE)
        mp.setattr(training_data, "HF_VAL_BYTES", SAMPLE)
        mp.setattr(training_data, "BPE_TRAIN_BYTES", SAMPLE)
        mp.setattr(tokenizers, "BPE_TRAIN_BYTES", SAMPLE)
        yield


@pytest.fixture(scope="module")
def seeds(small_sizes):
    return [open_training_data(DataRequest(tokenizer="bpe:300", seq_len=40, seed=s)) for s in (0, 1)]


def test_seed_changes_only_the_training_rows(seeds) -> None:
    a, b = seeds
    assert isinstance(a.train, SyntheticStream) and a.tokens_available is None
    assert a.tokenizer.ranks == b.tokenizer.ranks and a.tokenizer_info == b.tokenizer_info
    assert np.array_equal(a.val_ids, b.val_ids)
    ea, eb = a.eval_set(16), b.eval_set(16)
    assert torch.equal(ea.inputs, eb.inputs) and ea.n_bytes == eb.n_bytes
    da, db = a.describe(), b.describe()
    assert (da.pop("stream_seed"), db.pop("stream_seed")) == (0, 1) and da == db
    assert not torch.equal(a.train_batch(0, 4), b.train_batch(0, 4))
    assert torch.equal(a.train_batch(5, 4), a.rows(5, 4))
    assert da["loss_floor_nats_per_token"] == pytest.approx(
        da["entropy_rate_bits_per_byte"] * np.log(2) * da["bytes_per_token"])
    assert da["val_bytes"] == SAMPLE and da["bytes_per_token"] == SAMPLE / len(a.val_ids)


def test_data_seed_is_the_source_identity(seeds, small_sizes) -> None:
    other = open_training_data(DataRequest(tokenizer="bytes", seq_len=40, data_seed=1))
    same = open_training_data(DataRequest(tokenizer="bytes", seq_len=40))
    assert other.entropy_bpb != same.entropy_bpb
    assert not np.array_equal(other.val_ids[:1000], same.val_ids[:1000])
    # the validation text does not depend on the tokenizer either
    assert seeds[0].tokenizer.decode(seeds[0].val_ids) == same.tokenizer.decode(same.val_ids)


def test_finite_synthetic_corpus_shares_the_eval_set(seeds, small_sizes) -> None:
    finite = open_training_data(DataRequest(tokenizer="bpe:300", seq_len=40, seed=0, data_bytes=30_000))
    assert isinstance(finite.train, WindowStream)
    assert finite.tokens_available == finite.train.n_windows * 40
    assert finite.tokens_available * finite.bytes_per_token < 30_000
    assert np.array_equal(finite.val_ids, seeds[0].val_ids)
    assert finite.tokenizer.ranks == seeds[0].tokenizer.ranks
    assert finite.describe()["train_bytes"] == 30_000


def _fake_hf(monkeypatch, n_docs=3000):
    g = SyntheticGrammar.build(1, n_words=96, n_successors=10)
    sampler = GrammarSampler(g)

    def load_dataset(repo, config, split, streaming):
        assert streaming
        return ({"text": sampler.text(np.random.default_rng([len(split), i]), 300).decode()}
                for i in range(n_docs))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_hf_text_is_taken_in_pieces(monkeypatch) -> None:
    _fake_hf(monkeypatch)
    a, b = HFText("c4"), HFText("c4")
    pieces = a.train.take(1000) + a.train.take(2500) + a.train.take(7)
    assert pieces == b.train.take(3507)
    assert a.info()["note"].startswith("first 3507 bytes of train")


def test_hf_sized_for_one_pass(monkeypatch, small_sizes) -> None:
    _fake_hf(monkeypatch)
    need = 20_000
    data = open_training_data(DataRequest("hf:c4", tokenizer="bpe:300", seq_len=32, tokens_needed=need))
    info = data.describe()
    assert info["train_bytes"] == bytes_for_tokens(need, data.bytes_per_token, 32)
    assert "one pass of 20000 tokens" in info["sized_by"]
    assert data.tokens_available >= need  # one pass holds what the run trains
    # the tokenizer is trained on the head of the training text, as for any finite corpus
    head = HFText("c4").train.take(info["train_bytes"])
    assert data.tokenizer.ranks == resolve_tokenizer("bpe:300", head)[0].ranks
    sized = open_training_data(DataRequest("hf:pg19", tokenizer="bytes", seq_len=32, data_bytes=12_345))
    assert sized.describe()["train_bytes"] == 12_345 and sized.describe()["sized_by"] == "--data-bytes"
    assert sized.tokens_available == (12_345 - 32) // 33 * 32


def test_hf_short_split_is_recorded(monkeypatch, small_sizes) -> None:
    _fake_hf(monkeypatch, n_docs=400)
    data = open_training_data(DataRequest("hf:c4", tokenizer="bytes", seq_len=16, data_bytes=10_000_000))
    assert "split ended" in data.describe()["short"]


def test_local_corpus_cut_keeps_validation(tmp_path) -> None:
    f = tmp_path / "t.txt"
    f.write_bytes(bytes(np.random.default_rng(0).integers(97, 123, size=10_000, dtype=np.uint8)))
    whole = open_training_data(DataRequest(str(f), tokenizer="bytes", seq_len=16))
    cut = open_training_data(DataRequest(str(f), tokenizer="bytes", seq_len=16, data_bytes=2_000))
    assert np.array_equal(whole.val_ids, cut.val_ids) and len(cut.val_ids) == 1000
    assert whole.describe()["train_bytes"] == 9000 and cut.describe()["train_bytes"] == 2000
    assert cut.tokens_available == (2000 - 16) // 17 * 16
    assert cut.describe()["train_cut_to"] == 2000
    for bad in (DataRequest(str(f), data_bytes=0), DataRequest(str(tmp_path / "missing")),
                DataRequest(seq_len=0), DataRequest("hf:c4", tokens_needed=-1)):
        with pytest.raises(BadInput):
            open_training_data(bad)


@pytest.mark.parametrize("seq_len", [1, 7, 256])
def test_bytes_for_tokens_is_one_pass_exactly(seq_len: int) -> None:
    tokens = 50 * seq_len
    n = bytes_for_tokens(tokens, 1.0, seq_len, margin=0.0)
    ids = np.zeros(n, dtype=np.uint8)
    assert WindowStream(ids, seq_len, 0).tokens_available == tokens
    assert WindowStream(ids[:-1], seq_len, 0).tokens_available < tokens
    assert bytes_for_tokens(tokens, 4.0, seq_len) > 4 * n
    assert measure_bytes_per_token(ByteTokenizer(), b"abc") == 1.0
