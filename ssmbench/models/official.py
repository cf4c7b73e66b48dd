"""mamba_ssm's own Mamba LM (``MambaLMHeadModel``) as a reference row beside ssmbench's Mamba.

A model set's pure-Mamba model ``NAME`` (``mamba``, ``mambabyte``) has a reference twin
``NAME@mamba_ssm`` (shown as "NAME (mamba_ssm)"): mamba_ssm's model at the same size (d_model,
layers, vocabulary, d_state, expand, d_conv, dt_rank), with LayerNorm as ours (rms_norm=False),
its fused add + LayerNorm (fused_add_norm=True) and fp32 residual (residual_in_fp32=True), an
untied LM head as ours, and its own vocabulary padding (to a multiple of 8). Its training path is
mamba_ssm's fast path (``mamba_inner_fn`` with causal-conv1d) when causal-conv1d is installed.

``OfficialMambaLM`` wraps it behind ssmbench's interface: forward(idx, targets) -> LMOutput with
the loss of ``ssmbench.models.loss.lm_loss`` (the same cross-entropy as ours, over the real
vocabulary), and ``generate_official``, its own ``generate(cg=True)`` decoding (CUDA graphs), for
gen-speed. mamba_ssm is optional: without it (or without CUDA) asking for the model raises
``BackendUnavailable`` with the reason, and the tasks report the row as unavailable.

Parameter counts come from the built model (on the meta device) when mamba_ssm is importable,
else from ssmbench's LM of the same shape (``equivalent_lm``: the same parameters, layer for
layer); padding rows are not counted either way.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from ssmbench.errors import BackendUnavailable, BadInput
from ssmbench.models.config import LMConfig, ModelSet
from ssmbench.models.loss import lm_loss
from ssmbench.models.output import LMOutput

SUFFIX = "@mamba_ssm"


@dataclass(frozen=True)
class OfficialMambaConfig:
    """mamba_ssm's MambaLMHeadModel: n_layer Mamba blocks of width d_model (see the module doc).

    dt_rank None is mamba_ssm's "auto" (ceil(d_model / 16)), as ours. max_seq_len: the longest
    context it is run at (mamba_ssm has no limit; kept so tasks treat it like our configs)."""

    vocab_size: int
    d_model: int
    n_layer: int
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None
    norm_eps: float = 1e-5
    pad_vocab_size_multiple: int = 8
    max_seq_len: int = 8192

    @classmethod
    def like(cls, cfg: LMConfig) -> OfficialMambaConfig:
        """The official model of the same size as ``cfg``, a pure-Mamba LMConfig."""
        if set(cfg.pattern) != {"mamba"}:
            raise BadInput(f"a mamba_ssm reference exists only for pure-Mamba models, not {cfg.pattern}")
        return cls(
            vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layer=len(cfg.pattern), d_state=cfg.d_state,
            d_conv=cfg.d_conv, expand=cfg.expand, dt_rank=cfg.dt_rank, norm_eps=cfg.norm_eps,
            max_seq_len=cfg.max_seq_len,
        )  # fmt: skip

    def equivalent_lm(self) -> LMConfig:
        """ssmbench's LM with the same parameters (for counts and FLOPs without mamba_ssm)."""
        return LMConfig(
            vocab_size=self.vocab_size, d_model=self.d_model, pattern=("mamba",) * self.n_layer,
            d_state=self.d_state, d_conv=self.d_conv, expand=self.expand, dt_rank=self.dt_rank,
            norm_eps=self.norm_eps, max_seq_len=self.max_seq_len,
        )  # fmt: skip

    def mamba_config(self) -> dict[str, Any]:
        """Keyword arguments of mamba_ssm's MambaConfig."""
        ssm_cfg = {"layer": "Mamba1", "d_state": self.d_state, "d_conv": self.d_conv, "expand": self.expand,
                   "dt_rank": "auto" if self.dt_rank is None else self.dt_rank}  # fmt: skip
        return {
            "d_model": self.d_model, "n_layer": self.n_layer, "d_intermediate": 0,
            "vocab_size": self.vocab_size, "ssm_cfg": ssm_cfg, "rms_norm": False,
            "residual_in_fp32": True, "fused_add_norm": True,
            "pad_vocab_size_multiple": self.pad_vocab_size_multiple, "tie_embeddings": False,
        }  # fmt: skip


def is_official(name: str) -> bool:
    return name.endswith(SUFFIX)


def display_name(name: str) -> str:
    """``mamba@mamba_ssm`` -> ``mamba (mamba_ssm)``; other names unchanged."""
    return f"{name.removesuffix(SUFFIX)} (mamba_ssm)" if is_official(name) else name


def reference_names(model_set: ModelSet) -> list[str]:
    """The reference twins this set offers: ``NAME@mamba_ssm`` for each pure-Mamba model."""
    return [
        n + SUFFIX for n, c in model_set.models if isinstance(c, LMConfig) and set(c.pattern) == {"mamba"}
    ]


