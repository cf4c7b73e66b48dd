"""Build any model from its config; look up model sets by name across all preset modules."""

from __future__ import annotations

from torch import nn

from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig, MegaByteConfig, ModelConfig, ModelSet
from ssmbench.models.official import OfficialMambaConfig, OfficialMambaLM


def build_model(cfg: ModelConfig | OfficialMambaConfig) -> nn.Module:
    """LMConfig -> ssmbench.models.lm.LM; MegaByteConfig -> ssmbench.models.megabyte.MegaByte;
    OfficialMambaConfig -> ssmbench.models.official.OfficialMambaLM (BackendUnavailable without
    mamba_ssm)."""
    if isinstance(cfg, LMConfig):
        from ssmbench.models.lm import LM

        return LM(cfg)
    if isinstance(cfg, MegaByteConfig):
        from ssmbench.models.megabyte import MegaByte

        return MegaByte(cfg)
    if isinstance(cfg, OfficialMambaConfig):
        return OfficialMambaLM(cfg)
    raise TypeError(f"no model for config type {type(cfg).__name__}")


def all_model_sets() -> dict[str, ModelSet]:
    """Every named model set: the five-way zoo presets and the byte-level presets."""
    from ssmbench.models.byte_presets import BYTE_PRESETS
    from ssmbench.models.presets import ZOO_PRESETS

    return {**ZOO_PRESETS, **BYTE_PRESETS}


def get_model_set(name: str) -> ModelSet:
    sets = all_model_sets()
    if name not in sets:
        raise BadInput(f"unknown preset {name!r}; choose from {', '.join(sets)}")
    return sets[name]
