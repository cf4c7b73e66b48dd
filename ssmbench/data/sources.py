"""Raw text with a train/validation split, from any of the sources a user can name.

``load_source(spec)`` understands ``synthetic`` (the default, embedded), ``pystdlib`` (the
interpreter's standard library sources), ``enwik8``, ``hf:c4``, ``hf:pg19`` and a path to a
local file or folder. ``ssmbench.data.training_data`` builds the training streams on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ssmbench.data.synthetic import SyntheticGrammar
from ssmbench.errors import BadInput

LOCAL_VAL_FRACTION = 0.1
KNOWN = "synthetic, pystdlib, enwik8, hf:c4, hf:pg19 or a path to a text file or folder"


@dataclass(frozen=True)
class TextSource:
    """train, val: raw bytes of the two splits (disjoint). entropy_bpb: the source's exact
    entropy rate in bits per byte when known (synthetic), else None."""

    name: str
    train: bytes
    val: bytes
    entropy_bpb: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the data."""
        return {"name": self.name, "train_bytes": len(self.train), "val_bytes": len(self.val),
                "entropy_rate_bits_per_byte": self.entropy_bpb, **self.info}


@lru_cache(maxsize=4)
def grammar_for(data_seed: int) -> SyntheticGrammar:
    """The embedded source's grammar for ``data_seed`` (built once per process)."""
    return SyntheticGrammar.build(data_seed)


def synthetic_info(grammar: SyntheticGrammar, data_seed: int) -> dict[str, Any]:
    return {"grammar_seed": data_seed, "n_words": len(grammar.words),
            "entropy_bits_per_word": grammar.entropy_rate_bits_per_word,
            "mean_bytes_per_word": grammar.mean_bytes_per_word}


def synthetic_source(n_bytes: int, seed: int = 0, data_seed: int = 0) -> TextSource:
    """A finite sample of the embedded source: ``n_bytes`` of training text from stream ``seed``
    and a validation stream, both of the grammar of ``data_seed`` (the source's identity)."""
    grammar = grammar_for(data_seed)
    n_val = max(16_384, n_bytes // 16)
    return TextSource("synthetic", grammar.sample(n_bytes, seed=2 * seed + 1),
                      grammar.sample(n_val, seed=2 * data_seed + 2), grammar.entropy_rate_bits_per_byte,
                      synthetic_info(grammar, data_seed))


def local_source(path: Path, data_bytes: int | None = None) -> TextSource:
    """A file, or every file under a folder (sorted by path, hidden ones skipped), concatenated;
    the last 10% of the bytes are the validation split; the training split is then cut to
    ``data_bytes`` when given."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        data = b"".join(p.read_bytes() for p in files)
        info: dict[str, Any] = {"path": str(path), "files": len(files)}
    elif path.is_file():
        data = path.read_bytes()
        info = {"path": str(path)}
    else:
        raise BadInput(f"--data {path}: no such file or folder (use {KNOWN})")
    if len(data) < 2:
        raise BadInput(f"--data {path}: holds {len(data)} bytes of text")
    cut = len(data) - max(1, int(len(data) * LOCAL_VAL_FRACTION))
    info["note"] = "last 10% of the bytes are the validation split"
    return TextSource(path.name or str(path), _cut(data[:cut], data_bytes, info), data[cut:], None, info)


def _cut(train: bytes, data_bytes: int | None, info: dict[str, Any]) -> bytes:
    """The training split cut to ``data_bytes`` (recorded in ``info``)."""
    if data_bytes is not None:
        if data_bytes <= 0:
            raise BadInput(f"--data-bytes must be positive, got {data_bytes}")
        info["train_bytes_total"] = len(train)
        info["train_cut_to"] = data_bytes
        train = train[:data_bytes]
    return train


def load_source(spec: str, *, seed: int = 0, synthetic_bytes: int = 4_000_000,
                hf_bytes: int = 64_000_000, cache: Path | None = None, data_seed: int = 0,
                data_bytes: int | None = None) -> TextSource:
    """Raw text for ``spec``; BadInput (one line) for anything that cannot be loaded.

    synthetic: ``synthetic_bytes`` of training text from stream ``seed``, grammar of
    ``data_seed``. hf: ``hf_bytes`` streamed. enwik8, pystdlib, local paths: the training
    split cut to ``data_bytes`` when given.
    """
    if spec == "synthetic":
        if synthetic_bytes <= 0:
            raise BadInput("synthetic data size must be positive")
        return synthetic_source(synthetic_bytes, seed, data_seed)
    if spec == "enwik8":
        from ssmbench.data.enwik8 import load_enwik8

        train, val, info = load_enwik8(cache)
        return TextSource("enwik8", _cut(train, data_bytes, info), val, None, info)
    if spec == "pystdlib":
        from ssmbench.data.pystdlib import load_pystdlib

        if data_bytes is not None and data_bytes <= 0:
            raise BadInput(f"--data-bytes must be positive, got {data_bytes}")
        train, val, info = load_pystdlib(data_bytes)
        return TextSource("pystdlib", train, val, None, info)
    if spec.startswith("hf:"):
        from ssmbench.data.hf import load_hf

        train, val, info = load_hf(spec[3:], hf_bytes, max(1_000_000, hf_bytes // 32))
        return TextSource(spec, train, val, None, info)
    return local_source(Path(spec).expanduser(), data_bytes)
