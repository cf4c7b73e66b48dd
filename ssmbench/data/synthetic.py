"""The embedded synthetic text source: a seeded word-level Markov chain with a known entropy rate.

A "grammar" is a vocabulary of pronounceable lower-case words, a sparse first-order Markov
chain over them (Zipf-like successor weights) and separators (" ", ", ", ". ", ...) drawn
independently after each word; the word after a sentence end is capitalised. Words are letter
runs and separators non-letter runs, so the byte stream decodes uniquely into (word, separator)
pairs and its entropy rate in bits per byte is exactly

    H = (sum_i pi_i H(P_i) + H(sep)) / (sum_i pi_i len(w_i) + E[len(sep)])

with pi the chain's stationary distribution. Transition probabilities are multiples of
1 / QUANT, so sampling is one table lookup per word and the entropy above is that of the
sampler itself, not of an approximation to it.

``SyntheticGrammar.sample`` draws one long text; ``GrammarSampler`` draws many short excerpts
of the stationary stream at once, prefix-stable, for training rows generated on the fly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

QUANT = 4096
SEPARATORS: tuple[tuple[bytes, int], ...] = (
    # (separator, weight out of QUANT)
    (b" ", 3400),
    (b", ", 300),
    (b". ", 220),
    (b".\n", 80),
    (b"; ", 40),
    (b"? ", 30),
    (b"!\n", 26),
)
SENTENCE_ENDS = frozenset({b". ", b".\n", b"? ", b"!\n"})
_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y",
           "z", "th", "st", "tr", "pl", "gr", "sh", "ch", "br", "qu")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_CODAS = ("", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng")


def _entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@dataclass(frozen=True)
class SyntheticGrammar:
    """A word Markov chain. words: the vocabulary; succ[i]: successor ids of word i;
    counts[i]: their weights in units of 1/QUANT (each row sums to QUANT)."""

    words: tuple[bytes, ...]
    succ: tuple[tuple[int, ...], ...]
    counts: tuple[tuple[int, ...], ...]

    @classmethod
    def build(
        cls, seed: int = 0, n_words: int = 1024, n_successors: int = 64, zipf_exponent: float = 0.6
    ) -> SyntheticGrammar:
        """A random grammar; the same seed gives the same grammar on every machine."""
        if n_words < 4 or not 2 <= n_successors < n_words:
            raise ValueError("need n_words >= 4 and 2 <= n_successors < n_words")
        rng = np.random.default_rng([seed, 0x5EED])
        words: list[bytes] = []
        seen: set[bytes] = set()
        while len(words) < n_words:
            # frequent (low-rank) words are short, as in natural language
            n_syll = 1 + min(3, rng.poisson(0.3 + 1.7 * len(words) / n_words))
            w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syll)) + rng.choice(_CODAS)
            if w.encode() not in seen:
                seen.add(w.encode())
                words.append(w.encode())
        zipf = 1.0 / np.arange(1, n_words + 1) ** zipf_exponent
        succ, counts = [], []
        for i in range(n_words):
            others = rng.choice(n_words, size=n_successors, replace=False, p=zipf / zipf.sum())
            # (i + 1) mod n keeps the chain irreducible whatever else was drawn
            ids = np.unique(np.append(others, (i + 1) % n_words))
            weights = zipf[ids] * rng.gamma(1.0, size=len(ids))
            q = np.maximum(1, np.floor(weights / weights.sum() * QUANT)).astype(np.int64)
            q[np.argmax(q)] += QUANT - q.sum()
            succ.append(tuple(int(x) for x in ids))
            counts.append(tuple(int(x) for x in q))
        return cls(tuple(words), tuple(succ), tuple(counts))

    @cached_property
    def transition(self) -> np.ndarray:
        """(n_words, n_words) row-stochastic matrix."""
        n = len(self.words)
        m = np.zeros((n, n))
        for i, (ids, cs) in enumerate(zip(self.succ, self.counts, strict=True)):
            m[i, list(ids)] = np.asarray(cs) / QUANT
        return m

    @cached_property
    def stationary(self) -> np.ndarray:
        """(n_words,) stationary distribution pi = pi P (left eigenvector for eigenvalue 1)."""
        p = self.transition
        pi = np.full(len(self.words), 1.0 / len(self.words))
        for _ in range(100_000):
            nxt = pi @ p
            if np.abs(nxt - pi).sum() < 1e-14:
                break
            pi = nxt
        return nxt / nxt.sum()

    @cached_property
    def entropy_rate_bits_per_word(self) -> float:
        """Bits per (word, separator) pair: word-chain entropy rate plus separator entropy."""
        sep_p = np.array([w for _, w in SEPARATORS]) / QUANT
        h_rows = np.array([_entropy_bits(np.asarray(c) / QUANT) for c in self.counts])
        return float(self.stationary @ h_rows) + _entropy_bits(sep_p)

    @cached_property
    def mean_bytes_per_word(self) -> float:
        """Expected bytes of one word plus its separator under the stationary distribution."""
        lens = np.array([len(w) for w in self.words])
        sep_len = sum(len(s) * w for s, w in SEPARATORS) / QUANT
        return float(self.stationary @ lens) + sep_len

    @property
    def entropy_rate_bits_per_byte(self) -> float:
        """The floor for bits per byte: no model can do better on this source in expectation."""
        return self.entropy_rate_bits_per_word / self.mean_bytes_per_word

    def sample(self, n_bytes: int, seed: int) -> bytes:
        """About ``n_bytes`` of text (cut to exactly ``n_bytes``) from stream ``seed``."""
        if n_bytes <= 0:
            raise ValueError("n_bytes must be positive")
        rng = np.random.default_rng([seed, 0x7E47])
        tables = [np.repeat(np.asarray(ids), np.asarray(cs)).tolist()
                  for ids, cs in zip(self.succ, self.counts, strict=True)]
        sep_table = np.repeat(np.arange(len(SEPARATORS)), [w for _, w in SEPARATORS])
        sep_bytes = [s for s, _ in SEPARATORS]
        ends = [s in SENTENCE_ENDS for s in sep_bytes]
        capital = [w[:1].upper() + w[1:] for w in self.words]
        state = int(rng.integers(0, len(self.words)))
        parts: list[bytes] = []
        total, start_of_sentence = 0, True
        chunk = int(math.ceil(n_bytes / self.mean_bytes_per_word * 1.05)) + 16
        while total < n_bytes:
            draws = rng.integers(0, QUANT, size=chunk).tolist()
            seps = sep_table[rng.integers(0, QUANT, size=chunk)].tolist()
            for t in range(chunk):
                state = tables[state][draws[t]]
                word = capital[state] if start_of_sentence else self.words[state]
                sep = sep_bytes[seps[t]]
                parts.append(word)
                parts.append(sep)
                total += len(word) + len(sep)
                start_of_sentence = ends[seps[t]]
                if total >= n_bytes:
                    break
            chunk = max(64, chunk // 8)
        return b"".join(parts)[:n_bytes]


LOCKSTEP_MIN_ROWS = 4  # more chains than this advance together in numpy, fewer in a Python loop
BLOCK = 64  # words drawn per block by ``GrammarSampler``; fixed, so excerpts are prefix-stable


class GrammarSampler:
    """Fast, prefix-stable excerpts of a grammar's stationary stream.

    An excerpt is the stream seen from a random point: a separator, then words and separators,
    ending after the first word that takes it to ``n_bytes`` or more. The word before the
    excerpt is drawn from the stationary distribution, so an excerpt has the source's entropy
    rate from its first byte. Random draws come in fixed blocks of ``BLOCK`` words, so for one
    generator state the excerpt of ``n`` bytes is a prefix of the excerpt of any ``m > n``
    bytes. Several excerpts (one generator each) advance in lockstep, vectorised over rows.
    """

    def __init__(self, grammar: SyntheticGrammar) -> None:
        self.grammar = grammar
        n = len(grammar.words)
        table = np.zeros((n, QUANT), dtype=np.int32)
        for i, (ids, cs) in enumerate(zip(grammar.succ, grammar.counts, strict=True)):
            table[i] = np.repeat(np.asarray(ids), np.asarray(cs))
        self._next = table.ravel()  # word i, draw d -> next word _next[i * QUANT + d]
        self._cdf = np.cumsum(grammar.stationary)
        self._sep_of = np.repeat(np.arange(len(SEPARATORS)), [w for _, w in SEPARATORS])  # draw -> separator
        # pieces: words 0..n-1, capitalised words n..2n-1, separators 2n..
        capitals = [w[:1].upper() + w[1:] for w in grammar.words]
        pieces = [*grammar.words, *capitals, *(s for s, _ in SEPARATORS)]
        self._n = n
        self._len = np.array([len(p) for p in pieces], dtype=np.int64)
        self._start = np.concatenate([[0], np.cumsum(self._len)[:-1]])
        self._buf = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        self._ends = np.array([s in SENTENCE_ENDS for s, _ in SEPARATORS])

    def text(self, rng: np.random.Generator, n_bytes: int) -> bytes:
        """One excerpt of at least ``n_bytes`` bytes drawn from ``rng``."""
        return self.texts([rng], n_bytes)[0]

    def texts(self, rngs: list[np.random.Generator], n_bytes: int) -> list[bytes]:
        """One excerpt per generator; excerpt r depends only on rngs[r] and ``n_bytes``."""
        n_rows, n = len(rngs), self._n
        state = np.empty(n_rows, dtype=np.int64)
        first = np.empty(n_rows, dtype=np.int64)
        for r, g in enumerate(rngs):
            state[r] = min(int(np.searchsorted(self._cdf, g.random(), side="right")), n - 1)
            first[r] = self._sep_of[int(g.integers(0, QUANT))]
        total = self._len[2 * n + first]
        words: list[list[np.ndarray]] = [[] for _ in range(n_rows)]
        seps: list[list[np.ndarray]] = [[] for _ in range(n_rows)]
        active = np.arange(n_rows)
        while len(active):
            draws = np.stack([rngs[r].integers(0, QUANT, size=2 * BLOCK) for r in active])  # (A, 2*BLOCK)
            w = self._walk(state[active], draws[:, :BLOCK])
            state[active] = w[:, -1]
            s = self._sep_of[draws[:, BLOCK:]]  # (A, BLOCK)
            for j, r in enumerate(active):
                words[r].append(w[j])
                seps[r].append(s[j])
            total[active] += (self._len[w] + self._len[2 * n + s]).sum(1)
            # the last word of the block ends len(last separator) bytes before the total
            active = active[total[active] - self._len[2 * n + s[:, -1]] < n_bytes]
        return [self._excerpt(int(first[r]), np.concatenate(words[r]), np.concatenate(seps[r]), n_bytes)
                for r in range(n_rows)]

    def _walk(self, state: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """(A, BLOCK) next words of A chains from ``state`` (A,) under ``draws`` (A, BLOCK)."""
        out = np.empty(draws.shape, dtype=np.int64)
        if len(state) > LOCKSTEP_MIN_ROWS:
            st = state
            for t in range(draws.shape[1]):
                st = self._next[st * QUANT + draws[:, t]]
                out[:, t] = st
            return out
        # few chains: a Python loop over a memoryview beats one numpy call per word
        table = memoryview(self._next)
        for r, (st, row) in enumerate(zip(state.tolist(), draws.tolist(), strict=True)):
            walk = []
            for d in row:
                st = table[st * QUANT + d]
                walk.append(st)
            out[r] = walk
        return out

    def _excerpt(self, first: int, words: np.ndarray, seps: np.ndarray, n_bytes: int) -> bytes:
        n = self._n
        cap = self._ends[np.concatenate([[first], seps[:-1]])]  # a word after a sentence end is capitalised
        ids = np.empty(2 * len(words) + 1, dtype=np.int64)
        ids[0] = 2 * n + first
        ids[1::2] = words + n * cap
        ids[2::2] = 2 * n + seps
        lens = self._len[ids]
        word_ends = np.cumsum(lens)[1::2]
        k = int(np.searchsorted(word_ends, n_bytes))  # first word ending at or past n_bytes
        ids, lens = ids[: 2 * k + 2], lens[: 2 * k + 2]
        offsets = np.cumsum(lens) - lens
        idx = np.repeat(self._start[ids] - offsets, lens) + np.arange(int(lens.sum()))
        return self._buf[idx].tobytes()
