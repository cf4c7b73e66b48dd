"""Model configurations: frozen dataclasses. Named sets of them live in zoo_sets.py and byte_sets.py."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

BLOCK_KINDS = ("attn", "ff", "mamba", "moe")


@dataclass(frozen=True)
class LMConfig:
    """A residual stack of pre-norm sub-layers, one per entry of ``pattern``.

    pattern: sub-layer kinds in order, from BLOCK_KINDS, e.g. ("attn", "ff") * 8 for the
    Transformer, ("mamba",) * 16 for Mamba, ("mamba", "moe") * 8 for MoE-Mamba.
    d_ff: width of every "ff" sub-layer; d_expert: width of each expert of a "moe" one.
    """

    vocab_size: int
    d_model: int
    pattern: tuple[str, ...]
    n_heads: int = 8
    d_ff: int = 2048
    d_expert: int = 1536
    n_experts: int = 32
    capacity_factor: float = 1.0
    lb_loss_weight: float = 0.01
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None
    max_seq_len: int = 8192
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    scan_backend: str = "auto"
    # decode-step backend of the Mamba layers (ssmbench.ops STEP_BACKENDS or "auto")
    step_backend: str = "auto"
    # MoE expert dispatch: "auto", "bmm" (padded batched matmul) or "grouped_mm"
    moe_dispatch: str = "auto"

    def __post_init__(self) -> None:
        bad = [k for k in self.pattern if k not in BLOCK_KINDS]
        if bad:
            raise ValueError(f"unknown block kinds {bad}; expected {BLOCK_KINDS}")
        if self.d_model % self.n_heads and "attn" in self.pattern:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model


@dataclass(frozen=True)
class MegaByteConfig:
    """MEGABYTE: a global Transformer over patches of ``patch_size`` bytes and a local one per byte.

    Global model width is ``d_global`` (its input is patch_size byte embeddings of width
    d_global // patch_size concatenated); the local model has width ``d_local``.
    """

    patch_size: int
    d_global: int
    n_global_layers: int
    n_global_heads: int
    d_local: int
    n_local_layers: int
    n_local_heads: int
    vocab_size: int = 256
    ff_mult: int = 4
    max_seq_len: int = 8192
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_global % self.patch_size:
            raise ValueError(f"d_global {self.d_global} not divisible by patch {self.patch_size}")


ModelConfig = LMConfig | MegaByteConfig


@dataclass(frozen=True)
class ModelSet:
    """A named set of models compared together, e.g. the five-way zoo at one size.

    models: (name, config) pairs in display order; names are what users type
    (``transformer``, ``mamba``, ``mamba-mlp``, ``moe``, ``moe-mamba``, ``mambabyte`` ...).
    """

    name: str
    description: str
    models: tuple[tuple[str, ModelConfig], ...]
    # the context the set is usually trained at; the default for FLOPs per token
    seq_len: int = 1024

    def names(self) -> list[str]:
        return [n for n, _ in self.models]

    def get(self, name: str) -> ModelConfig:
        for n, cfg in self.models:
            if n == name:
                return cfg
        raise KeyError(name)

    def replace_all(self, **changes: object) -> ModelSet:
        """Apply ``dataclasses.replace`` with ``changes`` to every config that has those fields."""
        out = []
        for n, cfg in self.models:
            own = {f.name for f in fields(cfg)}
            applicable = {k: v for k, v in changes.items() if k in own}
            out.append((n, replace(cfg, **applicable) if applicable else cfg))
        return ModelSet(self.name, self.description, tuple(out), self.seq_len)
