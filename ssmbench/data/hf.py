"""Hugging Face datasets (C4 en, PG19), streamed: the first N bytes of train and validation text.

Documents are joined with a blank line. ``HFText`` takes the text in pieces (``take`` continues
where the last one stopped, keeping the rest of a document it cut), so a caller can read a
tokenizer sample and the validation text first and then decide how much training text to stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ssmbench.errors import BadInput

# name on the command line -> (dataset id, config, train split, validation split, text field)
HF_SOURCES: dict[str, tuple[str, str | None, str, str, str]] = {
    "c4": ("allenai/c4", "en", "train", "validation", "text"),
    "pg19": ("emozilla/pg19", None, "train", "validation", "text"),
}


def _unreachable(name: str, repo: str, e: Exception) -> BadInput:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return BadInput(f"--data hf:{name}: could not stream {repo} ({type(e).__name__}: {first})")


class TextStream:
    """The text field of consecutive rows as one byte stream, read in pieces."""

    def __init__(self, rows: Iterator[Any], field: str, name: str, repo: str) -> None:
        self._rows, self._field, self._name, self._repo = rows, field, name, repo
        self._rest = b""
        self.taken = 0

    def take(self, n_bytes: int) -> bytes:
        """The next ``n_bytes`` bytes (fewer when the split ends)."""
        parts, total = [self._rest], len(self._rest)
        try:
            while total < n_bytes:
                row = next(self._rows, None)
                if row is None:
                    break
                b = str(row[self._field]).encode("utf-8") + b"\n\n"
                parts.append(b)
                total += len(b)
        except Exception as e:  # network or hub errors mid-stream: "cannot use it here"
            raise _unreachable(self._name, self._repo, e) from None
        data = b"".join(parts)
        self._rest = data[n_bytes:]
        self.taken += min(n_bytes, len(data))
        return data[:n_bytes]


class HFText:
    """Streams of the training and validation splits of ``name`` (c4 or pg19)."""

    def __init__(self, name: str) -> None:
        if name not in HF_SOURCES:
            raise BadInput(f"unknown Hugging Face source hf:{name}; choose from "
                           + ", ".join(f"hf:{k}" for k in HF_SOURCES))
        try:
            import datasets
        except ImportError:
            raise BadInput(f"--data hf:{name} needs the datasets package: "
                           "pip install 'ssmbench[hf]'") from None
        repo, config, train_split, val_split, field = HF_SOURCES[name]
        self.name, self.repo, self.config, self.splits = name, repo, config, (train_split, val_split)
        try:
            rows = [iter(datasets.load_dataset(repo, config, split=s, streaming=True))
                    for s in (train_split, val_split)]
        except Exception as e:  # offline, hub errors, renamed datasets: all mean "cannot use it here"
            raise _unreachable(name, repo, e) from None
        self.train = TextStream(rows[0], field, name, repo)
        self.val = TextStream(rows[1], field, name, repo)

    def info(self) -> dict[str, Any]:
        train_split, val_split = self.splits
        return {"dataset": self.repo, "config": self.config, "splits": [train_split, val_split],
                "note": f"first {self.train.taken} bytes of {train_split}, first {self.val.taken} bytes of "
                        f"{val_split}"}


def load_hf(name: str, train_bytes: int, val_bytes: int) -> tuple[bytes, bytes, dict[str, object]]:
    """Stream ``name`` (c4 or pg19): (train, validation, info); BadInput when that cannot work."""
    hf = HFText(name)
    train, val = hf.train.take(train_bytes), hf.val.take(val_bytes)
    if not train or not val:
        raise BadInput(f"--data hf:{name}: {hf.repo} streamed no text")
    return train, val, hf.info()
