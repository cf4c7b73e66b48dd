"""One language model for the whole five-way zoo, built from a pattern of sub-layer kinds.

Token embedding -> a stack of pre-norm residual sub-layers (x + layer(LayerNorm(x)), one per
entry of ``cfg.pattern``: "attn", "ff", "mamba", "moe") -> final LayerNorm -> LM head (untied).
Transformer = ("attn", "ff") * n, Mamba = ("mamba",) * 2n, Mamba-MLP = ("mamba", "ff") * n,
MoE = ("attn", "moe") * n, MoE-Mamba = ("mamba", "moe") * n.

The LM head has ``padded_vocab(vocab_size)`` rows, a multiple of HEAD_ROW_MULTIPLE: its GEMMs at
GPT-2's 50257 rows run on slow unaligned kernels. The extra rows are zeros that nothing reads:
the loss and the returned logits cover the real vocabulary only (``ssmbench.models.loss``), the
rows get no gradient, and parameter counts leave them out (``padding_params``). The embedding is
not padded (a lookup, no GEMM).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ssmbench.layers.attention import CausalSelfAttention
from ssmbench.layers.mamba import Mamba
from ssmbench.layers.mlp import MLP
from ssmbench.layers.moe import SwitchMoE
from ssmbench.layers.norm import add_norm, build_norm, norm_backend
from ssmbench.models.cache import InferenceCache
from ssmbench.models.config import LMConfig
from ssmbench.models.loss import lm_loss
from ssmbench.models.output import LMOutput

HEAD_ROW_MULTIPLE = 64


def padded_vocab(vocab_size: int) -> int:
    """Rows of the LM head: vocab_size rounded up to a multiple of HEAD_ROW_MULTIPLE."""
    return -(-vocab_size // HEAD_ROW_MULTIPLE) * HEAD_ROW_MULTIPLE


def build_sublayer(kind: str, cfg: LMConfig) -> nn.Module:
    """The mixer or feed-forward module for one entry of ``cfg.pattern``."""
    if kind == "attn":
        return CausalSelfAttention(cfg.d_model, cfg.n_heads, rope_base=cfg.rope_base)
    if kind == "ff":
        return MLP(cfg.d_model, cfg.d_ff, activation="relu")
    if kind == "mamba":
        return Mamba(
            cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, cfg.dt_rank,
            scan_backend=cfg.scan_backend, step_backend=cfg.step_backend,
        )  # fmt: skip
    if kind == "moe":
        return SwitchMoE(cfg.d_model, cfg.d_expert, cfg.n_experts, cfg.capacity_factor, cfg.moe_dispatch)
    raise ValueError(f"unknown sub-layer kind {kind!r}")


class Residual(nn.Module):
    """One pre-norm residual block, called with the add of the previous block's output still
    pending (mamba_ssm's fused add + norm): (x, y) -> (s, out, stats) with s = x + y (x when y is
    None), out = layer(norm(s)), all (B, T, D); MoE sub-layers also return their routing stats (else
    None). The caller adds the last block's output. Everything runs inside this module's call, so
    FSDP's per-block hooks gather its parameters."""

    def __init__(self, kind: str, cfg: LMConfig) -> None:
        super().__init__()
        self.kind = kind
        self.norm = build_norm(cfg.d_model, cfg.norm_eps)
        self.layer = build_sublayer(kind, cfg)

    def forward(self, x: Tensor, y: Tensor | None = None, backend: str = "ref") -> tuple[Tensor, Tensor, Any]:
        h, s = add_norm(y, x, self.norm, backend)
        out, stats = self.mix(h)
        return s, out, stats

    def mix(self, h: Tensor) -> tuple[Tensor, Any]:
        """The sub-layer on the normed input h (B, T, D): (its output, MoE routing stats or None)."""
        if self.kind == "moe":
            return self.layer(h)
        return self.layer(h), None

    def prefill(self, x: Tensor, state: Any, offset: int) -> Tensor:
        h = self.norm(x)
        if self.kind in ("attn", "mamba"):
            return x + self.layer.prefill(h, state, offset)
        if self.kind == "moe":
            return x + self.layer(h)[0]
        return x + self.layer(h)

    def step(self, x: Tensor, state: Any, pos: int | Tensor) -> Tensor:
        """x: (B, D), one token."""
        if self.kind == "mamba":
            return self.layer.step_residual(x, self.norm, state)
        h = self.norm(x)
        if self.kind == "attn":
            return x + self.layer.step(h, state, pos)
        if self.kind == "moe":
            return x + self.layer(h[:, None])[0][:, 0]
        return x + self.layer(h)


