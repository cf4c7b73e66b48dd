"""One home for device facts: which device, how much memory, out-of-memory, dtype names, and
whether Triton kernels run in the interpreter. Every layer may import this module; it imports
nothing of ssmbench but the errors."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ssmbench.errors import BadInput

# Canonical dtype names, their aliases and the torch dtypes they stand for.
DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DTYPE_ALIASES: dict[str, str] = {
    "fp64": "float64", "f64": "float64", "double": "float64",
    "fp32": "float32", "f32": "float32", "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16", "f16": "float16", "half": "float16",
}  # fmt: skip


def dtype_name(name: str) -> str:
    """The canonical name ('float32', 'bfloat16', ...) of a dtype name or alias; BadInput if unknown."""
    key = name.strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPES:
        known = ", ".join([*DTYPES, *DTYPE_ALIASES])
        raise BadInput(f"unknown dtype {name!r}; choose from {known}")
    return key


def parse_dtype(name: str) -> torch.dtype:
    """The torch dtype of a dtype name or alias ('bf16' -> torch.bfloat16); BadInput if unknown."""
    return DTYPES[dtype_name(name)]


def dtype_bytes(dtype: torch.dtype | str) -> int:
    """Bytes per element of a torch dtype or dtype name."""
    if isinstance(dtype, str):
        dtype = parse_dtype(dtype)
    return torch.empty((), dtype=dtype).element_size()


def resolve_device(name: str | None) -> torch.device:
    """'auto' (or None) -> cuda when available, else cpu. Unknown or absent device -> BadInput."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise BadInput(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"device {name!r} asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInput(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) here")
    elif dev.type != "cpu":
        raise BadInput(f"unsupported device type {dev.type!r} (use cpu or cuda)")
    return dev


def device_memory_bytes(device: torch.device) -> int:
    """Total memory of ``device`` in bytes: GPU memory, or physical RAM for the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory failure: CUDA's, or the CPU allocator's."""
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def triton_interpreting() -> bool:
    """Whether Triton kernels run in its CPU interpreter (TRITON_INTERPRET=1, for tests)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``threads`` on a CPU device, restored after."""
    if device.type != "cpu" or threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)
