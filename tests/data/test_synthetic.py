"""The synthetic source: its analytic entropy rate against a plug-in estimate on a long sample."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from ssmbench.data.sources import synthetic_source
from ssmbench.data.synthetic import SEPARATORS, SyntheticGrammar

PAIR = re.compile(rb"([A-Za-z]+)([^A-Za-z]+)")


def _plugin_entropy_bits_per_byte(text: bytes) -> float:
    """Empirical conditional entropy of word bigrams plus separator entropy, per byte."""
    pairs = PAIR.findall(text)[:-1]  # the last pair may be cut
    words = [w.lower() for w, _ in pairs]
    seps = [s for _, s in pairs]
    bigrams = Counter(zip(words, words[1:], strict=False))
    firsts = Counter(words[:-1])
    n = len(words) - 1
    h_words = -sum(c / n * math.log2(c / firsts[a]) for (a, _), c in bigrams.items())
    sep_counts = np.array(list(Counter(seps).values()), dtype=float) / len(seps)
    h_sep = -(sep_counts * np.log2(sep_counts)).sum()
    n_bytes = sum(len(w) + len(s) for w, s in pairs)
    return (h_words + h_sep) / (n_bytes / len(pairs))


def test_entropy_rate_matches_plugin_estimate() -> None:
    g = SyntheticGrammar.build(seed=3, n_words=256, n_successors=16)
    text = g.sample(1_500_000, seed=11)
    est = _plugin_entropy_bits_per_byte(text)
    exact = g.entropy_rate_bits_per_byte
    # the plug-in estimator is biased low by about (#bigrams) / (2 n ln 2) bits per word
    assert 0.3 < exact < 3.0
    assert abs(est - exact) / exact < 0.01, (est, exact)


def test_stationary_distribution_and_rows() -> None:
    g = SyntheticGrammar.build(seed=5, n_words=64, n_successors=8)
    p, pi = g.transition, g.stationary
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(pi @ p, pi, atol=1e-10)
    assert (pi > 0).all()
    assert sum(w for _, w in SEPARATORS) == 4096


def test_sampling_is_seeded_and_exact_length() -> None:
    g = SyntheticGrammar.build(seed=1, n_words=64, n_successors=8)
    a, b, c = g.sample(10_001, seed=4), g.sample(10_001, seed=4), g.sample(10_001, seed=5)
    assert a == b and a != c and len(a) == 10_001
    assert a[:1].isupper()  # text starts a sentence


def test_splits_are_disjoint_streams() -> None:
    src = synthetic_source(200_000, seed=2, data_seed=2)
    assert len(src.train) == 200_000 and len(src.val) >= 16_384
    for start in range(0, len(src.val) - 48, len(src.val) // 8):
        assert src.val[start : start + 48] not in src.train
    assert src.entropy_bpb == SyntheticGrammar.build(2).entropy_rate_bits_per_byte


def test_run_seed_changes_training_text_only() -> None:
    a, b = synthetic_source(50_000, seed=0), synthetic_source(50_000, seed=3)
    assert a.train != b.train
    assert a.val == b.val and a.entropy_bpb == b.entropy_bpb and a.info == b.info
