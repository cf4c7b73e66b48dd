"""ssmbench.device: the one home of device facts."""

import pytest
import torch

from ssmbench.device import (
    cpu_threads,
    dtype_bytes,
    dtype_name,
    is_oom,
    parse_dtype,
    resolve_device,
    triton_interpreting,
)
from ssmbench.errors import BadInput


def test_dtype_names_and_aliases():
    assert parse_dtype("bf16") is torch.bfloat16
    assert parse_dtype("float32") is torch.float32
    assert dtype_name("HALF") == "float16"
    assert dtype_bytes("bf16") == 2 and dtype_bytes(torch.float64) == 8
    with pytest.raises(BadInput, match="unknown dtype"):
        parse_dtype("int7")


def test_oom_detection():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert not is_oom(RuntimeError("shape mismatch"))
    assert not is_oom(ValueError("out of memory"))


def test_resolve_device_rejects_unknown(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(BadInput):
        resolve_device("tpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_interpreting()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not triton_interpreting()


def test_cpu_threads_sets_and_restores_on_cpu_only() -> None:
    before = torch.get_num_threads()
    with cpu_threads(torch.device("cpu"), 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(torch.device("meta"), 1), cpu_threads(torch.device("cpu"), None):
        assert torch.get_num_threads() == before
