"""Hugging Face datasets (C4 en, PG19), streamed: the first N bytes of train and validation text."""

from __future__ import annotations

from typing import Any

from ssmbench.errors import BadInput

# name on the command line -> (dataset id, config, train split, validation split, text field)
HF_SOURCES: dict[str, tuple[str, str | None, str, str, str]] = {
    "c4": ("allenai/c4", "en", "train", "validation", "text"),
    "pg19": ("emozilla/pg19", None, "train", "validation", "text"),
}


def _take(stream: Any, field: str, n_bytes: int) -> bytes:
    parts, total = [], 0
    for row in stream:
        b = str(row[field]).encode("utf-8") + b"\n\n"
        parts.append(b)
        total += len(b)
        if total >= n_bytes:
            break
    return b"".join(parts)[:n_bytes]


def load_hf(name: str, train_bytes: int, val_bytes: int) -> tuple[bytes, bytes, dict[str, object]]:
    """Stream ``name`` (c4 or pg19): (train, validation, info); BadInput when that cannot work."""
    if name not in HF_SOURCES:
        raise BadInput(f"unknown Hugging Face source hf:{name}; choose from "
                       + ", ".join(f"hf:{k}" for k in HF_SOURCES))
    try:
        import datasets
    except ImportError:
        raise BadInput(f"--data hf:{name} needs the datasets package: pip install 'ssmbench[hf]'") from None
    repo, config, train_split, val_split, field = HF_SOURCES[name]
    try:
        train = _take(datasets.load_dataset(repo, config, split=train_split, streaming=True), field,
                      train_bytes)
        val = _take(datasets.load_dataset(repo, config, split=val_split, streaming=True), field, val_bytes)
    except Exception as e:  # offline, hub errors, renamed datasets: all mean "cannot use it here"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise BadInput(f"--data hf:{name}: could not stream {repo} ({type(e).__name__}: {first})") from None
    if not train or not val:
        raise BadInput(f"--data hf:{name}: {repo} streamed no text")
    info = {"dataset": repo, "config": config, "splits": [train_split, val_split],
            "note": f"first {train_bytes} bytes of {train_split}, first {val_bytes} bytes of {val_split}"}
    return train, val, info
