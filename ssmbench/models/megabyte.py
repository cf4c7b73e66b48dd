"""MEGABYTE (Yu et al., arXiv 2305.07185): a global Transformer over patches, a local one per byte.

Bytes are embedded (width d_global / P) and P of them concatenated into one patch vector of width
d_global. The global model's input is offset by one learned padding patch, so its output k has
seen patches < k. That output, reshaped per byte position (P, d_global / P) and projected to
d_local, is added to the local byte embeddings, whose inputs are offset by one byte inside the
patch (a learned pad byte first). The local model runs causally within each patch.

Natively, output n predicts byte n from bytes < n. To keep the contract of every other model
(logits[t] predicts idx[t + 1] from idx[<= t]), ``forward`` runs the native model over T + 1
positions (internally padded to a multiple of P) and returns outputs 1..T. Byte value 0 is an
ordinary byte: nothing is ignored in the loss.

Decoding: the global model steps once per completed patch with its own KV cache; the local model
steps once per byte with a KV cache that restarts at every patch boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmbench.layers.norm import build_norm
from ssmbench.models.cache import InferenceCache
from ssmbench.models.config import LMConfig, MegaByteConfig
from ssmbench.models.lm import Residual
from ssmbench.models.output import LMOutput


class TransformerStack(nn.Module):
    """Pre-norm ("attn", "ff") blocks of the zoo's LM (rotary attention, ReLU MLP) and a final
    norm, on embeddings: x (B, T, d_model) -> (B, T, d_model)."""

    def __init__(
        self, d_model: int, n_layers: int, n_heads: int, ff_mult: int, rope_base: float, norm_eps: float
    ) -> None:
        super().__init__()
        self.cfg = LMConfig(
            vocab_size=1, d_model=d_model, pattern=("attn", "ff") * n_layers, n_heads=n_heads,
            d_ff=ff_mult * d_model, rope_base=rope_base, norm_eps=norm_eps,
        )  # fmt: skip
        self.blocks = nn.ModuleList(Residual(kind, self.cfg) for kind in self.cfg.pattern)
        self.norm_f = build_norm(d_model, norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        y = None
        for block in self.blocks:
            x, y, _ = block(x, y)
        return self.norm_f(x if y is None else x + y)

    def allocate_inference_cache(
        self, batch_size: int, max_seqlen: int, dtype: torch.dtype, device: torch.device
    ) -> InferenceCache:
        states = [
            b.layer.allocate_inference_cache(batch_size, max_seqlen, dtype=dtype, device=device)
            if b.kind == "attn"
            else None
            for b in self.blocks
        ]
        return InferenceCache(batch_size=batch_size, max_seqlen=max_seqlen, layer_states=states)

    def prefill(self, x: Tensor, cache: InferenceCache) -> Tensor:
        """x (B, T, D) at positions cache.seqlen_offset.. -> (B, T, D); cache advanced by T."""
        cache.check_room(x.shape[1])
        for block, state in zip(self.blocks, cache.layer_states, strict=True):
            x = block.prefill(x, state, cache.seqlen_offset)
        cache.advance(x.shape[1])
        return self.norm_f(x)

    def step(self, x: Tensor, cache: InferenceCache) -> Tensor:
        """x (B, D), one position -> (B, D); cache advanced by 1."""
        cache.check_room(1)
        pos = cache.current_position()
        for block, state in zip(self.blocks, cache.layer_states, strict=True):
            x = block.step(x, state, pos)
        cache.advance(1)
        return self.norm_f(x)

    def flops_per_token(self, seq_len: int) -> int:
        return sum(b.layer.flops_per_token(seq_len) for b in self.blocks)


@dataclass
class MegaByteCache:
    """Decoding state of a MegaByte model.

    global_cache: the global model's KV cache, one position per patch (the pad patch first).
    local_cache: the local model's KV cache for the current patch (patch_size positions).
    patch_bytes: (B, P) long, the bytes of the current patch consumed so far.
    local_context: (B, P, d_local), the global output for the current patch, projected per position.
    seqlen_offset: bytes consumed (host int; the global/local caches keep their own positions).
    """

    global_cache: InferenceCache
    local_cache: InferenceCache
    patch_bytes: Tensor
    local_context: Tensor
    max_seqlen: int
    seqlen_offset: int = 0

    @property
    def batch_size(self) -> int:
        return self.patch_bytes.shape[0]

    def check_room(self, n: int) -> None:
        if self.seqlen_offset + n > self.max_seqlen:
            raise ValueError(
                f"inference cache of {self.max_seqlen} bytes has {self.max_seqlen - self.seqlen_offset}"
                f" left, asked for {n}"
            )

    def use_static_positions(self, device: torch.device | str) -> None:
        """Keep the global and local positions in device tensors (CUDA-graph capturable steps)."""
        self.global_cache.use_static_positions(device)
        self.local_cache.use_static_positions(device)

    def reset(self) -> None:
        self.global_cache.reset()
        self.local_cache.reset()
        self.patch_bytes.zero_()
        self.local_context.zero_()
        self.seqlen_offset = 0


class MegaByte(nn.Module):
    """idx (B, T) bytes -> LMOutput(logits (B, T, 256), loss, aux_loss=0)."""

    def __init__(self, cfg: MegaByteConfig) -> None:
        super().__init__()
        self.cfg = cfg
        P, d_g, d_l = cfg.patch_size, cfg.d_global, cfg.d_local
        self.d_byte = d_g // P  # width of one byte's slice of the patch vector
        self.global_embed = nn.Embedding(cfg.vocab_size, self.d_byte)
        self.global_pad = nn.Parameter(torch.empty(d_g))
        self.global_model = TransformerStack(
            d_g, cfg.n_global_layers, cfg.n_global_heads, cfg.ff_mult, cfg.rope_base, cfg.norm_eps
        )
        self.to_local = nn.Linear(self.d_byte, d_l, bias=False)
        self.local_embed = nn.Embedding(cfg.vocab_size, d_l)
        self.local_pad = nn.Parameter(torch.empty(d_l))
        self.local_model = TransformerStack(
            d_l, cfg.n_local_layers, cfg.n_local_heads, cfg.ff_mult, cfg.rope_base, cfg.norm_eps
        )
        self.lm_head = nn.Linear(d_l, cfg.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Weights and pads N(0, 0.02); residual output projections N(0, 0.02 / sqrt(#sub-layers))
        of their own stack; norms ones/zeros."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
        nn.init.normal_(self.global_pad, std=0.02)
        nn.init.normal_(self.local_pad, std=0.02)
        for stack in (self.global_model, self.local_model):
            std = 0.02 / math.sqrt(max(1, len(stack.blocks)))
            for p in stack.parameters():
                if getattr(p, "_residual_out", False):
                    nn.init.normal_(p, std=std)

    # -- the parallel (training / prefill) path ------------------------------------------------

    def _native(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """idx (B, T) -> native byte sequence x (B, K * P) (idx then zero padding, K = T // P + 1),
        global inputs (B, K, d_global) and local inputs without global context (B, K, P, d_local)."""
        B, T = idx.shape
        P = self.cfg.patch_size
        K = T // P + 1  # patches covering native positions 0..T
        x = F.pad(idx, (0, K * P - T))  # (B, K * P); the padding is never an input to an output kept
        patches = self.global_embed(x).reshape(B, K, P * self.d_byte)  # (B, K, d_global)
        g_in = torch.cat([self.global_pad.expand(B, 1, -1).to(patches.dtype), patches[:, :-1]], dim=1)
        l_emb = self.local_embed(x).reshape(B, K, P, -1)  # (B, K, P, d_local)
        pad = self.local_pad.expand(B, K, 1, -1).to(l_emb.dtype)
        l_in = torch.cat([pad, l_emb[:, :, :-1]], dim=2)  # (B, K, P, d_local), offset by one byte
        return x, g_in, l_in

    def _to_local(self, g_out: Tensor) -> Tensor:
        """g_out (B, K, d_global) -> (B, K, P, d_local): reshape per byte position, project."""
        B, K, _ = g_out.shape
        return self.to_local(g_out.reshape(B, K, self.cfg.patch_size, self.d_byte))

    def _local_logits(self, l_in: Tensor, T: int) -> Tensor:
        """l_in (B, K, P, d_local) with global context -> logits (B, T, V) for native positions 1..T."""
        B, K, P, D = l_in.shape
        h = self.local_model(l_in.reshape(B * K, P, D)).reshape(B, K * P, D)
        return self.lm_head(h[:, 1 : T + 1])

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> LMOutput:
        _, g_in, l_in = self._native(idx)
        l_in = l_in + self._to_local(self.global_model(g_in))
        logits = self._local_logits(l_in, idx.shape[1])  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return LMOutput(logits, loss, logits.new_zeros((), dtype=torch.float32), [])

    # -- decoding ------------------------------------------------------------------------------

    def allocate_inference_cache(
        self, batch_size: int, max_seqlen: int, dtype: torch.dtype | None = None
    ) -> MegaByteCache:
        """Caches for up to ``max_seqlen`` bytes: max_seqlen // P + 1 global positions, P local."""
        w = self.lm_head.weight
        dtype = dtype or w.dtype
        P = self.cfg.patch_size
        return MegaByteCache(
            global_cache=self.global_model.allocate_inference_cache(
                batch_size, max_seqlen // P + 1, dtype, w.device
            ),
            local_cache=self.local_model.allocate_inference_cache(batch_size, P, dtype, w.device),
            patch_bytes=torch.zeros(batch_size, P, dtype=torch.long, device=w.device),
            local_context=torch.zeros(batch_size, P, self.cfg.d_local, dtype=dtype, device=w.device),
            max_seqlen=max_seqlen,
        )

    def prefill(self, idx: Tensor, cache: MegaByteCache) -> Tensor:
        """idx (B, T) from an empty cache -> logits (B, T, V); cache advanced by T."""
        if cache.seqlen_offset != 0:
            raise ValueError("MegaByte prefill starts from an empty cache (reset it first)")
        B, T = idx.shape
        cache.check_room(T)
        P = self.cfg.patch_size
        x, g_in, l_in = self._native(idx)
        g_loc = self._to_local(self.global_model.prefill(g_in, cache.global_cache))  # (B, K, P, d_l)
        l_in = l_in + g_loc
        logits = self._local_logits(l_in, T)
        K, j = T // P + 1, T % P  # the current patch is K - 1; the next output is at position j
        self.local_model.prefill(l_in[:, K - 1, : j + 1], cache.local_cache)
        cache.local_context.copy_(g_loc[:, K - 1])
        cache.patch_bytes[:, :j] = x[:, (K - 1) * P : (K - 1) * P + j]
        cache.seqlen_offset = T
        return logits

    def step(self, idx_t: Tensor, cache: MegaByteCache) -> Tensor:
        """idx_t (B,) the byte at position t = cache.seqlen_offset -> logits (B, V) for byte t + 1.

        When byte t completes a patch, the global model steps once on that patch first and the
        local cache restarts. Branches depend only on the host offset; positions inside the
        caches may be device tensors, so one step per in-patch offset can be graph-captured."""
        cache.check_room(1)
        t = cache.seqlen_offset
        P = self.cfg.patch_size
        j = (t + 1) % P  # in-patch position of the byte being predicted
        cache.patch_bytes[:, t % P] = idx_t
        if j == 0:
            patch = self.global_embed(cache.patch_bytes).reshape(idx_t.shape[0], -1)  # (B, d_global)
            cache.global_cache.seqlen_offset = (t + 1) // P
            g = self.global_model.step(patch, cache.global_cache)  # (B, d_global)
            cache.local_context.copy_(self._to_local(g[:, None])[:, 0])
            x = self.local_pad.to(cache.local_context.dtype) + cache.local_context[:, 0]  # (B, d_l)
        else:
            x = self.local_embed(idx_t) + cache.local_context[:, j]  # (B, d_local)
        local = cache.local_cache
        local.seqlen_offset = j
        if local.position is not None:
            local.position.fill_(j)
        h = self.local_model.step(x, local)  # (B, d_local)
        cache.seqlen_offset = t + 1
        return self.lm_head(h)

    # -- accounting ----------------------------------------------------------------------------

    def embedding_modules(self) -> list[nn.Module]:
        """Byte embeddings (global and local) and the LM head: the 'embedding' parameters."""
        return [self.global_embed, self.local_embed, self.lm_head]

    def global_parameters(self) -> list[nn.Parameter]:
        """Parameters used once per patch rather than once per byte during decoding."""
        return [*self.global_model.parameters(), self.global_pad]

    def kernel_paths(self) -> dict[str, str]:
        return {"attention": "sdpa"}

