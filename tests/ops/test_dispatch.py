"""The ops dispatcher: backend choice on CPU and the function of each backend."""

import pytest

from ssmbench.errors import BadInput
from ssmbench.ops import (
    OP_BACKENDS,
    available_backends,
    backend_status,
    resolve_backend,
    scan_impl,
    step_impl,
)
from ssmbench.ops.dispatch import IMPLS, OFFICIAL, backend_impl
from ssmbench.ops.scan.chunked import selective_scan_chunked
from ssmbench.ops.state_update.ref import selective_state_update_ref


def test_backend_resolution_cpu():
    assert "ref" in available_backends("cpu") and "chunked" in available_backends("cpu")
    assert resolve_backend("auto", "cpu") == "chunked"
    with pytest.raises(BadInput):
        resolve_backend("nope", "cpu")


@pytest.mark.parametrize("op", sorted(OP_BACKENDS))
def test_every_in_tree_backend_resolves_to_its_function(op):
    """Each ssmbench backend's (module, function) entry imports (the official packages are optional)."""
    for name in OP_BACKENDS[op]:
        if name in OFFICIAL:
            continue
        module, function = IMPLS[op][name]
        fn = backend_impl(op, name)
        assert callable(fn) and fn.__name__ == function and fn.__module__ == module


def test_impl_lookups():
    assert scan_impl("chunked") is selective_scan_chunked
    assert step_impl("ref") is selective_state_update_ref
    with pytest.raises(ValueError):
        scan_impl("nope")
    with pytest.raises(ValueError):
        backend_status("cpu", "nope")


def test_official_backends_report_why_not_on_cpu():
    for op in ("scan", "conv"):
        status = backend_status("cpu", op)
        official = [name for name in status if name in OFFICIAL]
        assert official and all(status[name] for name in official)
