"""A seeded permutation of 0..n-1 evaluated one index at a time (no table in memory).

A 4-round balanced Feistel network over the smallest even number of bits that covers n, with
cycle-walking back into 0..n-1: a bijection for any key, computed for a whole array of
indices at once, so step s of training can find its windows without building (or storing,
or sending to worker processes) a permutation of millions of entries.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 4
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a strong 64-bit hash (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def round_keys(*seed: int) -> np.ndarray:
    """(ROUNDS,) uint64 keys derived from the integers ``seed``."""
    return np.random.SeedSequence(list(seed)).generate_state(ROUNDS, dtype=np.uint64)


def permute(index: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """perm(index) for the permutation of 0..n-1 given by ``keys``; index: int array in [0, n)."""
    if n <= 0:
        raise ValueError(f"permutation size must be positive, got {n}")
    index = np.asarray(index, dtype=np.uint64)
    if index.size and int(index.max()) >= n:
        raise ValueError(f"index out of range for a permutation of {n}")
    half = max(1, (max(1, (n - 1).bit_length()) + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)

    def encrypt(x: np.ndarray) -> np.ndarray:
        left, right = x >> shift, x & mask
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & mask)
        return (left << shift) | right

    out = encrypt(index)
    # the cycle of a bijection on 0..4^half-1 through an index < n returns below n: walk it
    outside = out >= np.uint64(n)
    while outside.any():
        out[outside] = encrypt(out[outside])
        outside = out >= np.uint64(n)
    return out.astype(np.int64)
