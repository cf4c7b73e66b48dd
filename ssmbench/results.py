"""Results folders: the file names, writing them (manifest, metrics, summary.json) and reading
them back. Tasks write through this module; ``ssmbench.report`` renders what it reads back.

Every write is atomic (temp file in the same folder, then ``os.replace``), so a run
interrupted with Ctrl-C leaves either the previous or the new version of each file. A run holds
an OS lock on its folder (``flock`` on the folder itself) while it writes, so a second run aimed
at the same folder stops at once; the OS drops the lock when the process dies, so a killed run
blocks nobody.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ssmbench.errors import ResultsError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
METRICS = "metrics.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
# kernel-profile: every row's timing samples, and the regression gate's verdicts
SAMPLES_JSON = "samples.json"
GATE_CSV = "gate.csv"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + rename in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; results are meant to be shared like any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def default_run_dir(kind: str, root: Path = Path("results")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{kind}-{stamp}"


def writable_folder(path: Path, what: str = "--out") -> Path:
    """Create ``path`` (and parents) and prove a file can be written in it; ResultsError
    (one line) when it exists as a file, or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ResultsError(f"{what} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ResultsError(f"{what} {path} cannot be written: {e.strerror or e}") from None
    return path


def _lock(path: Path) -> int:
    """Open the folder itself and ``flock`` it without waiting -> the descriptor; ResultsError
    when another process holds it. (No lock file: nothing is left behind, and the OS drops the
    lock of a process that dies.)"""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise ResultsError(f"cannot lock {path}: {e.strerror or e}") from None
        raise ResultsError(
            f"{path} is being written by another ssmbench run; wait for it to finish or choose another --out"
        ) from None
    return fd


@dataclass
class RunFolder:
    """A results folder being written. ``kind`` names the command that made it.

    ``create`` takes the folder's lock; it is held until ``close()`` (or the end of a ``with``
    block), or until the object is garbage collected or the process ends.
    """

    path: Path
    kind: str
    _release: weakref.finalize | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(cls, kind: str, out: Path | None = None) -> RunFolder:
        path = writable_folder(Path(out) if out is not None else default_run_dir(kind))
        folder = cls(path=path, kind=kind)
        folder._release = weakref.finalize(folder, os.close, _lock(path))
        return folder

    def close(self) -> None:
        """Release the folder's lock (idempotent)."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_manifest(
        self,
        *,
        config: Mapping[str, Any],
        seed: int | None,
        environment: Mapping[str, Any],
        ceilings: Mapping[str, Any] | None = None,
        command_line: list[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command_line": command_line if command_line is not None else list(sys.argv),
            "config": dict(config),
            "seed": seed,
            "environment": dict(environment),
            "ceilings": dict(ceilings) if ceilings is not None else None,
        }
        if extra:
            manifest.update(extra)
        atomic_write_json(self.path / MANIFEST, manifest)
        return manifest

    def update_manifest(self, **fields: Any) -> None:
        manifest = json.loads((self.path / MANIFEST).read_text())
        manifest.update(fields)
        atomic_write_json(self.path / MANIFEST, manifest)

    def write_metrics(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Path:
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        atomic_write_text(self.path / METRICS, df.to_csv(index=False))
        return self.path / METRICS

    def write_summary(self, summary: Any) -> Path:
        atomic_write_json(self.path / SUMMARY_JSON, summary)
        return self.path / SUMMARY_JSON


@dataclass(frozen=True)
class LoadedRun:
    """A results folder read back from disk."""

    path: Path
    manifest: dict[str, Any]
    metrics: pd.DataFrame
    summary: Any

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))


def load_run(path: Path) -> LoadedRun:
    """Read a results folder; raise ResultsError with one clear line when it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"no results folder at {path}")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ResultsError(f"{path} has no {MANIFEST}: not a results folder")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"{mpath} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(manifest, dict) or "schema_version" not in manifest:
        raise ResultsError(f"{mpath} has no schema_version")
    if manifest["schema_version"] != SCHEMA_VERSION:
        raise ResultsError(
            f"{mpath} has schema version {manifest['schema_version']}, "
            f"this ssmbench reads {SCHEMA_VERSION}"
        )
    metrics_path = path / METRICS
    try:
        metrics = pd.read_csv(metrics_path) if metrics_path.is_file() else pd.DataFrame()
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ResultsError(f"{metrics_path} cannot be read: {e}") from None
    summary = None
    spath = path / SUMMARY_JSON
    if spath.is_file():
        try:
            summary = json.loads(spath.read_text())
        except json.JSONDecodeError as e:
            raise ResultsError(f"{spath} is not valid JSON ({e.msg})") from None
    return LoadedRun(path=path, manifest=manifest, metrics=metrics, summary=summary)
