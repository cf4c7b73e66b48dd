"""GrammarSampler: excerpts follow the grammar, start in the stationary distribution, and are
prefix-stable and the same whether generated alone or in lockstep with others."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ssmbench.data.synthetic import (
    LOCKSTEP_MIN_ROWS,
    SENTENCE_ENDS,
    SEPARATORS,
    GrammarSampler,
    SyntheticGrammar,
)

PAIR = re.compile(rb"([A-Za-z]+)([^A-Za-z]*)")


@pytest.fixture(scope="module")
def sampler() -> GrammarSampler:
    return GrammarSampler(SyntheticGrammar.build(seed=4, n_words=64, n_successors=8))


def _rngs(n: int, seed: int = 0) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, i]) for i in range(n)]


def test_excerpts_follow_the_grammar(sampler: GrammarSampler) -> None:
    g = sampler.grammar
    index = {w: i for i, w in enumerate(g.words)}
    seps = {s for s, _ in SEPARATORS}
    for text in sampler.texts(_rngs(12), 700):
        assert 700 <= len(text) < 700 + max(len(w) for w in g.words)
        first = re.match(rb"[^A-Za-z]+", text).group()
        assert first in seps
        pairs = PAIR.findall(text[len(first) :])
        assert pairs[-1][1] == b""  # ends after a word
        prev_sep = first
        for (w, sep), (nxt, _) in zip(pairs, pairs[1:], strict=False):
            assert w[:1].isupper() == (prev_sep in SENTENCE_ENDS)
            assert sep in seps
            assert index[nxt.lower()] in g.succ[index[w.lower()]]
            prev_sep = sep


def test_prefix_stable_and_lockstep_equals_alone(sampler: GrammarSampler) -> None:
    n = LOCKSTEP_MIN_ROWS + 4
    together = sampler.texts(_rngs(n), 900)
    alone = [sampler.text(g, 900) for g in _rngs(n)]
    assert together == alone and len(set(together)) == n
    longer = sampler.texts(_rngs(n), 5000)
    assert all(b.startswith(a) for a, b in zip(together, longer, strict=True))


def test_first_word_is_stationary(sampler: GrammarSampler) -> None:
    g = sampler.grammar
    index = {w: i for i, w in enumerate(g.words)}
    n = 8_000
    firsts = [index[PAIR.search(t).group(1).lower()] for t in sampler.texts(_rngs(n, 1), 1)]
    freq = np.bincount(firsts, minlength=len(g.words)) / n
    pi = g.stationary
    uniform_tv = 0.5 * np.abs(pi - 1 / len(pi)).sum()
    assert uniform_tv > 0.1  # the test can tell a stationary start from a uniform one
    assert 0.5 * np.abs(freq - pi).sum() < 0.07
