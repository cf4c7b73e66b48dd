"""bench/timing.py: the Timeline used for regions of one run (the decode loop)."""

from __future__ import annotations

import pytest
import torch

from ssmbench.bench.timing import Timeline


def test_timeline_regions_add_up_on_cpu() -> None:
    clock = Timeline(torch.device("cpu"))
    a = clock.mark()
    torch.randn(64, 64) @ torch.randn(64, 64)
    b = clock.mark()
    torch.randn(64, 64) @ torch.randn(64, 64)
    c = clock.mark()
    clock.finish()
    assert (a, b, c) == (0, 1, 2)
    assert clock.ms(a, b) >= 0 and clock.ms(b, c) >= 0
    assert clock.ms(a, c) == pytest.approx(clock.ms(a, b) + clock.ms(b, c))
    assert clock.ms(c, a) == pytest.approx(-clock.ms(a, c))
