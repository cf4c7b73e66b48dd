"""Count the aten ops a piece of PyTorch code dispatches (a TorchDispatchMode), by kind and size.

Used to pin how many activation-sized copies a layer's forward + backward makes: the same aten
ops run on CPU as on CUDA, so the counts hold on both, without timing anything. Triton kernels are
not aten ops; under the interpreter their launches are skipped while counting (their outputs are
then garbage, which changes no count), so the interpreter's own host copies are not counted.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# ops that move or convert data without computing anything new
COPIES = frozenset(
    {"copy_", "_to_copy", "clone", "cat", "stack", "constant_pad_nd", "slice_backward", "select_backward",
     "index_select", "_unsafe_index"}
)  # fmt: skip


class OpCounter(TorchDispatchMode):
    """Counts ops by (name, large, elementwise). large: the op writes at least ``large`` elements;
    elementwise: aten tags it pointwise and it is no copy (arithmetic, activations)."""

    def __init__(self, large: int) -> None:
        super().__init__()
        self.large = large
        self.ops: Counter[tuple[str, bool, bool]] = Counter()
        # (name, shape, dtype) of every large op, in order
        self.log: list[tuple[str, tuple[int, ...], torch.dtype]] = []
        # large copies whose source and result run fastest along different dimensions
        self.transposing = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        written = args[0] if name.endswith("_") and args and isinstance(args[0], torch.Tensor) else out
        if isinstance(written, (tuple, list)):
            written = written[0] if written else None
        big = isinstance(written, torch.Tensor) and written.numel() >= self.large
        elementwise = torch.Tag.pointwise in func.tags and name not in COPIES
        self.ops[(name, big, elementwise)] += 1
        if big:
            source = args[1] if name == "copy_" else args[0]
            if name in ("clone", "_to_copy", "copy_") and _fastest_dim(source) != _fastest_dim(written):
                self.transposing += 1
            self.log.append((name, tuple(written.shape), written.dtype))
        return out

    def table(self) -> dict[str, int]:
        """{"copies", "large_copies", "elementwise", "large_elementwise", "large_transposing_copies",
        "ops"}."""
        def total(keep: Callable[[str, bool, bool], bool]) -> int:
            return sum(n for key, n in self.ops.items() if keep(*key))

        return {
            "copies": total(lambda name, big, ew: name in COPIES),
            "large_copies": total(lambda name, big, ew: big and name in COPIES),
            "elementwise": total(lambda name, big, ew: ew),
            "large_elementwise": total(lambda name, big, ew: big and ew),
            "large_transposing_copies": self.transposing,
            "ops": sum(self.ops.values()),
        }

    def large_ops(self, names: frozenset[str]) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        return [entry for entry in self.log if entry[0] in names]


def _fastest_dim(t: torch.Tensor) -> int:
    """The dimension (of size > 1) along which t's elements are adjacent in memory, or -1."""
    dims = [d for d in range(t.dim()) if t.shape[d] > 1]
    return min(dims, key=lambda d: t.stride(d)) if dims else -1


@contextlib.contextmanager
def _skip_interpreted_kernels() -> Iterator[None]:
    """Under TRITON_INTERPRET=1, launches do nothing (their host copies are no model op)."""
    try:
        from triton.runtime import interpreter
    except ImportError:
        yield
        return
    saved = interpreter.GridExecutor.__call__
    interpreter.GridExecutor.__call__ = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        interpreter.GridExecutor.__call__ = saved


def count_ops(fn: Callable[[], object], large: int) -> OpCounter:
    """Run ``fn`` once under an OpCounter (interpreted Triton kernels skipped)."""
    counter = OpCounter(large)
    with _skip_interpreted_kernels(), counter:
        fn()
    return counter
