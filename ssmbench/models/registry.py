"""Build any model from its config; look up the named model sets (the zoo's and the byte-level ones)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ssmbench.errors import BadInput
from ssmbench.models.byte_sets import BYTE_MODEL_SETS
from ssmbench.models.config import LMConfig, MegaByteConfig, ModelConfig, ModelSet
from ssmbench.models.lm import LM
from ssmbench.models.megabyte import MegaByte
from ssmbench.models.official import OfficialMambaConfig, OfficialMambaLM
from ssmbench.models.zoo_sets import ZOO_MODEL_SETS


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Make torch.nn.init's in-place initialisers no-ops: on meta tensors they compute nothing
    anyway, but their Python decompositions import torch._dynamo (seconds) on first use."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


def build_model(
    cfg: ModelConfig | OfficialMambaConfig, device: torch.device | str | None = None
) -> LM | MegaByte | OfficialMambaLM:
    """LMConfig -> LM; MegaByteConfig -> MegaByte; OfficialMambaConfig -> OfficialMambaLM
    (BackendUnavailable without mamba_ssm). device "meta": shapes only, no memory, no init (for
    counting parameters and FLOPs of the largest sets in milliseconds)."""
    classes = ((LMConfig, LM), (MegaByteConfig, MegaByte), (OfficialMambaConfig, OfficialMambaLM))
    model_cls = next((cls for kind, cls in classes if isinstance(cfg, kind)), None)
    if model_cls is None:
        raise TypeError(f"no model for config type {type(cfg).__name__}")
    if device is None:
        return model_cls(cfg)
    on_meta = torch.device(device).type == "meta"
    with torch.device(device), _skip_init() if on_meta else contextlib.nullcontext():
        return model_cls(cfg)


def all_model_sets() -> dict[str, ModelSet]:
    """Every named model set: the five-way zoo's and the byte-level ones."""
    return {**ZOO_MODEL_SETS, **BYTE_MODEL_SETS}


def get_model_set(name: str) -> ModelSet:
    sets = all_model_sets()
    if name not in sets:
        raise BadInput(f"unknown preset {name!r}; choose from {', '.join(sets)}")
    return sets[name]