class LM(nn.Module):
    """idx (B, T) token ids -> LMOutput(logits (B, T, vocab), loss, aux_loss, moe_stats).

    The logits are a view of the head's padded output (row stride ``padded_vocab``). The forward
    fuses each residual add with the next norm (``ssmbench.layers.norm.add_norm``; the residual
    stream stays in the parameters' dtype, fp32); ``norm_backend`` picks how ('auto': the fused
    Triton kernel on CUDA); decoding (prefill, step) runs the blocks one by one."""

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Residual(kind, cfg) for kind in cfg.pattern)
        self.norm_f = build_norm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, padded_vocab(cfg.vocab_size), bias=False)
        self.norm_backend = "auto"
        self.last_norm_backend: str | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Weights N(0, 0.02); residual output projections N(0, 0.02 / sqrt(#sub-layers)) (GPT-2);
        Mamba's dt/A/D parameters keep their own init; norms ones/zeros; conv PyTorch default;
        the LM head's padding rows zeros."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)) and not getattr(
                module.weight, "_no_reinit", False
            ):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, SwitchMoE):
                nn.init.normal_(module.w_in, std=0.02)
        residual_std = 0.02 / math.sqrt(max(1, len(self.cfg.pattern)))
        for p in self.parameters():
            if getattr(p, "_residual_out", False):
                nn.init.normal_(p, std=residual_std)
        nn.init.zeros_(self.lm_head.weight[self.cfg.vocab_size :])

    def padding_params(self) -> int:
        """Parameters that exist only as padding (the LM head's rows past the vocabulary)."""
        return (self.lm_head.weight.shape[0] - self.cfg.vocab_size) * self.cfg.d_model

    def _logits(self, x: Tensor) -> Tensor:
        """x (..., D) -> logits over the padded head rows (..., padded_vocab)."""
        return self.lm_head(self.norm_f(x))

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> LMOutput:
        x = self.embed(idx)  # (B, T, D): the residual stream
        backend = norm_backend(self.norm_backend, self.norm_f, x.device)
        self.last_norm_backend = backend
        y, stats = None, []
        for block in self.blocks:
            x, y, s = block(x, y, backend)  # x <- x + y; y <- the block's output
            if s is not None:
                stats.append(s)
        h, _ = add_norm(y, x, self.norm_f, backend)
        logits = self.lm_head(h)  # (B, T, V_pad)
        V = self.cfg.vocab_size
        loss = lm_loss(logits, targets, V) if targets is not None else None
        aux = sum((s.lb_loss for s in stats), logits.new_zeros((), dtype=torch.float32))
        moe_stats = [
            {
                "expert_fraction": s.expert_fraction,
                "dropped_fraction": s.dropped_fraction,
                "dispatch": s.dispatch,
                "capacity": s.capacity,
            }
            for s in stats
        ]
        return LMOutput(logits[..., :V], loss, self.cfg.lb_loss_weight * aux, moe_stats)

    def allocate_inference_cache(
        self, batch_size: int, max_seqlen: int, dtype: torch.dtype | None = None
    ) -> InferenceCache:
        """Per-layer states (KV caches, Mamba conv/SSM states; None for ff/moe) on the model's device."""
        device = self.embed.weight.device
        dtype = dtype or self.embed.weight.dtype
        states = [
            block.layer.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype, device=device)
            if block.kind in ("attn", "mamba")
            else None
            for block in self.blocks
        ]
        return InferenceCache(batch_size=batch_size, max_seqlen=max_seqlen, layer_states=states)

    def prefill(self, idx: Tensor, cache: InferenceCache) -> Tensor:
        """idx (B, T) at positions cache.seqlen_offset.. -> logits (B, T, V); cache advanced by T.

        Decode in eval mode: MoE layers then route every token, as the eval forward does."""
        T = idx.shape[1]
        cache.check_room(T)
        x = self.embed(idx)
        for block, state in zip(self.blocks, cache.layer_states, strict=True):
            x = block.prefill(x, state, cache.seqlen_offset)
        cache.advance(T)
        return self._logits(x)[..., : self.cfg.vocab_size]

    def step(self, idx_t: Tensor, cache: InferenceCache) -> Tensor:
        """idx_t (B,) one token per sequence -> logits (B, V); cache advanced by 1."""
        cache.check_room(1)
        pos = cache.current_position()
        x = self.embed(idx_t)  # (B, D)
        for block, state in zip(self.blocks, cache.layer_states, strict=True):
            x = block.step(x, state, pos)
        cache.advance(1)
        return self._logits(x)[..., : self.cfg.vocab_size]

    def kernel_paths(self) -> dict[str, str]:
        """Which scan/conv/step/norm backends and MoE dispatch path last ran (only for the kinds
        present)."""
        paths: dict[str, str] = {}
        for block in self.blocks:
            layer = block.layer
            if isinstance(layer, Mamba):
                if layer.last_scan_backend:
                    paths["scan_backend"] = layer.last_scan_backend
                if layer.last_step_backend:
                    paths["step_backend"] = layer.last_step_backend
                if layer.last_conv_backend:
                    paths["conv_backend"] = layer.last_conv_backend
                if layer.last_conv_step_backend:
                    paths["conv_step_backend"] = layer.last_conv_step_backend
                if layer.last_decode_path:
                    paths["mamba_decode"] = layer.last_decode_path
            elif isinstance(layer, SwitchMoE) and layer.last_dispatch:
                paths["moe_dispatch"] = layer.last_dispatch
        if self.last_norm_backend:
            paths["norm_backend"] = self.last_norm_backend
        return paths

    def embedding_modules(self) -> list[nn.Module]:
        """The modules that count as embedding parameters: token embedding and LM head."""
        return [self.embed, self.lm_head]
