"""summary.json of a kernel-profile run: status counts, scan vs attention, crossover, speed-ups.

Only rows with status 'ok' enter a comparison: an incorrect row's speed is never a speed-up.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ssmbench.profile.presets import ATTENTION

GROUP = ["mode", "batch", "dim", "dstate", "dtype"]
SHAPE = ["mode", "batch", "dim", "seqlen", "dstate", "dtype"]


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def scan_vs_attention(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per shape and mode: the fastest correct scan impl against attention (ratio > 1: scan wins)."""
    ok = metrics[metrics["status"] == "ok"]
    attn = ok[ok["impl"] == ATTENTION][[*SHAPE, "ms_median"]].rename(columns={"ms_median": "attention_ms"})
    scans = ok[ok["impl"] != ATTENTION]
    if attn.empty or scans.empty:
        return pd.DataFrame(columns=[*SHAPE, "best_scan", "scan_ms", "attention_ms", "attention_over_scan"])
    best = scans.loc[scans.groupby(SHAPE)["ms_median"].idxmin(), [*SHAPE, "impl", "ms_median"]]
    best = best.rename(columns={"impl": "best_scan", "ms_median": "scan_ms"})
    joined = best.merge(attn, on=SHAPE)
    joined["attention_over_scan"] = joined["attention_ms"] / joined["scan_ms"]
    return joined.sort_values(SHAPE).reset_index(drop=True)


def crossover(vs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (mode, batch, dim, dstate, dtype) with two or more lengths: the shortest L from
    which the best scan beats attention at every longer measured L (None if it never does)."""
    out = []
    for key, g in vs.groupby(GROUP):
        if g["seqlen"].nunique() < 2:
            continue
        g = g.sort_values("seqlen")
        wins = (g["attention_over_scan"] > 1).tolist()
        lengths = g["seqlen"].tolist()
        from_l = None
        for i in range(len(wins)):
            if all(wins[i:]):
                from_l = int(lengths[i])
                break
        out.append({**dict(zip(GROUP, (k.item() if hasattr(k, "item") else k for k in key), strict=True)),
                    "lengths": [int(x) for x in lengths], "scan_faster_from_seqlen": from_l})
    return out


def speedup_vs_ref(metrics: pd.DataFrame) -> pd.DataFrame:
    """ref time / impl time for every correct scan row whose shape ref also ran (correctly)."""
    ok = metrics[(metrics["status"] == "ok") & (metrics["impl"] != ATTENTION)]
    ref = ok[ok["impl"] == "ref"][[*SHAPE, "ms_median"]].rename(columns={"ms_median": "ref_ms"})
    others = ok[ok["impl"] != "ref"][[*SHAPE, "impl", "ms_median"]]
    joined = others.merge(ref, on=SHAPE)
    joined["speedup_vs_ref"] = joined["ref_ms"] / joined["ms_median"]
    return joined.reset_index(drop=True)


def build_summary(metrics: pd.DataFrame, manifest_bits: dict[str, Any]) -> dict[str, Any]:
    """The summary.json object (``manifest_bits``: preset, device, ceilings, ...)."""
    status = metrics["status"].fillna("").map(lambda s: s.split(":")[0])
    vs = scan_vs_attention(metrics)
    return {
        **manifest_bits,
        "rows": len(metrics),
        "status_counts": {str(k): int(v) for k, v in status.value_counts().items()},
        "incorrect": metrics.loc[metrics["status"] == "incorrect", "row_id"].tolist(),
        "errors": _records(metrics.loc[status.isin(["error", "oom"]), ["row_id", "status"]]),
        "scan_vs_attention": _records(vs),
        "crossover": crossover(vs),
        "speedup_vs_ref": _records(speedup_vs_ref(metrics)),
    }
