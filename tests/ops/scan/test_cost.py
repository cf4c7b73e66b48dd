"""FLOP and byte counts of one scan call."""

import pytest

from ssmbench.ops.scan.cost import ScanShape, scan_bytes, scan_flops


def test_cost_matches_anchor():
    s = ScanShape(8, 1536, 2048, 16)
    # about 202 MB for the forward at this shape in bf16
    assert 200e6 < scan_bytes(s, "fwd") < 204e6
    assert scan_flops(s, "fwd_bwd") == 3 * scan_flops(s, "fwd")
    with pytest.raises(ValueError):
        ScanShape(0, 1, 1, 1)
