"""Mann-Whitney U test, one-sided, normal approximation with tie and continuity correction.

Written here so the gate needs no scipy; tests check it against ``scipy.stats.mannwhitneyu(...,
method="asymptotic", use_continuity=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class UTest:
    """U statistic of the first sample and the one-sided p-value for the chosen alternative."""

    u: float
    p: float


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Average ranks (1-based) of ``values`` and the tie term sum(t^3 - t) over tied groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    return ranks, ties


def mann_whitney_u(x: Sequence[float], y: Sequence[float], alternative: str = "greater") -> UTest:
    """Test whether ``x`` tends to be larger ('greater') or smaller ('less') than ``y``.

    U = R_x - n_x (n_x + 1) / 2 with average ranks for ties; mean n_x n_y / 2; variance
    n_x n_y / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))); z uses a 0.5 continuity
    correction toward the mean. All values tied (zero variance) gives p = 1.
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    nx, ny = len(x), len(y)
    if nx == 0 or ny == 0:
        raise ValueError("both samples need at least one value")
    n = nx + ny
    ranks, ties = _ranks([*map(float, x), *map(float, y)])
    u = sum(ranks[:nx]) - nx * (nx + 1) / 2
    mean = nx * ny / 2
    var = nx * ny / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return UTest(u=u, p=1.0)
    diff = u - mean if alternative == "greater" else mean - u
    z = (diff - 0.5) / math.sqrt(var)
    return UTest(u=u, p=0.5 * math.erfc(z / math.sqrt(2)))
