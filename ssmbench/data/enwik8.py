"""enwik8 (the first 10^8 bytes of an English Wikipedia dump), cached and checksum-verified.

The standard split: the first 90M bytes train, the next 5M validation, the last 5M test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ssmbench.errors import BadInput

URL = "http://mattmahoney.net/dc/enwik8.zip"
# of the extracted file (Matt Mahoney's published checksums)
MD5 = "a1fa5ffddb56f4953e226637dabbb36a"
SIZE = 100_000_000
SPLIT = (90_000_000, 5_000_000, 5_000_000)
MEMBER = "enwik8"


def cache_dir() -> Path:
    """$SSMBENCH_CACHE, else ~/.cache/ssmbench."""
    env = os.environ.get("SSMBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ssmbench"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".enwik8.", suffix=".zip", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:
            shutil.copyfileobj(r, f)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, ValueError) as e:
        Path(tmp).unlink(missing_ok=True)
        raise BadInput(
            f"could not download enwik8 from {url} ({e}); put enwik8.zip or enwik8 into {target.parent}"
        ) from None


def _extract(zip_path: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as z, z.open(MEMBER) as src:
            fd, tmp = tempfile.mkstemp(prefix=".enwik8.", dir=target.parent)
            with os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except (zipfile.BadZipFile, KeyError) as e:
        zip_path.unlink(missing_ok=True)
        raise BadInput(f"{zip_path} is not the enwik8 zip ({e}); deleted it, run again to download") from None


def enwik8_path(root: Path | None = None) -> Path:
    """The verified extracted file, downloading and extracting it on first use."""
    root = Path(root) if root is not None else cache_dir()
    target = root / MEMBER
    if not target.is_file():
        zip_path = root / "enwik8.zip"
        if not zip_path.is_file():
            _download(URL, zip_path)
        _extract(zip_path, target)
    digest = _md5(target)
    if digest != MD5 or target.stat().st_size != SIZE:
        target.unlink()
        (root / "enwik8.zip").unlink(missing_ok=True)
        raise BadInput(f"enwik8 checksum mismatch (md5 {digest}, expected {MD5}); deleted the cached copy")
    return target


def load_enwik8(root: Path | None = None) -> tuple[bytes, bytes, dict[str, object]]:
    """(train, validation, info) of the standard split."""
    path = enwik8_path(root)
    data = path.read_bytes()
    n_train, n_val, _ = SPLIT
    info = {"path": str(path), "md5": MD5, "url": URL, "split": list(SPLIT),
            "note": "standard 90M/5M/5M split; validation used for evaluation, test held out"}
    return data[:n_train], data[n_train : n_train + n_val], info
