"""Versioned JSON baselines of kernel timings for the regression gate.

A baseline holds the device (name and kind), library versions, the ceilings measured in
the same run, the timing settings, and per row its identity, status, backend, relative
error and ALL timing samples (the gate tests on samples, not on medians).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ssmbench.device import DTYPES
from ssmbench.errors import ResultsError
from ssmbench.profile.presets import IMPLS, MODES
from ssmbench.profile.spec import RowSpec, TimingConfig
from ssmbench.profile.sweep import RowResult
from ssmbench.results import atomic_write_text, to_json

BASELINE_FORMAT = "ssmbench-kernel-baseline"
BASELINE_SCHEMA_VERSION = 1
_ROW_FIELDS = ("impl", "mode", "batch", "dim", "seqlen", "dstate", "dtype", "head_dim")


@dataclass(frozen=True)
class BaselineRow:
    spec: RowSpec
    status: str
    backend: str
    samples_ms: tuple[float, ...]
    rel_err: float
    round_sizes: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok" and len(self.samples_ms) > 0


@dataclass(frozen=True)
class Baseline:
    """A baseline file read back and validated."""

    path: Path
    device_name: str
    device_kind: str
    environment: dict[str, Any]
    ceilings: dict[str, Any]
    timing: TimingConfig
    seed: int
    preset: str | None
    rows: tuple[BaselineRow, ...]

    def row(self, row_id: str) -> BaselineRow | None:
        return next((r for r in self.rows if r.spec.row_id == row_id), None)


def save_baseline(
    path: Path,
    results: Sequence[RowResult],
    *,
    environment: Mapping[str, Any],
    device_kind: str,
    ceilings: Mapping[str, Any],
    timing: TimingConfig,
    seed: int,
    preset: str | None,
    interrupted: str | None = None,
) -> Path:
    """Write ``results`` as a baseline JSON at ``path`` (atomically). ``interrupted`` (a sweep
    cut short) is recorded: the baseline then holds only the rows that were measured."""
    doc = {
        "format": BASELINE_FORMAT,
        "schema_version": BASELINE_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": {"name": environment.get("device_name"), "kind": device_kind},
        "environment": dict(environment),
        "ceilings": dict(ceilings),
        "timing": {
            "warmup_ms": timing.warmup_ms, "rep_ms": timing.rep_ms,
            "min_reps": timing.min_reps, "max_reps": timing.max_reps, "threads": timing.threads,
            "rounds": timing.rounds, "cpu_clock": timing.cpu_clock,
        },
        "seed": seed,
        "preset": preset,
        "interrupted": interrupted,
        "rows": [
            {
                "row_id": r.spec.row_id,
                **r.spec.key(),
                "status": r.status,
                "backend": r.backend,
                "rel_err": None if math.isnan(r.rel_err) else r.rel_err,
                "samples_ms": [float(f"{x:.6g}") for x in r.samples_ms],
                "round_sizes": list(r.round_sizes),
            }
            for r in results
        ],
    }
    atomic_write_text(Path(path), _dumps(doc))
    return Path(path)


def _dumps(doc: dict[str, Any]) -> str:
    """Pretty JSON with one line per row (a committed baseline diffs row by row)."""
    head = to_json({k: v for k, v in doc.items() if k != "rows"}).rstrip().removesuffix("}").rstrip()
    rows = ",\n".join("    " + json.dumps(r, default=str) for r in doc["rows"])
    return f'{head},\n  "rows": [\n{rows}\n  ]\n}}\n'



def _need(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise ResultsError(f"{where} has no field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ResultsError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _row(raw: Any, where: str) -> BaselineRow:
    if not isinstance(raw, dict):
        raise ResultsError(f"{where} is not an object")
    spec = RowSpec(**{k: _need(raw, k, str if k in ("impl", "mode", "dtype") else int, where)
                      for k in _ROW_FIELDS})
    if spec.impl not in IMPLS or spec.mode not in MODES or spec.dtype not in DTYPES:
        raise ResultsError(f"{where}: unknown impl/mode/dtype {spec.impl}/{spec.mode}/{spec.dtype}")
    if min(spec.batch, spec.dim, spec.seqlen, spec.dstate, spec.head_dim) < 1:
        raise ResultsError(f"{where}: sizes must be positive")
    samples = _need(raw, "samples_ms", list, where)
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0 for s in samples):
        raise ResultsError(f"{where}: samples_ms must be non-negative numbers")
    rel = raw.get("rel_err")
    sizes = raw.get("round_sizes") or [len(samples)]
    if not all(isinstance(n, int) and n >= 0 for n in sizes) or sum(sizes) != len(samples):
        raise ResultsError(f"{where}: round_sizes do not add up to the number of samples")
    return BaselineRow(
        spec=spec,
        status=_need(raw, "status", str, where),
        backend=str(raw.get("backend", "")),
        samples_ms=tuple(float(s) for s in samples),
        rel_err=float(rel) if isinstance(rel, (int, float)) else math.nan,
        round_sizes=tuple(sizes),
    )


def load_baseline(path: Path) -> Baseline:
    """Read and validate a baseline; ResultsError (one line) when missing, corrupt or of another schema."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no baseline file at {path}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise ResultsError(f"baseline {path} is not valid JSON, corrupt or truncated? ({msg})") from None
    where = f"baseline {path}"
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise ResultsError(f"{where} is not an ssmbench kernel baseline (format {BASELINE_FORMAT!r})")
    version = doc.get("schema_version")
    if version != BASELINE_SCHEMA_VERSION:
        raise ResultsError(
            f"{where} has schema version {version}; this ssmbench reads {BASELINE_SCHEMA_VERSION} "
            "(save a new baseline with --save-baseline)"
        )
    device = _need(doc, "device", dict, where)
    timing = _need(doc, "timing", dict, where)
    rows = _need(doc, "rows", list, where)
    ceilings = _need(doc, "ceilings", dict, where)
    try:
        tcfg = TimingConfig(
            warmup_ms=float(timing["warmup_ms"]), rep_ms=float(timing["rep_ms"]),
            min_reps=int(timing["min_reps"]), max_reps=int(timing["max_reps"]),
            threads=int(timing["threads"]) if timing.get("threads") is not None else None,
            rounds=int(timing.get("rounds", 1)),
            cpu_clock=str(timing.get("cpu_clock", "wall")),
        )
    except (KeyError, TypeError, ValueError):
        raise ResultsError(f"{where}: field 'timing' is incomplete") from None
    parsed = tuple(_row(r, f"{where} row {i}") for i, r in enumerate(rows))
    if not parsed:
        raise ResultsError(f"{where} has no rows")
    ids = [r.spec.row_id for r in parsed]
    if len(set(ids)) != len(ids):
        raise ResultsError(f"{where} lists a row twice")
    return Baseline(
        path=path,
        device_name=str(device.get("name")),
        device_kind=str(_need(device, "kind", str, f"{where} device")),
        environment=dict(doc.get("environment") or {}),
        ceilings=ceilings,
        timing=tcfg,
        seed=int(doc.get("seed") or 0),
        preset=doc.get("preset"),
        rows=parsed,
    )
