"""Byte-level model sets (MambaByte, MegaByte, byte Transformer). Filled in by the byte-level work."""

from __future__ import annotations

from ssmbench.models.config import ModelSet

BYTE_PRESETS: dict[str, ModelSet] = {}
