"""The hand-written Mann-Whitney U test against scipy's asymptotic one."""

from __future__ import annotations

import numpy as np
import pytest

from ssmbench.profile.stats import mann_whitney_u

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("nx, ny, shift, decimals", [(7, 9, 0.0, 6), (20, 20, 0.4, 6), (13, 31, -0.3, 1),
                                                     (40, 11, 1.0, 0), (3, 5, 0.0, 0)])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_matches_scipy_on_random_samples(nx, ny, shift, decimals, alternative):
    rng = np.random.default_rng(nx * 100 + ny)
    for _ in range(5):
        # Rounding creates ties, so the tie correction is exercised too.
        x = (rng.lognormal(size=nx) + shift).round(decimals)
        y = rng.lognormal(size=ny).round(decimals)
        ours = mann_whitney_u(list(x), list(y), alternative)
        ref = scipy_stats.mannwhitneyu(x, y, alternative=alternative, method="asymptotic",
                                       use_continuity=True)
        assert ours.u == pytest.approx(float(ref.statistic))
        assert ours.p == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)


def test_clear_shift_is_significant_and_direction_matters():
    rng = np.random.default_rng(1)
    base = list(rng.normal(1.0, 0.02, size=20))
    slow = [2 * v for v in rng.normal(1.0, 0.02, size=20)]
    assert mann_whitney_u(slow, base, "greater").p < 1e-6
    assert mann_whitney_u(slow, base, "less").p > 0.99


def test_all_tied_gives_p_one_and_bad_input_raises():
    assert mann_whitney_u([1.0, 1.0, 1.0], [1.0, 1.0]).p == 1.0
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError):
        mann_whitney_u([1.0], [2.0], "two-sided")