def with_references(model_set: ModelSet, names: list[str] | tuple[str, ...]) -> ModelSet:
    """``model_set`` plus the reference twins among ``names``; BadInput for a twin the set has not."""
    wanted = [n for n in names if is_official(n) and n not in model_set.names()]
    if not wanted:
        return model_set
    offered = reference_names(model_set)
    bad = [n for n in wanted if n not in offered]
    if bad:
        raise BadInput(
            f"no mamba_ssm reference {bad[0]!r} in {model_set.name}; "
            f"choose from {', '.join(offered) or 'none (the set has no pure-Mamba model)'}"
        )
    extra = tuple((n, OfficialMambaConfig.like(model_set.get(n.removesuffix(SUFFIX)))) for n in wanted)
    return replace(model_set, models=model_set.models + extra)


def _mamba_ssm() -> tuple[Any, Any]:
    """(MambaConfig, MambaLMHeadModel), or BackendUnavailable saying why not."""
    try:
        config = importlib.import_module("mamba_ssm.models.config_mamba")
        models = importlib.import_module("mamba_ssm.models.mixer_seq_simple")
    except ImportError as e:
        raise BackendUnavailable(
            f"mamba_ssm is not importable ({e}); install it with causal-conv1d "
            "(pip install 'ssmbench[mamba]', or benchmarks/build_mamba_ssm.sh)"
        ) from e
    return config.MambaConfig, models.MambaLMHeadModel


def official_available() -> str | None:
    """None when mamba_ssm imports, else why not."""
    try:
        _mamba_ssm()
    except BackendUnavailable as e:
        return str(e)
    return None


class OfficialMambaLM(nn.Module):
    """idx (B, T) -> LMOutput(logits (B, T, vocab), loss, aux_loss 0, []), by mamba_ssm's model."""

    # mamba_ssm's kernels run on CUDA only
    DEVICE_TYPES = ("cuda",)

    def __init__(self, cfg: OfficialMambaConfig) -> None:
        super().__init__()
        MambaConfig, MambaLMHeadModel = _mamba_ssm()
        self.cfg = cfg
        self.model = MambaLMHeadModel(MambaConfig(**cfg.mamba_config()))
        # MambaConfig has no norm epsilon (its default is 1e-5); the norms read it from the module
        for m in self.model.modules():
            if isinstance(m, nn.LayerNorm):
                m.eps = cfg.norm_eps

    def _check_device(self, t: Tensor) -> None:
        if t.device.type not in self.DEVICE_TYPES:
            raise BackendUnavailable(f"mamba_ssm's MambaLMHeadModel needs CUDA (got {t.device.type} tensors)")

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> LMOutput:
        self._check_device(idx)
        logits = self.model(idx).logits  # (B, T, V_pad)
        V = self.cfg.vocab_size
        loss = lm_loss(logits, targets, V) if targets is not None else None
        return LMOutput(logits[..., :V], loss, logits.new_zeros((), dtype=torch.float32), [])

    @torch.no_grad()
    def prefill_official(self, prompt: Tensor, max_length: int) -> Tensor:
        """The prefill of mamba_ssm's decoding: prompt (B, T) into fresh InferenceParams sized for
        ``max_length`` positions -> the last position's logits (B, vocab)."""
        self._check_device(prompt)
        generation = importlib.import_module("mamba_ssm.utils.generation")
        params = generation.InferenceParams(max_seqlen=max_length, max_batch_size=prompt.shape[0])
        logits = self.model(prompt, inference_params=params, num_last_tokens=1).logits  # (B, 1, V_pad)
        return logits[:, -1, : self.cfg.vocab_size]

    @torch.no_grad()
    def generate_official(self, prompt: Tensor, gen_len: int, *, top_k: int = 1, temperature: float = 1.0,
                          cuda_graph: bool = True) -> Tensor:  # fmt: skip
        """mamba_ssm's own decoding: prompt (B, T) -> the sequences (B, T + gen_len), sampled from
        the real vocabulary (top_k 1: greedy); cuda_graph: its ``cg=True`` path (CUDA graphs)."""
        self._check_device(prompt)
        out = self.model.generate(
            prompt, max_length=prompt.shape[1] + gen_len, top_k=top_k, temperature=temperature,
            cg=cuda_graph, vocab_size=self.cfg.vocab_size,
        )  # fmt: skip
        return out if isinstance(out, Tensor) else out.sequences

    def embedding_modules(self) -> list[nn.Module]:
        return [self.model.backbone.embedding, self.model.lm_head]

    def padding_params(self) -> int:
        """Padding rows of the (untied) embedding and LM head."""
        pad = self.model.lm_head.weight.shape[0] - self.cfg.vocab_size
        return 2 * pad * self.cfg.d_model

    def kernel_paths(self) -> dict[str, str]:
        fast = importlib.util.find_spec("causal_conv1d") is not None
        return {"implementation": "mamba_ssm", "mamba_ssm_path": "fast (causal-conv1d)" if fast else "slow"}
