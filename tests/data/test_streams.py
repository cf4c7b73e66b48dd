"""Training streams: rows are pure functions of (seed, step, row), finite corpora never repeat a
window within a pass, data_passes, and prefetching gives the direct batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ssmbench.data.bpe import BPETokenizer, gpt2_splitter, train_bpe
from ssmbench.data.prefetch import StepBatches, default_workers, prefetch_batches
from ssmbench.data.streams import SyntheticStream, WindowStream, data_passes, passes_warning
from ssmbench.data.synthetic import GrammarSampler, SyntheticGrammar
from ssmbench.data.tokenizers import ByteTokenizer
from ssmbench.errors import BadInput


@pytest.fixture(scope="module")
def sampler() -> GrammarSampler:
    return GrammarSampler(SyntheticGrammar.build(seed=2, n_words=128, n_successors=12))


@pytest.fixture(scope="module")
def bpe(sampler: GrammarSampler) -> BPETokenizer:
    text = sampler.text(np.random.default_rng(99), 60_000)
    return BPETokenizer(train_bpe(text, 400), splitter=gpt2_splitter()[0])  # regex is optional


def _stream(sampler, tok, seed=0, seq_len=33, bpt=None) -> SyntheticStream:
    if bpt is None:
        text = sampler.text(np.random.default_rng(5), 20_000)
        bpt = len(text) / len(tok.encode(text))
    return SyntheticStream(sampler, tok, seq_len, seed, bpt)


@pytest.mark.parametrize("tok_name", ["bytes", "bpe"])
def test_synthetic_rows_are_pure_functions_of_seed_step_row(sampler, bpe, tok_name) -> None:
    tok = ByteTokenizer() if tok_name == "bytes" else bpe
    s = _stream(sampler, tok)
    b3 = s.rows(3, 8)
    assert b3.shape == (8, 34) and b3.dtype == torch.int64
    assert int(b3.min()) >= 0 and int(b3.max()) < tok.vocab_size
    s.rows(7, 8)
    s.rows(0, 2)
    assert torch.equal(s.rows(3, 8), b3)  # whatever was asked before
    assert torch.equal(_stream(sampler, tok).train_batch(3, 8), b3)  # a fresh object: same rows
    for a, b in ((0, 3), (3, 8), (5, 6)):
        assert torch.equal(s.rows(3, 8, a, b), b3[a:b])  # a rank's slice is the single-process rows
    assert torch.equal(s.rows(3, 16)[:8], b3)  # a row does not depend on the batch size
    assert len({tuple(r) for r in b3.tolist()}) == 8  # all rows differ
    assert not torch.equal(s.rows(4, 8), b3)
    assert not torch.equal(_stream(sampler, tok, seed=1).rows(3, 8), b3)


def test_synthetic_rows_do_not_depend_on_the_size_estimate(sampler, bpe) -> None:
    # the estimate only sizes the text generated; a short row is regenerated longer
    # (BPE with GPT-2's pre-tokeniser and with the byte pattern of trained BPEs)
    for tok in (ByteTokenizer(), bpe, BPETokenizer(bpe.ranks)):
        ref = _stream(sampler, tok).rows(2, 6)
        assert torch.equal(_stream(sampler, tok, bpt=1.0).rows(2, 6), ref)
        assert torch.equal(_stream(sampler, tok, bpt=40.0).rows(2, 6), ref)


def test_synthetic_rows_are_stream_text(sampler, bpe) -> None:
    # each row is the tokenization of a piece of grammar text, tokenized as in a long stream
    rows = _stream(sampler, bpe).rows(1, 4)
    for r in rows.tolist():
        text = bpe.decode(r)
        assert list(bpe.encode(text))[1:-1] == r[1:-1]  # (the ends may merge differently alone)
    s = _stream(sampler, bpe)
    assert s.tokens_available is None and data_passes(10**12, s.tokens_available) == 1.0


def test_stream_pickles_for_worker_processes(sampler, bpe) -> None:
    s = _stream(sampler, bpe)
    assert torch.equal(pickle.loads(pickle.dumps(s)).rows(5, 4), s.rows(5, 4))


def _windows(n_tokens=1000, seq_len=9, seed=0) -> WindowStream:
    ids = np.random.default_rng(0).integers(0, 50_000, size=n_tokens).astype(np.int32)
    return WindowStream(ids, seq_len, seed)


def test_finite_pass_visits_every_window_once() -> None:
    w = _windows()
    width = w.seq_len + 1
    n = w.n_windows
    assert n == (1000 - 9) // 10 and w.tokens_available == n * 9
    two_passes = w.window_starts(0, 2 * n)  # global rows 0..2n-1
    for starts in (two_passes[:n], two_passes[n:]):
        offset = starts[0] % width
        assert np.array_equal(np.sort(starts), offset + width * np.arange(n))  # disjoint, each once
        assert not np.array_equal(starts, np.sort(starts))  # in a shuffled order
    assert not np.array_equal(two_passes[:n], two_passes[n:])  # a new order for the second pass
    batch = 7  # does not divide n: the pass boundary falls inside a batch
    by_steps = np.concatenate([w.window_starts(s, batch) for s in range(2 * n // batch + 1)])
    assert np.array_equal(by_steps[: 2 * n], two_passes)
    rows = w.rows(4, batch)
    for r, s in zip(rows.tolist(), w.window_starts(4, batch).tolist(), strict=True):
        assert r == w.ids[s : s + width].tolist()
    assert torch.equal(w.rows(4, batch, 2, 5), rows[2:5])
    assert torch.equal(_windows().rows(4, batch), rows)
    assert not torch.equal(_windows(seed=1).rows(4, batch), rows)


def test_passes_are_counted() -> None:
    w = _windows(n_tokens=5000, seq_len=9)
    batch = 11
    steps_one_pass = w.n_windows // batch
    trained = steps_one_pass * batch * w.seq_len
    used = w.window_starts(0, steps_one_pass * batch)
    assert len(set(used.tolist())) == len(used)  # no window twice
    assert data_passes(trained, w.tokens_available) <= 1.0
    assert passes_warning(trained, w.tokens_available) is None
    over = 3 * w.tokens_available
    assert data_passes(over, w.tokens_available) == pytest.approx(3.0)
    msg = passes_warning(over, w.tokens_available, "enwik8")
    assert msg is not None and msg.startswith("enwik8: 3.00 passes") and "\n" not in msg
    assert data_passes(0, None) == 0.0


def test_tiny_corpora() -> None:
    w = _windows(n_tokens=12, seq_len=9)  # one window, offset 0..2
    assert w.n_windows == 1 and w.tokens_available == 9
    starts = w.window_starts(0, 40)
    assert set(starts.tolist()) <= {0, 1, 2} and len(set(starts.tolist())) > 1
    for s, r in zip(starts.tolist(), w.rows(0, 40).tolist(), strict=True):
        assert r == w.ids[s : s + 10].tolist()

    with pytest.raises(BadInput, match="longer than the training split"):
        _windows(n_tokens=9, seq_len=9)


@pytest.mark.parametrize("workers", [0, 2])
def test_prefetch_gives_the_direct_batches(sampler, bpe, workers) -> None:
    s = _stream(sampler, bpe)
    got = list(prefetch_batches(s, 8, 3, 9, start=2, stop=6, workers=workers))
    assert [step for step, _ in got] == list(range(3, 9))
    for step, rows in got:
        assert torch.equal(rows, s.rows(step, 8, 2, 6))
    w = _windows()
    assert default_workers(w) == 0
    assert all(torch.equal(b, w.train_batch(k, 5)) for k, b in prefetch_batches(w, 5, 0, 4))
    assert len(StepBatches(w, 5, 10, 10)) == 0
