"""``--data pystdlib``: the .py sources of the running interpreter's standard library.

A real corpus every machine has, offline (like the Code split of the MambaByte paper). Files
are the *.py under sysconfig's stdlib path, less site-packages, dist-packages and __pycache__,
in sorted order of their relative paths. About 5% of the FILES (those whose relative path hashes
below VAL_PER_MILLE / 1000) are the validation split, so validation is whole files, never a cut
in the middle of one. The corpus differs between Python versions: the version, the file counts
and sizes and the sha256 of both splits go into the manifest.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import sysconfig
from pathlib import Path
from typing import Any

from ssmbench.errors import BadInput

EXCLUDED_PARTS = frozenset({"site-packages", "dist-packages", "__pycache__"})
VAL_PER_MILLE = 50


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[str]:
    """Sorted relative (POSIX) paths of the corpus files under ``root``."""
    out = []
    for folder, dirs, names in os.walk(root):
        # prune installed packages here: site-packages alone can hold far more than the stdlib
        dirs[:] = [d for d in dirs if d not in EXCLUDED_PARTS]
        rel = Path(folder).relative_to(root)
        out.extend((rel / n).as_posix() for n in names if n.endswith(".py") and (Path(folder) / n).is_file())
    return sorted(out)


def is_validation(rel_path: str) -> bool:
    """The file's split, from a hash of its relative path: the same on every machine."""
    h = int.from_bytes(hashlib.sha256(rel_path.encode("utf-8")).digest()[:4], "big")
    return h % 1000 < VAL_PER_MILLE


def load_pystdlib(data_bytes: int | None = None,
                  root: Path | None = None) -> tuple[bytes, bytes, dict[str, Any]]:
    """(train, validation, info). Training files are concatenated in path order and cut to
    ``data_bytes`` when given (only the files needed are read); validation is every held-out file."""
    root = Path(root) if root is not None else stdlib_root()
    files = stdlib_files(root) if root.is_dir() else []
    if not files:
        raise BadInput(f"--data pystdlib: no .py files under {root}")
    val_files = [f for f in files if is_validation(f)]
    train_files = [f for f in files if not is_validation(f)]
    train_total = sum((root / f).stat().st_size for f in train_files)
    parts, size, used = [], 0, 0
    for f in train_files:
        if data_bytes is not None and size >= data_bytes:
            break
        b = (root / f).read_bytes()
        parts.append(b)
        size += len(b)
        used += 1
    train = b"".join(parts)
    if data_bytes is not None:
        train = train[:data_bytes]
    val = b"".join((root / f).read_bytes() for f in val_files)
    if not train or not val:
        raise BadInput(f"--data pystdlib: {root} gave an empty split")
    info = {
        "path": str(root), "python": platform.python_version(), "implementation": sys.implementation.name,
        "files": len(files), "train_files": len(train_files), "train_files_used": used,
        "val_files": len(val_files), "train_bytes_total": train_total,
        "train_sha256": hashlib.sha256(train).hexdigest(), "val_sha256": hashlib.sha256(val).hexdigest(),
        "note": f"*.py of the standard library (no site-packages/dist-packages/__pycache__), sorted paths; "
                f"validation: files whose path hash falls in {VAL_PER_MILLE}/1000; training cut to "
                + (f"{data_bytes} bytes" if data_bytes is not None else "nothing (whole split)"),
    }  # fmt: skip
    return train, val, info
