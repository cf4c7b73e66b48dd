"""The seeded Feistel permutation: a bijection of 0..n-1 for any size and key."""

from __future__ import annotations

import numpy as np
import pytest

from ssmbench.data.permutation import permute, round_keys


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 255, 1000, 4097, 65_537])
def test_is_a_permutation(n: int) -> None:
    p = permute(np.arange(n), n, round_keys(7, n))
    assert p.dtype == np.int64
    assert np.array_equal(np.sort(p), np.arange(n))


def test_keys_decide_the_order_and_pieces_agree() -> None:
    n = 10_007
    a, b = permute(np.arange(n), n, round_keys(1)), permute(np.arange(n), n, round_keys(2))
    assert np.array_equal(a, permute(np.arange(n), n, round_keys(1)))
    assert not np.array_equal(a, b)
    idx = np.array([5, 9_999, 0, 5])
    assert np.array_equal(permute(idx, n, round_keys(1)), a[idx])
    # not the identity, not a rotation: neighbours land far apart
    assert np.median(np.abs(np.diff(a))) > n / 20


def test_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        permute(np.array([10]), 10, round_keys(0))
    with pytest.raises(ValueError):
        permute(np.array([0]), 0, round_keys(0))
