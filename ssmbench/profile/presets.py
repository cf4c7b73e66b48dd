"""kernel-profile presets and per-implementation size rules, as data.

A shape is (batch, dim, seqlen, dstate). Attention rows use the same shape: width
``dim = n_heads * head_dim`` and length ``seqlen`` (the KV-cache length in ``step`` mode).
"""

from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int, int, int, int]  # (batch, dim, seqlen, dstate)

SCAN_IMPLS = ("ref", "chunked", "triton", "mamba_ssm")
ATTENTION = "attention"
IMPLS = (*SCAN_IMPLS, ATTENTION)
MODES = ("fwd", "fwd_bwd", "step")
CPU_CLOCKS = ("wall", "thread")
# Which implementations have a kernel for each mode (chunked has no decode step).
MODE_IMPLS = {
    "fwd": IMPLS,
    "fwd_bwd": IMPLS,
    "step": ("ref", "triton", "mamba_ssm", ATTENTION),
}


@dataclass(frozen=True)
class ProfilePreset:
    """A named sweep. ``impls`` None means every implementation usable on the device.

    cpu_threads: torch threads for a CPU run (one thread is far steadier on a shared machine:
    a multi-threaded op stalls whenever one of its threads is descheduled). rounds: passes over
    the sweep, each taking ``rep_ms`` / ``min_reps`` of samples per row. cpu_clock: 'wall' or
    'thread' (CPU time of the timing thread, see ``TimingConfig``).
    """

    name: str
    description: str
    shapes: tuple[Shape, ...]
    modes: tuple[str, ...] = MODES
    dtypes: tuple[str, ...] = ("bfloat16",)
    impls: tuple[str, ...] | None = None
    head_dim: int = 128
    warmup_ms: float = 25.0
    rep_ms: float = 100.0
    min_reps: int = 10
    max_reps: int = 500
    quick_ceilings: bool = False
    cpu_threads: int | None = None
    rounds: int = 1
    cpu_clock: str = "wall"


def _l_sweep(batch: int, dim: int, dstate: int, lengths: tuple[int, ...]) -> tuple[Shape, ...]:
    return tuple((batch, dim, L, dstate) for L in lengths)


# Five shapes whose widths are the inner widths (2 x d_model) of the Mamba paper's models
# (arXiv 2312.00752), 130M to 2.8B; results/kernel-profile-standard-h100 times mamba_ssm on them.
ANCHOR_SHAPES: tuple[Shape, ...] = (
    (8, 1536, 2048, 16),
    (8, 2048, 4096, 16),
    (1, 5120, 8192, 16),
    (16, 1536, 1024, 16),
    (4, 4096, 16384, 16),
)

PRESETS: dict[str, ProfilePreset] = {
    p.name: p
    for p in (
        ProfilePreset(
            name="smoke",
            description="CPU in seconds: tiny shapes, fp32, every usable impl (triton only if usable)",
            shapes=((2, 32, 37, 8), *_l_sweep(1, 64, 16, (64, 128, 256))),
            dtypes=("float32",),
            head_dim=16,
            warmup_ms=2.0,
            rep_ms=5.0,
            min_reps=3,
            max_reps=50,
            quick_ceilings=True,
            cpu_threads=1,
            rounds=8,
            cpu_clock="thread",
        ),
        ProfilePreset(
            name="standard",
            description="GPU: five Mamba-sized shapes in bf16, an L sweep at (8, 2048, L, 16) for the "
            "scan-vs-attention crossover, and a state-size sweep at (8, 1536, 2048, N), N 32/64/128",
            shapes=ANCHOR_SHAPES
            + _l_sweep(8, 2048, 16, (256, 512, 1024, 2048, 8192, 16384))
            + tuple((8, 1536, 2048, n) for n in (32, 64, 128)),
            rounds=2,
        ),
        ProfilePreset(
            name="long",
            description="GPU: long sequences, L from 4K to 64K at (1, 2048, L, 16), bf16",
            shapes=_l_sweep(1, 2048, 16, (4096, 8192, 16384, 32768, 65536)),
            rep_ms=200.0,
        ),
    )
}


@dataclass(frozen=True)
class SizeLimit:
    """Largest problem an implementation is timed on; beyond it the row says 'skipped: too slow'.

    max_elems: batch * dim * seqlen; max_seqlen: seqlen (the sequential ref's cost grows with
    L in kernel launches, whatever the width).
    """

    max_elems: int | None = None
    max_seqlen: int | None = None

    def allows(self, shape: Shape) -> bool:
        batch, dim, seqlen, _ = shape
        if self.max_elems is not None and batch * dim * seqlen > self.max_elems:
            return False
        return self.max_seqlen is None or seqlen <= self.max_seqlen

    def describe(self) -> str:
        parts = []
        if self.max_elems is not None:
            parts.append(f"batch*dim*seqlen <= {self.max_elems}")
        if self.max_seqlen is not None:
            parts.append(f"seqlen <= {self.max_seqlen}")
        return " and ".join(parts) or "no limit"


# (impl, device type) -> limit for scan modes. The decode step is one token and always runs.
SIZE_LIMITS: dict[tuple[str, str], SizeLimit] = {
    ("ref", "cpu"): SizeLimit(max_elems=1 << 17, max_seqlen=1024),
    ("ref", "cuda"): SizeLimit(max_elems=8 * 2048 * 2048, max_seqlen=2048),
    ("chunked", "cpu"): SizeLimit(max_elems=1 << 22),
    # Triton on CPU runs in the interpreter (TRITON_INTERPRET=1): for checking the machinery only.
    ("triton", "cpu"): SizeLimit(max_elems=1 << 10, max_seqlen=64),
}

# The shape ref is checked on when the profiled shape is beyond its limit: batch 1, same
# dim and dstate, seqlen cut to this.
CHECK_SEQLEN = 256

# Relative error ||out - ref|| / ||ref|| above which a row is 'incorrect', per dtype, with ref
# computed in float64 on the same inputs; checked on the output, every gradient (fwd_bwd) and the
# state (step). A bf16/fp16 result is rounded to a unit roundoff u of 2^-8 / 2^-11: correct bf16
# kernels measure 0.4-0.65 u (1.6e-3 to 2.6e-3 at the standard preset on H100 and H200), so bf16
# fails above 1.3 u and fp16 above 4 u, and an output 1% off fails in both. float32 leaves room
# for the parallel scans' sums over L.
TOLERANCES = {"float64": 1e-8, "float32": 1e-4, "float16": 2e-3, "bfloat16": 5e-3}
