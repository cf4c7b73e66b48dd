"""What a kernel-profile run measures: the resolved config and one RowSpec per row.

Parsing of user input (shapes, impl/mode/dtype lists, thresholds) lives here too, so the
CLI stays one call into the library; every bad value is a one-line BadInput.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch

from ssmbench.device import device_memory_bytes, dtype_bytes
from ssmbench.errors import BadInput
from ssmbench.profile.presets import (
    ATTENTION,
    IMPLS,
    MODE_IMPLS,
    MODES,
    PRESETS,
    ProfilePreset,
    Shape,
)


@dataclass(frozen=True)
class RowSpec:
    """One measurement: an implementation in a mode on a shape and dtype.

    head_dim only matters for attention (n_heads = dim // head_dim).
    """

    impl: str
    mode: str
    batch: int
    dim: int
    seqlen: int
    dstate: int
    dtype: str
    head_dim: int

    @property
    def shape(self) -> Shape:
        return (self.batch, self.dim, self.seqlen, self.dstate)

    @property
    def is_attention(self) -> bool:
        return self.impl == ATTENTION

    @property
    def row_id(self) -> str:
        """Stable identity used to match a row against a baseline."""
        rid = f"{self.impl}/{self.mode}/{self.batch}x{self.dim}x{self.seqlen}x{self.dstate}/{self.dtype}"
        return rid + (f"/hd{self.head_dim}" if self.is_attention else "")

    def key(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TimingConfig:
    """Settings passed to ``ssmbench.bench.timing.benchmark`` for every row.

    threads: torch CPU threads during a CPU run (None: leave torch's default). rounds: passes
    over the whole sweep; each pass takes ``rep_ms`` / ``min_reps`` worth of samples per row.
    cpu_clock: what a CPU sample measures, 'wall' (time.perf_counter) or 'thread' (the timing
    thread's CPU time, time.thread_time: other processes cannot inflate it; needs threads=1).
    """

    warmup_ms: float
    rep_ms: float
    min_reps: int
    max_reps: int
    threads: int | None = None
    rounds: int = 1
    cpu_clock: str = "wall"


@dataclass(frozen=True)
class ProfileConfig:
    """A resolved kernel-profile run: rows to measure and how to time them."""

    preset: str | None
    device: str
    rows: tuple[RowSpec, ...]
    timing: TimingConfig
    seed: int = 0
    quick_ceilings: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "preset": self.preset,
            "device": self.device,
            "seed": self.seed,
            "timing": asdict(self.timing),
            "quick_ceilings": self.quick_ceilings,
            "rows": [r.row_id for r in self.rows],
        }


def split_list(values: Iterable[str] | None) -> list[str]:
    """Repeatable options that may also be comma lists: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def parse_shape(text: str) -> Shape:
    """'8,1536,2048,16' -> (8, 1536, 2048, 16): batch, dim, seqlen, dstate, all positive."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        nums = tuple(int(p) for p in parts)
    except ValueError:
        nums = ()
    if len(nums) != 4:
        raise BadInput(f"--shape {text!r}: expected four integers batch,dim,seqlen,dstate")
    if min(nums) < 1:
        raise BadInput(f"--shape {text!r}: every size must be positive")
    return nums  # type: ignore[return-value]


def parse_impls(names: Sequence[str]) -> list[str]:
    for n in names:
        if n not in IMPLS:
            raise BadInput(f"unknown impl {n!r}; choose from {', '.join(IMPLS)}")
    return list(dict.fromkeys(names))


def parse_modes(names: Sequence[str]) -> list[str]:
    for n in names:
        if n not in MODES:
            raise BadInput(f"unknown mode {n!r}; choose from {', '.join(MODES)}")
    return list(dict.fromkeys(names))


def parse_percent(text: str) -> float:
    """'10%' or '10' -> 0.10. Must be >= 0."""
    raw = text.strip().removesuffix("%")
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"--max-regression {text!r}: expected a percentage such as 10%") from None
    if not (math.isfinite(value) and value >= 0):
        raise BadInput(f"--max-regression {text!r}: must be a finite percentage >= 0%")
    return value / 100.0


def get_preset(name: str) -> ProfilePreset:
    if name not in PRESETS:
        raise BadInput(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def default_preset_name(device: torch.device) -> str:
    return "smoke" if device.type == "cpu" else "standard"


def expand_rows(
    impls: Sequence[str],
    modes: Sequence[str],
    shapes: Sequence[Shape],
    dtypes: Sequence[str],
    head_dim: int,
    explicit_impls: bool,
) -> tuple[RowSpec, ...]:
    """Every (mode, shape, dtype, impl) combination, in that nesting order.

    An impl without a kernel for a mode (chunked in 'step') is left out unless it was named
    explicitly, in which case its row is kept and will say so. Attention rows that differ only in
    the state size N are kept once (the first), as attention has no state.
    """
    if head_dim < 1:
        raise BadInput(f"--head-dim must be positive, got {head_dim}")
    rows, attention_seen = [], set()
    for mode in modes:
        for shape in shapes:
            for dtype in dtypes:
                for impl in impls:
                    if impl not in MODE_IMPLS[mode] and not explicit_impls:
                        continue
                    spec = RowSpec(impl, mode, *shape, dtype=dtype, head_dim=head_dim)
                    if spec.is_attention:
                        # attention does not depend on the state size: one row per (B, D, L)
                        key = (impl, mode, *shape[:3], dtype)
                        if key in attention_seen:
                            continue
                        attention_seen.add(key)
                    rows.append(spec)
    return tuple(rows)


def resident_bytes(spec: RowSpec) -> int:
    """Lower bound on the memory one row needs at once: inputs, outputs and (fwd_bwd) grads."""
    e = dtype_bytes(spec.dtype)
    b, d, L, n = spec.shape
    if spec.is_attention:
        if spec.mode == "step":
            return 2 * b * d * L * e + 2 * b * d * e  # KV cache + q, o
        tensors = 4 if spec.mode == "fwd" else 4 + 4  # q, k, v, o (+ dout, dq, dk, dv)
        return tensors * b * d * L * e
    if spec.mode == "step":
        return b * d * n * 4 + 4 * b * d * e + 2 * b * n * e
    act, bc = b * d * L * e, 2 * b * n * L * e
    fwd = 4 * act + bc  # u, delta, z, out; B, C
    return fwd if spec.mode == "fwd" else 2 * fwd


def check_fits(rows: Iterable[RowSpec], device: torch.device) -> None:
    """BadInput when any row's minimum resident bytes exceed the device's memory."""
    total = device_memory_bytes(device)
    for spec in rows:
        need = resident_bytes(spec)
        if need > total:
            raise BadInput(
                f"shape {spec.batch},{spec.dim},{spec.seqlen},{spec.dstate} ({spec.dtype}, "
                f"{spec.impl} {spec.mode}) needs at least {need / 1e9:.1f} GB; "
                f"{device} has {total / 1e9:.1f} GB"
            )
