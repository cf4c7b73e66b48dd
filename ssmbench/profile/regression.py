"""The timing regression gate: compare a rerun of a baseline's rows with the baseline.

Rule (per row, on the timing samples): with ratio = median(now) / median(baseline),
the row REGRESSED when ratio > 1 + max_regression AND the fastest sample slowed by more than
the threshold too (min(now) / min(baseline) > 1 + max_regression: load on a shared machine
only adds time, so it slows many samples but rarely all of them, while a slower kernel is
slower even at its best) AND a one-sided Mann-Whitney U test on all samples says now is
slower with p < p_threshold (0.002, as asv). The caller re-measures a REGRESSED row
(``retries`` times) and keeps the verdict only if it holds every time. A row is 'faster'
when both ratios are under 1 - max_regression and the opposite test has p < p_threshold,
'slower-noise' when the median ratio is over the threshold but the other two conditions
do not confirm it, otherwise 'ok'. A row
whose correctness check fails now is 'incorrect' (a failure, never a speed-up); a row that
ran in the baseline and errors or runs out of memory now is 'FAILED'; a row that ran in the
baseline and is skipped now (its backend unavailable, say) or was not rerun is 'missing', with
the reason in its note, and fails the gate too unless missing rows are allowed
(``--allow-missing``): a backend that stopped working must not turn the gate green. A row the
baseline did not measure either is 'skipped' if it is not measured now, 'new' if it is; neither
can be compared and neither fails.

With normalize='ceilings', the current samples are scaled by (copy bandwidth now /
copy bandwidth in the baseline), both measured in their own run, so a machine of the same
kind with slower memory does not read as a regression.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ssmbench.errors import BadInput
from ssmbench.profile.baseline import Baseline, BaselineRow
from ssmbench.profile.stats import mann_whitney_u
from ssmbench.profile.sweep import RowResult

FAILING = ("REGRESSED", "incorrect", "FAILED")
NORMALIZE = ("none", "ceilings")


@dataclass(frozen=True)
class GateRule:
    """max_regression: allowed slowdown as a fraction (0.10 = 10%); p_threshold: U-test level."""

    max_regression: float = 0.10
    p_threshold: float = 0.002
    normalize: str = "none"

    def __post_init__(self) -> None:
        if not self.max_regression >= 0:
            raise BadInput(f"max regression must be >= 0, got {self.max_regression}")
        if not 0 < self.p_threshold < 1:
            raise BadInput(f"p threshold must be in (0, 1), got {self.p_threshold}")
        if self.normalize not in NORMALIZE:
            raise BadInput(f"--normalize {self.normalize!r}: choose from {', '.join(NORMALIZE)}")


@dataclass(frozen=True)
class GateRow:
    """One row of the gate table. Times in ms (medians); ratio = now / baseline."""

    row_id: str
    baseline_ms: float
    now_ms: float
    ratio: float
    p_slower: float
    p_faster: float
    verdict: str
    note: str = ""
    attempts: int = 1

    @property
    def failing(self) -> bool:
        """Regressed, incorrect or failed (whatever the policy on missing rows)."""
        return self.verdict in FAILING

    def fails(self, allow_missing: bool = False) -> bool:
        """Whether this row fails the gate: ``failing``, or missing when missing rows are not allowed."""
        return self.failing or (self.verdict == "missing" and not allow_missing)


def normalize_scale(rule: GateRule, baseline_ceilings: Mapping[str, object],
                    now_ceilings: Mapping[str, object]) -> float:
    """Factor applied to the current samples (1.0 unless normalize='ceilings')."""
    if rule.normalize == "none":
        return 1.0
    base, now = baseline_ceilings.get("copy_gbps"), now_ceilings.get("copy_gbps")
    if not isinstance(base, (int, float)) or not isinstance(now, (int, float)) or base <= 0 or now <= 0:
        raise BadInput("--normalize ceilings: the baseline or this run has no copy bandwidth ceiling")
    return float(now) / float(base)


def compare_row(base: BaselineRow | None, now: RowResult, rule: GateRule, scale: float = 1.0,
                attempts: int = 1) -> GateRow:
    """The verdict of one rerun row against its baseline row (see the module docstring)."""
    nan = math.nan

    def row(verdict: str, note: str = "", b: float = nan, n: float = nan, r: float = nan,
            ps: float = nan, pf: float = nan) -> GateRow:
        return GateRow(now.spec.row_id, b, n, r, ps, pf, verdict, note, attempts)

    base_ms = statistics.median(base.samples_ms) if base is not None and base.samples_ms else nan
    if now.status == "incorrect":
        return row("incorrect", f"rel_err {now.rel_err:.3g} over tolerance", b=base_ms)
    if base is None:
        return row("missing", "not in the baseline")
    if not base.ok:
        if now.status == "ok":
            return row("new", f"measured now; baseline row: {base.status}")
        return row("skipped", f"{now.status} (baseline: {base.status})")
    if now.status == "oom" or now.status.startswith("error"):
        return row("FAILED", now.status, b=base_ms)
    if now.status != "ok":
        return row("missing", now.status, b=base_ms)
    samples = [s * scale for s in now.samples_ms]
    now_ms = statistics.median(samples)
    ratio = now_ms / base_ms if base_ms > 0 else math.inf
    fast_ratio = min(samples) / max(min(base.samples_ms), 1e-12)
    slower = mann_whitney_u(samples, base.samples_ms, "greater").p
    faster = mann_whitney_u(samples, base.samples_ms, "less").p
    stats = {"b": base_ms, "n": now_ms, "r": ratio, "ps": slower, "pf": faster}
    limit = 1 + rule.max_regression
    if ratio > limit:
        if slower < rule.p_threshold and fast_ratio > limit:
            return row("REGRESSED", f"fastest-sample ratio {fast_ratio:.3g}", **stats)
        why = f"p={slower:.2g} >= {rule.p_threshold}" if slower >= rule.p_threshold else (
            f"fastest-sample ratio {fast_ratio:.3g} <= {limit:.3g}")
        return row("slower-noise", why, **stats)
    if ratio < 1 - rule.max_regression and fast_ratio < 1 - rule.max_regression and faster < rule.p_threshold:
        return row("faster", **stats)
    return row("ok", **stats)


def compare(baseline: Baseline, results: Sequence[RowResult], rule: GateRule, scale: float = 1.0,
            attempts: Mapping[str, int] | None = None) -> list[GateRow]:
    """Verdicts for every baseline row, in the baseline's order."""
    by_id = {r.spec.row_id: r for r in results}
    out = []
    for b in baseline.rows:
        rid = b.spec.row_id
        if rid not in by_id:
            out.append(GateRow(rid, math.nan, math.nan, math.nan, math.nan, math.nan, "missing", "not rerun"))
            continue
        out.append(compare_row(b, by_id[rid], rule, scale, (attempts or {}).get(rid, 1)))
    return out


def exit_code(rows: Sequence[GateRow], allow_missing: bool = False) -> int:
    """1 when any row regressed, is incorrect or failed, or is missing (unless ``allow_missing``); else 0."""
    return 1 if any(r.fails(allow_missing) for r in rows) else 0


def gate_records(rows: Sequence[GateRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
