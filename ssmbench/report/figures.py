"""Saving matplotlib figures into a results folder (PNG, atomic, figure closed after)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ssmbench.results import atomic_write_bytes


def save_png(fig: Any, folder: Path, name: str, dpi: int = 130) -> Path:
    """Write ``fig`` as ``folder/name.png`` atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    target = Path(folder) / f"{name}.png"
    atomic_write_bytes(target, buf.getvalue())
    return target
