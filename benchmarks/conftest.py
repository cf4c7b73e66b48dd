"""pytest-benchmark setup: the device, CUDA-synchronised timed calls, and GPU facts in machine_info.

pytest-benchmark times with a CPU clock and its machine id knows no GPU, so every timed
function here synchronises CUDA before returning, and the GPU name, driver, CUDA runtime
and library versions go into ``machine_info["ssmbench"]`` (saved with every run, shown by
``pytest-benchmark compare``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from ssmbench.bench.environment import collect_environment, device_kind
from ssmbench.bench.timing import synchronize

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    env = collect_environment(DEVICE)
    keys = ("device", "device_name", "device_capability", "device_memory_bytes", "driver", "cuda_runtime",
            "torch", "triton", "mamba_ssm", "ssmbench", "cpu_threads", "commit", "dirty")
    machine_info["ssmbench"] = {k: env.get(k) for k in keys} | {"device_kind": device_kind(env)}


@pytest.fixture
def synced() -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Wrap a timed function so it synchronises the device before returning: pytest-benchmark's
    CPU clock then measures the GPU work, not the launch."""

    def wrap(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            out = fn()
            synchronize(DEVICE)
            return out

        return run

    return wrap
