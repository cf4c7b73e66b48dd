"""pytest-benchmark suite of the kernels kernel-profile measures: every scan backend and SDPA
attention, forward, forward+backward and decode step.

Small shapes on CPU (float32), the first two shapes of kernel-profile's standard preset on CUDA
(bfloat16). Inputs, the correctness check and the size rules are kernel-profile's own; a row that
is incorrect fails instead of reporting a speed. Run:

    pytest benchmarks --benchmark-autosave
    pytest benchmarks --benchmark-compare --benchmark-compare-fail=median:10%
"""

from __future__ import annotations

import pytest
import torch

from ssmbench.profile.attention import attention_problem
from ssmbench.profile.presets import ANCHOR_SHAPES, IMPLS, MODES, TOLERANCES
from ssmbench.profile.scan import scan_problem
from ssmbench.profile.spec import RowSpec
from ssmbench.profile.sweep import check_row, row_counts, row_seed, skip_reason

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cuda":
    SHAPES, DTYPE, HEAD_DIM = ANCHOR_SHAPES[:2], "bfloat16", 128
else:
    SHAPES, DTYPE, HEAD_DIM = ((1, 64, 128, 16),), "float32", 16


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_kernel(benchmark, synced, impl, mode, shape):
    spec = RowSpec(impl, mode, *shape, dtype=DTYPE, head_dim=HEAD_DIM)
    why = skip_reason(spec, DEVICE)
    if why is not None:
        pytest.skip(why)
    seed = row_seed(spec, 0)
    problem = (attention_problem if spec.is_attention else scan_problem)(spec, DEVICE, seed)
    flops, nbytes = row_counts(spec)
    with problem.context():
        rel_err, checked_on = check_row(spec, DEVICE, seed + 2, problem.backend)
        if not rel_err <= TOLERANCES[DTYPE] and not checked_on.startswith("not checked"):
            pytest.fail(f"{spec.row_id}: incorrect (rel_err {rel_err:.3g} on {checked_on}), no speed given")
        benchmark.extra_info.update(
            row_id=spec.row_id, backend=problem.backend, flops=flops, bytes=nbytes, rel_err=rel_err,
            rel_err_on=checked_on,
        )
        benchmark(synced(problem.run))
